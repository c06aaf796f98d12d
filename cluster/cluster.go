// Package cluster is the own cluster: Raft among one user's devices, which
// replicates what they agree on (the roster of package roster today; the
// conversation index and archive placement later).
//
// # Engine and storage
//
// A [Node] runs hashicorp/raft. Its log and stable store are a bbolt file,
// DIR/raft.db (raft-boltdb/v2), its snapshots files under DIR/snapshots,
// and the writes waiting for quorum a second bbolt file, DIR/pending.db.
// Every file is the device's alone (mode 0600).
//
// # Transport
//
// Raft's RPCs travel on QUIC streams of the agent's port: stream protocol
// [ProtoRaft] (0x04), which only own devices may open. The agent hands the
// node a net.Listener of those streams and a dialer of streams to a device.
// Raft's configuration holds stable placeholders, the device IDs; a
// ServerAddressProvider resolves an ID to "ID@ADDR" with the device's
// current address (from the address book and presence) each time raft
// dials, so a device that moves needs no configuration change.
//
// A second own-only protocol, [ProtoForward] (0x06), carries what is not
// a Raft RPC (wire.go): a follower's write forwarded to the leader, the
// join handshake, and recovery.
//
// # Writes
//
// [Node.Propose] queues a [Command] durably and returns; a pusher applies
// the queue in order, on the leader itself or by forwarding to it, and
// removes each command once the cluster committed it. Without quorum the
// queue waits ([Status].Pending), and local reads and work go on: the
// caller has already applied the change to its own store. Commands must
// therefore be idempotent: a command applied locally first, then from the
// log, or forwarded twice after a lost reply, changes nothing the second
// time.
//
// # Membership
//
// A device alone bootstraps a one-voter cluster of itself. When it meets
// another own device, the two compare (the join handshake, members.go):
// a device alone whose log is shorter gives its Raft state up, restarts
// empty and is added by the other's leader as a non-voter; what it held
// locally reaches the cluster as a merge command. The leader keeps one,
// three or five voters (two are worse than one), preferring devices that
// are online, and removes devices the roster no longer lists (revoked).
//
// # Recovery
//
// [Node.Recover] rewrites the configuration onto the given survivors with
// raft.RecoverCluster, which commits every entry in the local log, after
// stopping raft, and restarts it. The agent calls it on a revocation
// signed with the seed phrase when the lost devices took quorum with them.
package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// Stream protocols of the agent's port that the cluster uses.
const (
	ProtoRaft    byte = 0x04
	ProtoForward byte = 0x06
)

// Command kinds. The agent's State decides what each body means.
const (
	// KindRoster: Body is one roster.Change.
	KindRoster = "roster"
	// KindRosterMerge: Body is a whole roster, merged into every device's
	// (additive: devices, friends, revocations).
	KindRosterMerge = "roster.merge"
)

// Command is one replicated entry: a typed envelope, so that later kinds
// (the conversation index, archive placement) share the log.
type Command struct {
	Kind string          `json:"kind"`
	Body json.RawMessage `json:"body"`
	// Hints are addresses ("HOST:PORT") of devices the body names, as the
	// proposer knew them: a device that learns of another from the log can
	// reach it before presence has. Never authoritative.
	Hints map[string]string `json:"hints,omitempty"`
}

// State is the replicated state machine, implemented by the agent.
// Apply must be deterministic and idempotent; an error it returns rejects
// the command on every device alike and is not retried.
type State interface {
	Apply(c Command) error
	// Snapshot returns the whole state; Restore merges one in.
	Snapshot() ([]byte, error)
	Restore(b []byte) error
}

// Hinter is a State that can say where the devices it names are, for the
// merge command a node proposes when it bootstraps or joins.
type Hinter interface {
	Hints() map[string]string
}

// Member is an own device that belongs in the cluster, as the roster and
// presence see it.
type Member struct {
	ID     string
	Online bool
}

// Config configures a Node.
type Config struct {
	// ID is this device's ID: its Raft server ID and placeholder address.
	ID string
	// Dir is the folder of the node's files; created 0700 if missing.
	Dir string
	// Listener yields the ProtoRaft streams own devices opened to us; the
	// node closes it.
	Listener net.Listener
	// Dial opens a stream of protocol proto to device id at addr ("" for
	// its current address), with the protocol byte already written.
	Dial func(ctx context.Context, id, addr string, proto byte) (net.Conn, error)
	// Resolve returns device id's current address, or "".
	Resolve func(id string) string
	// Members lists the other own devices that belong in the cluster (not
	// revoked).
	Members func() []Member
	// SelfRevoked reports whether this device itself was revoked: a leader
	// that was removes itself from the configuration. Default: never.
	SelfRevoked func() bool
	// State is the replicated state machine.
	State State
	// Profile sets the timeouts. Default ProfileHome.
	Profile Profile
	// NoBootstrap keeps an empty node from starting a one-voter cluster of
	// itself; it then waits to be added to one.
	NoBootstrap bool
	// Logger receives the node's logs (raft's info lines at debug).
	// Default: discard.
	Logger *slog.Logger
}

// Profile is a set of Raft timeouts.
type Profile struct {
	Name string
	// Heartbeat is raft's HeartbeatTimeout; the leader sends heartbeats
	// every Heartbeat/10, so it sets the idle cost.
	Heartbeat time.Duration
	// Election is raft's ElectionTimeout.
	Election time.Duration
	// Lease is raft's LeaderLeaseTimeout.
	Lease time.Duration
	// Commit is raft's CommitTimeout: an idle leader sends every follower
	// an AppendEntries this often (raft's default, 50 ms, is 20 a second
	// per follower whatever the heartbeat), and a follower learns of a
	// commit within it.
	Commit time.Duration
	// Manage is how often the leader reconciles membership and the
	// pusher retries.
	Manage time.Duration
}

// Profiles.
var (
	// ProfileHome suits home and mobile links: heartbeats every 0.5 to
	// 1 s, elections after 5 s of silence.
	ProfileHome = Profile{Name: "home", Heartbeat: 5 * time.Second, Election: 5 * time.Second, Lease: 2500 * time.Millisecond, Commit: time.Second, Manage: 2 * time.Second}
	// ProfileLAN suits one local network: heartbeats every 0.1 to 0.2 s,
	// elections after 1 s.
	ProfileLAN = Profile{Name: "lan", Heartbeat: time.Second, Election: time.Second, Lease: 500 * time.Millisecond, Commit: 200 * time.Millisecond, Manage: 500 * time.Millisecond}
	// ProfileTest is for in-process tests.
	ProfileTest = Profile{Name: "test", Heartbeat: 300 * time.Millisecond, Election: 300 * time.Millisecond, Lease: 150 * time.Millisecond, Commit: 50 * time.Millisecond, Manage: 100 * time.Millisecond}
)

// ParseProfile returns the profile called name: "home" (or "") or "lan".
func ParseProfile(name string) (Profile, error) {
	switch name {
	case "", "home":
		return ProfileHome, nil
	case "lan":
		return ProfileLAN, nil
	}
	return Profile{}, fmt.Errorf("cluster: profile %q is not home or lan", name)
}

// Errors.
var (
	ErrClosed   = errors.New("cluster: closed")
	ErrNoLeader = errors.New("cluster: no leader (no quorum)")
)

// Node is this device's member of the own cluster.
type Node struct {
	// Constant after New.
	cfg   Config
	log   *slog.Logger
	layer *layer
	pend  *pending

	wake chan struct{} // wakes the pusher; buffered, one

	// mu guards the raft instance and its stores, replaced by reset and
	// Recover.
	mu    sync.Mutex
	r     *raft.Raft
	trans *raft.NetworkTransport // raft closes it on shutdown
	store *raftboltdb.BoltStore
	snaps raft.SnapshotStore
	// yieldedTo is the node this one last reset itself to join, at
	// yieldedAt (answerHello).
	yieldedTo string
	yieldedAt time.Time

	stop   chan struct{}
	wg     sync.WaitGroup
	closed sync.Once
}

// New opens the node's files and starts raft. A node without state
// bootstraps a one-voter cluster of itself unless cfg.NoBootstrap.
func New(cfg Config) (*Node, error) {
	if cfg.ID == "" || cfg.Dir == "" || cfg.Listener == nil || cfg.Dial == nil || cfg.State == nil {
		return nil, errors.New("cluster: Config needs ID, Dir, Listener, Dial and State")
	}
	if cfg.Profile.Heartbeat == 0 {
		cfg.Profile = ProfileHome
	}
	if cfg.Resolve == nil {
		cfg.Resolve = func(string) string { return "" }
	}
	if cfg.Members == nil {
		cfg.Members = func() []Member { return nil }
	}
	if cfg.SelfRevoked == nil {
		cfg.SelfRevoked = func() bool { return false }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	// Like the rest of the home, the node's files are never reached
	// through a symbolic link (bbolt would follow one).
	for _, p := range []string{cfg.Dir, filepath.Join(cfg.Dir, "raft.db"), filepath.Join(cfg.Dir, "pending.db"), filepath.Join(cfg.Dir, "snapshots")} {
		if fi, err := os.Lstat(p); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			return nil, fmt.Errorf("cluster: %s is a symbolic link; kith does not follow links in its home", p)
		}
	}
	n := &Node{cfg: cfg, log: cfg.Logger, wake: make(chan struct{}, 1), stop: make(chan struct{})}
	var err error
	if n.pend, err = openPending(filepath.Join(cfg.Dir, "pending.db")); err != nil {
		return nil, err
	}
	n.layer = newLayer(n, cfg.Listener)
	if err := n.start(!cfg.NoBootstrap); err != nil {
		n.layer.close()
		n.pend.close()
		return nil, err
	}
	n.wg.Add(2)
	go func() { defer n.wg.Done(); n.push() }()
	go func() { defer n.wg.Done(); n.manage() }()
	return n, nil
}

func (n *Node) raftConfig() *raft.Config {
	c := raft.DefaultConfig()
	c.LocalID = raft.ServerID(n.cfg.ID)
	p := n.cfg.Profile
	c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout = p.Heartbeat, p.Election, p.Lease
	if p.Commit > 0 {
		c.CommitTimeout = p.Commit
	}
	c.Logger = newHCLogger(n.log)
	c.SnapshotThreshold = 1024
	c.TrailingLogs = 1024
	return c
}

// newTransport returns a raft transport on a new view of the layer.
func (n *Node) newTransport() *raft.NetworkTransport {
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		ServerAddressProvider: addrProvider{n},
		Stream:                n.layer.view(),
		MaxPool:               3,
		Timeout:               10 * time.Second,
		Logger:                newHCLogger(n.log),
	})
}

// openStores opens the log and stable store and the snapshot store.
func (n *Node) openStores() (*raftboltdb.BoltStore, raft.SnapshotStore, error) {
	store, err := raftboltdb.New(raftboltdb.Options{
		Path:        filepath.Join(n.cfg.Dir, "raft.db"),
		BoltOptions: &bbolt.Options{Timeout: 5 * time.Second},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: opening the raft log: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(n.cfg.Dir, 2, newHCLogger(n.log))
	if err != nil {
		store.Close()
		return nil, nil, fmt.Errorf("cluster: opening the snapshots: %w", err)
	}
	return store, snaps, nil
}

// start opens the stores and starts raft. Call with mu held or before
// anyone else has n.
func (n *Node) start(bootstrap bool) error {
	store, snaps, err := n.openStores()
	if err != nil {
		return err
	}
	has, err := raft.HasExistingState(store, store, snaps)
	if err != nil {
		store.Close()
		return fmt.Errorf("cluster: %w", err)
	}
	conf := n.raftConfig()
	trans := n.newTransport()
	if !has && bootstrap {
		self := raft.Configuration{Servers: []raft.Server{{ID: conf.LocalID, Address: raft.ServerAddress(n.cfg.ID)}}}
		if err := raft.BootstrapCluster(conf, store, store, snaps, trans, self); err != nil {
			trans.Close()
			store.Close()
			return fmt.Errorf("cluster: bootstrapping: %w", err)
		}
		// What this device knew before it had a cluster enters the log.
		if err := n.proposeMerge(); err != nil {
			trans.Close()
			store.Close()
			return err
		}
	}
	r, err := raft.NewRaft(conf, fsm{n}, store, store, snaps, trans)
	if err != nil {
		trans.Close()
		store.Close()
		return fmt.Errorf("cluster: starting raft: %w", err)
	}
	n.r, n.trans, n.store, n.snaps = r, trans, store, snaps
	return nil
}

// proposeMerge queues the whole local state as a merge command.
func (n *Node) proposeMerge() error {
	b, err := n.cfg.State.Snapshot()
	if err != nil {
		return fmt.Errorf("cluster: the local state: %w", err)
	}
	c := Command{Kind: KindRosterMerge, Body: b}
	if h, ok := n.cfg.State.(Hinter); ok {
		c.Hints = h.Hints()
	}
	return n.Propose(c)
}

// halt stops raft and closes its store. Call with mu held.
func (n *Node) halt() {
	if n.r == nil {
		return
	}
	if err := n.r.Shutdown().Error(); err != nil {
		n.log.Warn("stopping raft", "err", err)
	}
	n.store.Close()
	n.r = nil
}

// raft returns the running raft instance, or nil while it restarts.
func (n *Node) raft() *raft.Raft {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.r
}

// Close stops raft, the pusher and the manager, and closes the files.
// It is idempotent.
func (n *Node) Close() error {
	n.closed.Do(func() {
		close(n.stop)
		n.wg.Wait()
		n.mu.Lock()
		n.halt()
		n.mu.Unlock()
		n.layer.close()
		n.pend.close()
	})
	return nil
}

// Profile is the node's timeouts.
func (n *Node) Profile() Profile { return n.cfg.Profile }

// Commit has the cluster commit c now, on the leader or forwarded to it,
// without the durable queue: it fails without quorum. Benchmarks and
// callers that must know the outcome use it; Propose is the local-first
// path.
func (n *Node) Commit(ctx context.Context, c Command) error {
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	return n.submit(ctx, b)
}

// Propose queues c to be applied by the cluster, durably, and returns.
func (n *Node) Propose(c Command) error {
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if err := n.pend.push(b); err != nil {
		return err
	}
	n.kick()
	return nil
}

func (n *Node) kick() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// Status is the cluster as this device sees it.
type Status struct {
	// State is raft's state: leader, follower, candidate, or shutdown
	// while it restarts.
	State     string
	Leader    string
	Term      uint64
	Voters    []string
	Nonvoters []string
	// Pending counts the writes waiting for quorum.
	Pending int
	// CommitIndex and AppliedIndex are raft's.
	CommitIndex, AppliedIndex uint64
}

// Status returns the cluster's state.
func (n *Node) Status() Status {
	st := Status{State: "shutdown", Voters: []string{}, Nonvoters: []string{}, Pending: n.pend.count()}
	r := n.raft()
	if r == nil {
		return st
	}
	st.State = stateName(r.State())
	_, id := r.LeaderWithID()
	st.Leader = string(id)
	st.Term = currentTerm(r)
	st.CommitIndex, st.AppliedIndex = r.CommitIndex(), r.AppliedIndex()
	if f := r.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			if s.Suffrage == raft.Voter {
				st.Voters = append(st.Voters, string(s.ID))
			} else {
				st.Nonvoters = append(st.Nonvoters, string(s.ID))
			}
		}
	}
	slices.Sort(st.Voters)
	slices.Sort(st.Nonvoters)
	return st
}

func stateName(s raft.RaftState) string {
	switch s {
	case raft.Leader:
		return "leader"
	case raft.Follower:
		return "follower"
	case raft.Candidate:
		return "candidate"
	}
	return "shutdown"
}

func currentTerm(r *raft.Raft) uint64 {
	var t uint64
	fmt.Sscan(r.Stats()["term"], &t)
	return t
}
