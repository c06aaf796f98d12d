package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"

	"github.com/kith-project/kith/cluster"
	"github.com/kith-project/kith/roster"
	"github.com/kith-project/kith/seed"
)

// clusterState is the own cluster's state machine: the roster in the
// book. Commands of kind roster are one roster.Change each; a merge, and
// a snapshot, is a rosterDoc, applied additively.
type clusterState struct{ a *Agent }

var _ cluster.State = clusterState{}

// rosterDoc is a whole roster as the cluster snapshots and merges it.
type rosterDoc struct {
	Friends     []roster.Friend `json:"friends"`
	Devices     []roster.Device `json:"devices"`
	Revocations [][]byte        `json:"revocations"`
	// Archive is the archive placement (archive_state.go); older
	// snapshots have none.
	Archive *archiveDoc `json:"archive,omitempty"`
}

// Apply applies a committed command. A change this device already made
// locally changes nothing the second time.
func (s clusterState) Apply(c cluster.Command) error {
	if c.Kind == kindConvIndex {
		return s.a.applyConvIndex(c.Body)
	}
	if c.Kind == kindArchivePlace {
		return s.a.applyArchivePlace(c.Body)
	}
	changes, err := decodeClusterCommand(c)
	if err != nil {
		return err
	}
	return s.applyAll(changes, c.Hints)
}

// decodeClusterCommand turns a command into the roster changes it makes,
// in order: one for kind roster; for a merge (and a snapshot), the
// revocations first, so that no revoked device comes back, then the
// devices and friends, then the blocks.
func decodeClusterCommand(c cluster.Command) ([]roster.Change, error) {
	switch c.Kind {
	case cluster.KindRoster:
		var ch roster.Change
		if err := json.Unmarshal(c.Body, &ch); err != nil {
			return nil, fmt.Errorf("%w: %w", roster.ErrBadChange, err)
		}
		return []roster.Change{ch}, nil
	case cluster.KindRosterMerge:
		return decodeRosterDoc(c.Body)
	}
	return nil, fmt.Errorf("unknown command kind %q", c.Kind)
}

// maxDocEntries bounds each list of a rosterDoc.
const maxDocEntries = 10000

func decodeRosterDoc(b []byte) ([]roster.Change, error) {
	var doc rosterDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%w: %w", roster.ErrBadChange, err)
	}
	if len(doc.Friends) > maxDocEntries || len(doc.Devices) > maxDocEntries || len(doc.Revocations) > maxDocEntries {
		return nil, fmt.Errorf("%w: a roster of more than %d entries", roster.ErrBadChange, maxDocEntries)
	}
	var out []roster.Change
	for _, rv := range doc.Revocations {
		out = append(out, roster.Change{Op: roster.OpRevoke, Revocation: rv})
	}
	friends := map[seed.UserPublic]roster.Friend{}
	for _, f := range doc.Friends {
		friends[f.UserID] = f
	}
	for _, d := range doc.Devices {
		c := roster.Change{Op: roster.OpPair, Device: &d}
		if d.Kind == roster.KindFriend {
			f, ok := friends[d.UserID]
			if !ok {
				continue
			}
			c.Friend = &f
		}
		out = append(out, c)
	}
	for _, f := range doc.Friends {
		if f.Status == roster.StatusBlocked {
			out = append(out, roster.Change{Op: roster.OpStatus, User: f.UserID, Status: f.Status})
		}
	}
	return out, nil
}

// applyAll applies changes in order. Of several (a merge), what one device
// holds that another refuses (a revoked device, say) is dropped there.
func (s clusterState) applyAll(changes []roster.Change, hints map[string]string) error {
	var errs []error
	for _, c := range changes {
		if err := s.a.applyReplicated(c, hints); err != nil {
			if len(changes) == 1 || (!errors.Is(err, roster.ErrRevoked) && !errors.Is(err, roster.ErrNoFriend) && !errors.Is(err, roster.ErrBadChange)) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// Snapshot returns the roster as a rosterDoc.
func (s clusterState) Snapshot() ([]byte, error) {
	r := s.a.book.rosterNow()
	ad := s.a.archives.state.doc()
	doc := rosterDoc{Friends: r.Friends(), Devices: r.Devices(), Revocations: [][]byte{}, Archive: &ad}
	for _, rev := range r.Revocations() {
		doc.Revocations = append(doc.Revocations, rev.Marshal())
	}
	return json.Marshal(doc)
}

// Hints are the addresses of the own devices this device knows.
func (s clusterState) Hints() map[string]string {
	h := map[string]string{}
	h[s.a.dev.Cert.Device.ID()] = s.a.Addr().String()
	for _, p := range s.a.book.reachable() {
		if p.Kind == roster.KindOwn && p.Addr != "" {
			h[p.DeviceID.ID()] = p.Addr
		}
	}
	return h
}

// Restore merges a snapshot.
func (s clusterState) Restore(b []byte) error {
	changes, err := decodeRosterDoc(b)
	if err != nil {
		return err
	}
	if err := s.a.restoreArchiveDoc(b); err != nil {
		return err
	}
	return s.applyAll(changes, nil)
}

// applyReplicated applies a change from the cluster's log to the book,
// unless the roster holds it already, and acts on it as the device that
// made it did (closing a blocked or revoked device's connections).
func (a *Agent) applyReplicated(c roster.Change, hints map[string]string) error {
	r := a.book.rosterNow()
	if noop(r, c, a.dev.Cert.Device) {
		if c.Device != nil {
			a.book.hintAddr(c.Device.DeviceID, hints[c.Device.DeviceID.ID()])
		}
		return nil
	}
	var locals []Local
	if c.Device != nil {
		if h, ok := hints[c.Device.DeviceID.ID()]; ok {
			if ap, err := netip.ParseAddrPort(h); err == nil && !a.bookAddr(c.Device.DeviceID).IsValid() {
				locals = append(locals, Local{DeviceID: c.Device.DeviceID, Addr: ap.String()})
			}
		}
	}
	var devs []seed.DevicePublic
	if c.Op == roster.OpRemove || (c.Op == roster.OpStatus && c.Status == roster.StatusBlocked) {
		devs = a.book.devicesOf(c.User)
	}
	if err := a.book.apply(c, locals, nil); err != nil {
		return err
	}
	if c.Op == roster.OpRevoke {
		if rev, err := seed.ParseRevocation(c.Revocation); err == nil {
			devs = append(devs, rev.Device)
		}
	}
	if len(devs) > 0 {
		a.closeDevices(devs)
	}
	return nil
}

// noop reports whether roster r already holds what c would write, or c
// names this device itself (another device's list of own devices holds
// it, ours does not).
func noop(r *roster.Roster, c roster.Change, self seed.DevicePublic) bool {
	switch c.Op {
	case roster.OpPair:
		if c.Device == nil {
			return false
		}
		if c.Device.DeviceID.Equal(self) {
			return true
		}
		d, ok := r.Device(c.Device.DeviceID)
		if !ok || d.Name != c.Device.Name || string(d.Cert) != string(c.Device.Cert) || d.Kind != c.Device.Kind {
			return false
		}
		if c.Device.Kind == roster.KindFriend && c.Friend != nil {
			f, ok := r.Friend(c.Friend.UserID)
			return ok && f.Met()
		}
		return true
	case roster.OpStatus:
		f, ok := r.Friend(c.User)
		return ok && f.Status == c.Status
	case roster.OpRemove:
		_, ok := r.Friend(c.User)
		return !ok
	case roster.OpRevoke:
		rev, err := seed.ParseRevocation(c.Revocation)
		return err == nil && r.Revoked(rev.Device)
	}
	return false
}
