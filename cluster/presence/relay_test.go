package presence_test

import (
	"encoding/binary"
	"slices"
	"testing"

	"github.com/kith-project/kith/cluster/presence"
	"github.com/kith-project/kith/cluster/presence/presencetest"
	"github.com/kith-project/kith/internal/transport"
)

// Peers that reach us through a relay see us at a virtual address
// (internal/transport, relay.go): two of them agreeing on one is no
// evidence of our public address, which stays what it was.
func TestRelayedPeersDoNotDecideOurAddress(t *testing.T) {
	T := presence.DefaultInterval
	s := presencetest.New(t, presencetest.Options{N: 3, Seed: 65, Friends: true})
	me := s.Nodes[0]
	virt := transport.RelayAddr(0x1234)
	relayed := map[string]*presencetest.Node{}
	s.Tap = func(sp presencetest.Packet) {
		peer := relayed[sp.To.String()]
		if peer == nil || sp.From != me.Wire || len(sp.Data) < 50 ||
			(sp.Data[0] != presence.TypeHeartbeat && sp.Data[0] != presence.TypeAddrUpdate) {
			return
		}
		seq, t1 := binary.BigEndian.Uint64(sp.Data[34:]), int64(binary.BigEndian.Uint64(sp.Data[42:]))
		now := peer.Clock().UnixNano()
		s.Send(peer.Wire, me.Wire, presence.EncodeReplyTo(peer.Key, me.Pub, peer.P.NextSeq(), seq, t1, now, now, virt, nil))
	}
	for i := 1; i <= 2; i++ {
		s.Kill(i)
		relayed[s.Nodes[i].Wire.String()] = s.Nodes[i]
	}
	s.Run(10 * T)
	if st := me.P.Stats(); st.Accepted == 0 {
		t.Fatalf("the replies were not taken: %+v", st)
	}
	if got := me.P.PublicAddrs(); slices.Contains(got, virt) {
		t.Errorf("a virtual address in PublicAddrs %v", got)
	}
	if addr, _ := me.P.OwnRecord(); addr != me.Wire {
		t.Errorf("we advertise %v, want %v", addr, me.Wire)
	}
}
