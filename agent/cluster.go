package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/kith-project/kith/cluster"
	"github.com/kith-project/kith/internal/transport"
	"github.com/kith-project/kith/roster"
	"github.com/kith-project/kith/seed"
)

// The own cluster (package cluster) runs as the agent's "cluster" service:
// raft's streams arrive on protocol 0x04 through a StreamListener, its
// forwarded writes and join handshakes on 0x06, both own devices only.
// Every roster change the book makes goes to the cluster (book.propose),
// and the cluster's log applies the changes of the other own devices
// through clusterState.

// clusterHolder is the running node, nil before the service starts and
// after it stops.
type clusterHolder struct {
	node     atomic.Pointer[cluster.Node]
	listener *StreamListener
}

// registerCluster adds the cluster's two stream protocols.
func (a *Agent) registerCluster() error {
	a.cluster.listener = NewStreamListener(placeholderAddr(a.dev.Cert.Device.ID()), 32)
	return errors.Join(
		a.streams.register(Protocol{
			ID: cluster.ProtoRaft, Name: "raft",
			Openers:  OpenOwn,
			Listener: a.cluster.listener,
		}),
		a.streams.register(Protocol{
			ID: cluster.ProtoForward, Name: "cluster",
			Openers:    OpenOwn,
			Deadline:   30 * time.Second,
			MaxStreams: 16,
			Handle:     a.serveForward,
		}),
	)
}

type placeholderAddr string

func (p placeholderAddr) Network() string { return "kith" }
func (p placeholderAddr) String() string  { return string(p) }

func (a *Agent) serveForward(ctx context.Context, s *transport.Stream) {
	n := a.cluster.node.Load()
	d, ok := devOf(s.PeerKey())
	if n == nil || !ok {
		s.Reset(errResetStream)
		return
	}
	n.ServeForward(ctx, s, d.ID())
}

// runCluster is the cluster service: it starts the node, serves until ctx
// ends, and closes it.
func (a *Agent) runCluster(ctx context.Context) error {
	prof, err := cluster.ParseProfile(a.cfg.RaftProfile)
	if a.cfg.raftProfile != nil {
		prof, err = *a.cfg.raftProfile, nil
	}
	if err != nil {
		return err
	}
	n, err := cluster.New(cluster.Config{
		ID:       a.dev.Cert.Device.ID(),
		Dir:      filepath.Join(a.cfg.Home, "raft"),
		Listener: a.cluster.listener,
		Dial:     a.dialOwn,
		Resolve:  a.resolveOwn,
		Members:  a.clusterMembers,
		SelfRevoked: func() bool {
			return a.book.revoked(a.dev.Cert.Device)
		},
		State:   clusterState{a},
		Profile: prof,
		Logger:  a.log.With("service", "cluster"),
	})
	if err != nil {
		return err
	}
	a.cluster.node.Store(n)
	<-ctx.Done()
	a.cluster.node.Store(nil)
	return n.Close()
}

// proposeChange hands a roster change made here to the cluster. Before the
// cluster runs (and in the few moments after it stops) a change stays
// local; the merge a node proposes when it bootstraps or joins carries it.
func (a *Agent) proposeChange(c roster.Change) {
	n := a.cluster.node.Load()
	if n == nil {
		return
	}
	body, err := json.Marshal(c)
	if err != nil {
		return
	}
	cmd := cluster.Command{Kind: cluster.KindRoster, Body: body}
	if c.Device != nil {
		if ap := a.bookAddr(c.Device.DeviceID); ap.IsValid() {
			cmd.Hints = map[string]string{c.Device.DeviceID.ID(): ap.String()}
		}
	}
	if err := n.Propose(cmd); err != nil {
		a.log.Warn("queueing a roster change for the cluster", "err", err)
	}
}

// dialOwn opens a stream of protocol proto to own device id.
func (a *Agent) dialOwn(ctx context.Context, id, addr string, proto byte) (net.Conn, error) {
	d, err := seed.ParseDevicePublic(id)
	if err != nil {
		return nil, err
	}
	p, ok := a.book.peerFor(d)
	if !ok || p.Kind != roster.KindOwn {
		return nil, fmt.Errorf("%s is not one of this user's devices", d.Short())
	}
	if addr == "" {
		addr = p.Addr
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, fmt.Errorf("no address known for %s", d.Short())
	}
	s, err := a.tr.OpenStream(ctx, ap, d.Ed25519(), proto)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// resolveOwn is the cluster's address provider: own device id's current
// address, as presence last set it in the book.
func (a *Agent) resolveOwn(id string) string {
	d, err := seed.ParseDevicePublic(id)
	if err != nil {
		return ""
	}
	if ap := a.bookAddr(d); ap.IsValid() {
		return ap.String()
	}
	return ""
}

// clusterMembers lists the own devices that belong in the cluster.
func (a *Agent) clusterMembers() []cluster.Member {
	online := a.onlineSet()
	var ms []cluster.Member
	for _, p := range a.book.reachable() {
		if p.Kind == roster.KindOwn && !p.DeviceID.Equal(a.dev.Cert.Device) {
			ms = append(ms, cluster.Member{ID: p.DeviceID.ID(), Online: online[p.DeviceID]})
		}
	}
	return ms
}

// clusterStatus is the cluster's state, or nil before it runs.
func (a *Agent) clusterStatus() *cluster.Status {
	n := a.cluster.node.Load()
	if n == nil {
		return nil
	}
	st := n.Status()
	return &st
}
