package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/hashicorp/raft"
)

// push applies the pending queue in order, on the leader or forwarded to
// it, until Close.
func (n *Node) push() {
	t := time.NewTicker(n.cfg.Profile.Manage)
	defer t.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-n.stop
		cancel()
	}()
	for {
		for {
			key, val := n.pend.first()
			if key == nil {
				break
			}
			if err := n.submit(ctx, val); err != nil {
				n.log.Debug("cluster: write waits", "err", err)
				break
			}
			if err := n.pend.drop(key); err != nil {
				n.log.Warn("cluster: dropping an applied write", "err", err)
				break
			}
		}
		select {
		case <-n.stop:
			return
		case <-n.wake:
		case <-t.C:
		}
	}
}

// submit has the cluster commit one command.
func (n *Node) submit(ctx context.Context, b []byte) error {
	r := n.raft()
	if r == nil {
		return ErrNoLeader
	}
	if r.State() == raft.Leader {
		f := r.Apply(b, 10*time.Second)
		if err := f.Error(); err != nil {
			return err
		}
		return nil // a State error rejects the command for good
	}
	_, leader := r.LeaderWithID()
	if leader == "" {
		return ErrNoLeader
	}
	_, err := n.ask(ctx, string(leader), Request{Op: OpApply, Command: b})
	return err
}

// manage reconciles membership while this node leads, until Close.
func (n *Node) manage() {
	t := time.NewTicker(n.cfg.Profile.Manage)
	defer t.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-n.stop
		cancel()
	}()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		if r := n.raft(); r != nil && r.State() == raft.Leader {
			n.reconcile(ctx, r)
		}
	}
}

// hello is this node's side of the join handshake.
func (n *Node) hello() Hello {
	h := Hello{ID: n.cfg.ID, Single: true}
	r := n.raft()
	if r == nil {
		return h
	}
	h.LastIndex = r.LastIndex()
	if f := r.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			if string(s.ID) != n.cfg.ID {
				h.Single = false
			}
		}
	}
	return h
}

// yields reports whether a node in state a gives its raft state up to
// join b's cluster: a is alone and b is not, or both are alone and a has
// the shorter log (ties: the larger ID).
func yields(a, b Hello) bool {
	switch {
	case !a.Single:
		return false
	case !b.Single:
		return true
	case a.LastIndex != b.LastIndex:
		return a.LastIndex < b.LastIndex
	}
	return a.ID > b.ID
}

// answerHello is the answering side of the join handshake: if this node
// yields it resets before answering, so that the asker adds an empty node.
// A node that gave its state up for one cluster waits this long to be
// added to it before it answers another's hello.
func (n *Node) answerHello(them Hello) Reply {
	me := n.hello()
	if !yields(me, them) {
		return Reply{Hello: &me}
	}
	n.mu.Lock()
	promised := n.yieldedTo != "" && n.yieldedTo != them.ID && time.Since(n.yieldedAt) < n.cfg.Profile.Election*10
	if !promised {
		n.yieldedTo, n.yieldedAt = them.ID, time.Now()
	}
	n.mu.Unlock()
	if promised {
		return Reply{Hello: &me}
	}
	if err := n.reset(); err != nil {
		return Reply{Err: err.Error()}
	}
	return Reply{Yield: true, Hello: &me}
}

// reset gives this node's raft state up and restarts it empty and
// unbootstrapped, to be added to another cluster. The local state is
// queued as a merge command for that cluster.
func (n *Node) reset() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.r != nil && n.r.LastIndex() == 0 {
		return nil // empty already, waiting to be added
	}
	n.halt()
	for _, p := range []string{filepath.Join(n.cfg.Dir, "raft.db"), filepath.Join(n.cfg.Dir, "snapshots")} {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("cluster: resetting: %w", err)
		}
	}
	n.log.Info("cluster: joining another own device's cluster")
	if err := n.start(false); err != nil {
		return err
	}
	return n.proposeMerge()
}

// voterTarget is how many voters n servers should have: 1, 3 or 5.
func voterTarget(n int) int {
	switch {
	case n >= 5:
		return 5
	case n >= 3:
		return 3
	}
	return 1
}

// reconcile brings the configuration in line with the members: adds own
// devices that joined (after the handshake), removes those that left, and
// keeps the voters at voterTarget, preferring online devices.
func (n *Node) reconcile(ctx context.Context, r *raft.Raft) {
	f := r.GetConfiguration()
	if f.Error() != nil {
		return
	}
	conf := f.Configuration()
	if n.cfg.SelfRevoked() {
		n.log.Debug("cluster: this device was revoked: leaving the configuration")
		if err := r.RemoveServer(raft.ServerID(n.cfg.ID), 0, 10*time.Second).Error(); err != nil {
			n.log.Debug("cluster: leaving", "err", err)
		}
		return
	}
	members := map[string]Member{}
	for _, m := range n.cfg.Members() {
		if m.ID != n.cfg.ID {
			members[m.ID] = m
		}
	}
	in := map[string]raft.ServerSuffrage{}
	for _, s := range conf.Servers {
		in[string(s.ID)] = s.Suffrage
		if _, ok := members[string(s.ID)]; !ok && string(s.ID) != n.cfg.ID {
			n.log.Info("cluster: removing a device that left", "device", shortID(string(s.ID)))
			if err := r.RemoveServer(s.ID, 0, 10*time.Second).Error(); err != nil {
				n.log.Debug("cluster: removing", "err", err)
				return
			}
			delete(in, string(s.ID))
		}
	}
	// Devices not in the configuration are asked whether online or not:
	// presence may not see a device that does not know us yet, and the
	// hello's connection is how it learns of us (by our certificate).
	for id := range members {
		if _, ok := in[id]; ok {
			continue
		}
		hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		rep, err := n.ask(hctx, id, Request{Op: OpHello, Hello: ptr(n.hello())})
		cancel()
		if err != nil {
			n.log.Debug("cluster: join handshake", "device", shortID(id), "err", err)
			continue
		}
		if rep.Yield {
			n.log.Info("cluster: adding an own device", "device", shortID(id))
			if err := r.AddNonvoter(raft.ServerID(id), raft.ServerAddress(id), 0, 10*time.Second).Error(); err != nil {
				n.log.Debug("cluster: adding", "err", err)
				return
			}
			in[id] = raft.Nonvoter
			continue
		}
		if rep.Hello != nil && yields(n.hello(), *rep.Hello) {
			if err := n.reset(); err != nil {
				n.log.Warn("cluster: resetting to join", "err", err)
			}
			return
		}
	}
	n.balance(r, in, members)
}

func ptr[T any](v T) *T { return &v }

// balance promotes and demotes so that the voters are the voterTarget best
// servers: this leader, then online devices, then current voters.
func (n *Node) balance(r *raft.Raft, in map[string]raft.ServerSuffrage, members map[string]Member) {
	ids := make([]string, 0, len(in))
	for id := range in {
		ids = append(ids, id)
	}
	rank := func(id string) int {
		switch {
		case id == n.cfg.ID:
			return 0
		case members[id].Online && in[id] == raft.Voter:
			return 1
		case members[id].Online:
			return 2
		case in[id] == raft.Voter:
			return 3
		}
		return 4
	}
	slices.SortFunc(ids, func(a, b string) int {
		if d := rank(a) - rank(b); d != 0 {
			return d
		}
		if a < b {
			return -1
		}
		return 1
	})
	want := voterTarget(len(ids))
	for i, id := range ids {
		if i < want && in[id] != raft.Voter && members[id].Online {
			n.log.Info("cluster: promoting to voter", "device", shortID(id))
			if err := r.AddVoter(raft.ServerID(id), raft.ServerAddress(id), 0, 10*time.Second).Error(); err != nil {
				n.log.Debug("cluster: promoting", "err", err)
				return
			}
			in[id] = raft.Voter
		}
	}
	for i, id := range ids {
		if i >= want && in[id] == raft.Voter {
			n.log.Info("cluster: demoting to non-voter", "device", shortID(id))
			if err := r.DemoteVoter(raft.ServerID(id), 0, 10*time.Second).Error(); err != nil {
				n.log.Debug("cluster: demoting", "err", err)
				return
			}
		}
	}
}

// Recover rewrites the configuration onto servers (this device among
// them), all voters, with raft.RecoverCluster, which commits every entry in
// the local log; raft is stopped for it and restarted. Call it only when
// the lost devices took quorum with them: a cluster with a leader refuses.
func (n *Node) Recover(servers []string) error {
	if !slices.Contains(servers, n.cfg.ID) {
		return errors.New("cluster: recovery without this device")
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.r != nil {
		if _, leader := n.r.LeaderWithID(); leader != "" {
			return fmt.Errorf("cluster: recovery refused: %s leads, the cluster has quorum", shortID(string(leader)))
		}
	}
	n.halt()
	conf := raft.Configuration{}
	for _, id := range servers {
		conf.Servers = append(conf.Servers, raft.Server{ID: raft.ServerID(id), Address: raft.ServerAddress(id), Suffrage: raft.Voter})
	}
	store, snaps, err := n.openStores()
	if err != nil {
		return err
	}
	trans := n.newTransport()
	err = raft.RecoverCluster(n.raftConfig(), fsm{n}, store, store, snaps, trans, conf)
	trans.Close()
	store.Close()
	if err != nil {
		n.start(false)
		return fmt.Errorf("cluster: recovering: %w", err)
	}
	n.log.Info("cluster: recovered onto the survivors", "servers", len(servers))
	return n.start(false)
}
