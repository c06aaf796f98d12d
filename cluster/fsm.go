package cluster

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/hashicorp/raft"
)

// MaxCommand bounds one command, on the log and on the forward stream.
const MaxCommand = 1 << 20

// MaxSnapshot bounds a snapshot a node restores.
const MaxSnapshot = 64 << 20

// fsm is raft's FSM over the agent's State.
type fsm struct{ n *Node }

// Apply applies one committed log entry; it returns the State's error, if
// any, as the entry's response.
func (f fsm) Apply(l *raft.Log) any {
	c, err := DecodeCommand(l.Data)
	if err != nil {
		f.n.log.Warn("cluster: a log entry that is no command", "index", l.Index, "err", err)
		return err
	}
	if err := f.n.cfg.State.Apply(c); err != nil {
		f.n.log.Debug("cluster: command rejected", "index", l.Index, "kind", c.Kind, "err", err)
		return err
	}
	return nil
}

// DecodeCommand parses a command from the log or the forward stream.
func DecodeCommand(b []byte) (Command, error) {
	var c Command
	if len(b) > MaxCommand {
		return c, fmt.Errorf("cluster: a command of %d bytes", len(b))
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("cluster: decoding a command: %w", err)
	}
	if c.Kind == "" || len(c.Kind) > 64 {
		return c, fmt.Errorf("cluster: a command without a valid kind")
	}
	if len(c.Hints) > 64 {
		return c, fmt.Errorf("cluster: a command with %d address hints", len(c.Hints))
	}
	return c, nil
}

func (f fsm) Snapshot() (raft.FSMSnapshot, error) {
	b, err := f.n.cfg.State.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("cluster: snapshot: %w", err)
	}
	return snapshot(b), nil
}

func (f fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, MaxSnapshot+1))
	if err != nil {
		return fmt.Errorf("cluster: reading a snapshot: %w", err)
	}
	if len(b) > MaxSnapshot {
		return fmt.Errorf("cluster: a snapshot over %d bytes", MaxSnapshot)
	}
	return f.n.cfg.State.Restore(b)
}

// snapshot is a State snapshot, already serialized.
type snapshot []byte

func (s snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s snapshot) Release() {}
