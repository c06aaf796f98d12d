package agent

import (
	"encoding/json"
	"fmt"

	"github.com/kith-project/kith/cluster"
	"github.com/kith-project/kith/conversation"
	"github.com/kith-project/kith/seed"
)

// The own cluster's conversation index. A device that starts a
// conversation proposes a command of kind conv.index naming it (its ID and
// status, and the device that has it), never its content: the Raft log
// keeps old entries in free pages of raft.db, where a sealed genesis would
// outlive the conversation's at-rest key. An own device that applies an
// entry for a conversation it lacks fetches it from that device with a
// sync frame on stream 0x07 (conv_deliver.go). Own devices are member
// devices, so they normally have it already from the creator's outbox;
// the index covers a device that missed it, such as one whose certificate
// the creator did not know yet.

// kindConvIndex is the cluster command kind of the conversation index.
const kindConvIndex = "conv.index"

// convIndex is the body of a conv.index command.
type convIndex struct {
	ConversationID conversation.ID   `json:"conversation_id"`
	Status         string            `json:"status"`
	Device         seed.DevicePublic `json:"device"`
}

// proposeConvIndex tells the own cluster about conversation id. Before the
// cluster runs, the own devices learn of it from the outbox alone.
func (a *Agent) proposeConvIndex(id conversation.ID, status string) {
	n := a.cluster.node.Load()
	if n == nil {
		return
	}
	body, err := json.Marshal(convIndex{ConversationID: id, Status: status, Device: a.dev.Cert.Device})
	if err != nil {
		return
	}
	if err := n.Propose(cluster.Command{Kind: kindConvIndex, Body: body}); err != nil {
		a.log.Warn("queueing a conversation index entry for the cluster", "err", err)
	}
}

// applyConvIndex takes a committed conv.index entry. It is deterministic
// in what it returns (only a malformed body is an error); fetching a
// missing conversation happens later, on the delivery service.
func (a *Agent) applyConvIndex(b []byte) error {
	var ix convIndex
	if err := json.Unmarshal(b, &ix); err != nil {
		return fmt.Errorf("a conv.index entry: %w", err)
	}
	if ix.Device.Equal(a.dev.Cert.Device) {
		return nil
	}
	a.convs.wantSync(ix.ConversationID, ix.Device)
	return nil
}
