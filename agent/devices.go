package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kith-project/kith/cluster"
	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/roster"
	"github.com/kith-project/kith/seed"
)

func (c controlAPI) Devices(context.Context) ([]control.OwnDevice, error) {
	return c.a.ownDevices(), nil
}

func (c controlAPI) DevicesRevoke(ctx context.Context, req control.RevokeRequest) (control.RevokeResult, error) {
	return c.a.revoke(ctx, req.Revocation)
}

// clusterView is the cluster part of "kith status".
func (a *Agent) clusterView() control.ClusterView {
	st := a.clusterStatus()
	if a.revokedSelf() {
		v := control.ClusterView{State: "revoked", Voters: []string{}, Nonvoters: []string{}}
		if st != nil {
			v.Pending = st.Pending
		}
		return v
	}
	if st == nil {
		return control.ClusterView{State: "starting", Voters: []string{}, Nonvoters: []string{}}
	}
	return control.ClusterView{State: st.State, Leader: st.Leader, Term: st.Term, Voters: st.Voters, Nonvoters: st.Nonvoters, Pending: st.Pending}
}

// ownDevices lists this device and every own device the roster holds,
// revoked ones too, by index.
func (a *Agent) ownDevices() []control.OwnDevice {
	id := a.dev.Identity
	out := []control.OwnDevice{{
		DeviceID: a.dev.Cert.Device, DeviceIndex: id.DeviceIndex, Name: id.Name,
		Roles: nonNil(a.dev.Cert.Roles), Addr: a.Addr().String(), Online: true, Self: true,
	}}
	_, ps := a.book.snapshot()
	r := a.book.rosterNow()
	online := a.onlineSet()
	seen := map[seed.DevicePublic]bool{a.dev.Cert.Device: true}
	for _, p := range ps {
		if p.Kind != roster.KindOwn || seen[p.DeviceID] {
			continue
		}
		seen[p.DeviceID] = true
		v := control.OwnDevice{DeviceID: p.DeviceID, Name: p.Name, Roles: []string{}, Addr: p.Addr, Online: online[p.DeviceID], Revoked: r.Revoked(p.DeviceID)}
		if cert, err := seed.ParseDeviceCert(p.Cert); err == nil {
			v.DeviceIndex, v.Roles = cert.Index, nonNil(cert.Roles)
		}
		out = append(out, v)
	}
	// A revoked device this device never met is listed too.
	for _, rev := range r.Revocations() {
		if seen[rev.Device] {
			continue
		}
		out = append(out, control.OwnDevice{DeviceID: rev.Device, DeviceIndex: rev.Index, Roles: []string{}, Revoked: true})
	}
	slices.SortFunc(out, func(x, y control.OwnDevice) int { return int(x.DeviceIndex) - int(y.DeviceIndex) })
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// revoke applies a revocation signed by the user key: locally at once,
// then through the cluster. When the devices lost took quorum with them,
// the phrase's signature is the authority to recover the cluster onto the
// devices still here.
func (a *Agent) revoke(ctx context.Context, b []byte) (control.RevokeResult, error) {
	rev, err := seed.ParseRevocation(b)
	if err != nil {
		return control.RevokeResult{}, &control.Error{Kind: control.KindBadInput, Message: "the revocation does not verify: " + err.Error()}
	}
	if !rev.User.Equal(a.dev.Cert.User) {
		return control.RevokeResult{}, &control.Error{Kind: control.KindBadInput, Message: "the phrase is another user's: this device belongs to user " + a.dev.Cert.User.Short()}
	}
	if rev.Device.Equal(a.dev.Cert.Device) {
		return control.RevokeResult{}, &control.Error{Kind: control.KindBadInput, Message: fmt.Sprintf("device %d is this device: revoke it from another of your devices", rev.Index)}
	}
	c := roster.Change{Op: roster.OpRevoke, Revocation: rev.Marshal()}
	res := control.RevokeResult{DeviceIndex: rev.Index, Revoked: true}
	// The revocation is committed before this device cuts the revoked one
	// off: if it is the leader, cutting it off first would leave this
	// device unable to reach the cluster while the others still follow
	// it.
	committed := a.commitRevocation(ctx, c)
	apply := a.book.apply
	if !committed {
		apply = a.book.change // local-first: applied here, queued for the cluster
	}
	if err := apply(c, nil, nil); err != nil {
		return control.RevokeResult{}, fmt.Errorf("revoking device %d: %w", rev.Index, err)
	}
	a.closeDevices([]seed.DevicePublic{rev.Device})
	a.log.Info("device revoked", "device", rev.Device.Short(), "index", rev.Index, "committed", committed)
	if committed {
		return res, nil
	}
	survivors, err := a.recoverIfLost(ctx)
	if err != nil {
		return res, fmt.Errorf("device %d is revoked here, but recovering the cluster failed: %w", rev.Index, err)
	}
	res.Recovered = survivors
	return res, nil
}

// commitRevocation has the cluster commit c within a few election
// timeouts, and reports whether it did.
func (a *Agent) commitRevocation(ctx context.Context, c roster.Change) bool {
	n := a.cluster.node.Load()
	if n == nil {
		return false
	}
	body, err := json.Marshal(c)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 3*n.Profile().Election)
	defer cancel()
	for {
		err := n.Commit(ctx, cluster.Command{Kind: cluster.KindRoster, Body: body})
		if err == nil {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// recoverIfLost recovers the cluster onto this device and the own devices
// that answer, when the voters that answer are no majority; it returns the
// survivors, or nil when the cluster has quorum.
func (a *Agent) recoverIfLost(ctx context.Context) ([]string, error) {
	n := a.cluster.node.Load()
	if n == nil {
		return nil, errors.New("the cluster is not running")
	}
	return a.recoverNow(ctx, n)
}

func (a *Agent) recoverNow(ctx context.Context, n *cluster.Node) ([]string, error) {
	st := n.Status()
	r := a.book.rosterNow()
	self := a.dev.Cert.Device.ID()
	answers := func(id string) bool { return id == self || n.Ping(ctx, id, 2*time.Second) }
	alive := 0
	for _, v := range st.Voters {
		if answers(v) {
			alive++
		}
	}
	if alive > len(st.Voters)/2 {
		return nil, nil // a majority answers: the write waits for an election
	}
	survivors := []string{self}
	for _, m := range a.clusterMembers() {
		if d, err := seed.ParseDevicePublic(m.ID); err == nil && !r.Revoked(d) && answers(m.ID) {
			survivors = append(survivors, m.ID)
		}
	}
	slices.Sort(survivors)
	// Every survivor must recover with the same configuration.
	for _, id := range survivors {
		if id == self {
			continue
		}
		if err := n.AskRecover(ctx, id, survivors); err != nil {
			a.log.Warn("asking a survivor to recover", "device", id[:12], "err", err)
		}
	}
	if err := n.Recover(survivors); err != nil {
		return nil, err
	}
	a.log.Info("the cluster had lost quorum: recovered onto the survivors", "survivors", len(survivors))
	return survivors, nil
}
