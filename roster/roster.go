// Package roster is what a user's devices agree on: which devices belong to
// the user, which users are friends, and which devices were revoked.
//
// # Replicated and local state
//
// A device's knowledge splits in two. The roster is the part that every
// device of the user shares, and that the own cluster (Raft, package
// cluster) will replicate: device certificates, names, kinds and
// revocations, and friends with their status. Addresses, address versions
// and last-seen times are local: each device learns them for itself from
// presence, and they stay in the agent's address book.
//
// A [Roster] is an immutable value. [Roster.Apply] takes one [Change] and
// returns the next roster, writing exactly the records the change touched
// into a store transaction; the caller installs the new roster once the
// transaction has committed. A Raft state machine applies the same changes
// from its log, so a change is a small JSON document ([Change]).
//
// # Store layout
//
// Bucket "friends" holds a [Friend] per user ID, bucket "devices" a [Device]
// per device ID (own devices and friends' devices), bucket "revocations" the
// signed revocation of each revoked device, by device ID. Keys are lowercase
// hex IDs.
package roster

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/kith-project/kith/internal/store"
	"github.com/kith-project/kith/seed"
)

// Kind is how a device relates to this user.
type Kind string

// Kinds of device.
const (
	KindOwn    Kind = "own"    // another device of this user
	KindFriend Kind = "friend" // a device of a friend
)

// Status is a friend's standing.
type Status string

// Friend statuses.
const (
	StatusFriend  Status = "friend"
	StatusBlocked Status = "blocked"
)

// Friend is a user paired with in person.
type Friend struct {
	UserID   seed.UserPublic `json:"user_id"`
	Name     string          `json:"name"`
	Status   Status          `json:"status"`
	SAS      string          `json:"sas,omitempty"`
	PairedAt time.Time       `json:"paired_at"`
	// Window is the friend's presence window secret, given at pairing so
	// that this user's devices can find theirs in quiet mode.
	Window []byte `json:"window,omitempty"`
}

// Met reports whether the friend was ever paired with, as opposed to a
// user blocked before any meeting.
func (f Friend) Met() bool { return !f.PairedAt.IsZero() }

// Device is a known device, own or a friend's.
type Device struct {
	DeviceID seed.DevicePublic `json:"device_id"`
	UserID   seed.UserPublic   `json:"user_id"`
	Kind     Kind              `json:"kind"`
	Name     string            `json:"name"`
	// Cert is the device certificate signed by the device's user key.
	Cert []byte `json:"cert,omitempty"`
}

// Errors that callers branch on.
var (
	// ErrNoFriend: the change names a user who is not a friend.
	ErrNoFriend = errors.New("roster: no such friend")
	// ErrRevoked: the change names a device that was revoked.
	ErrRevoked = errors.New("roster: the device was revoked")
	// ErrBadChange: the change is malformed.
	ErrBadChange = errors.New("roster: malformed change")
)

// Roster is the replicated state of one user. It is immutable: Apply
// returns a new one. The zero value is not usable; use [New] or [Load].
type Roster struct {
	self    seed.UserPublic
	local   seed.DevicePublic // this device, never listed as a peer; zero if unset
	friends map[seed.UserPublic]Friend
	devices map[seed.DevicePublic]Device
	revoked map[seed.DevicePublic]seed.Revocation
}

// New returns the empty roster of user self.
func New(self seed.UserPublic) *Roster {
	return &Roster{
		self:    self,
		friends: map[seed.UserPublic]Friend{},
		devices: map[seed.DevicePublic]Device{},
		revoked: map[seed.DevicePublic]seed.Revocation{},
	}
}

// Load reads the roster of user self from the store.
func Load(tx *store.Tx, self seed.UserPublic) (*Roster, error) {
	r := New(self)
	err := tx.List(store.BucketFriends, func(key string, raw []byte) error {
		var f Friend
		if err := json.Unmarshal(raw, &f); err != nil {
			return fmt.Errorf("friend %s: %w", key, err)
		}
		r.friends[f.UserID] = f
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("roster: loading friends: %w", err)
	}
	err = tx.List(store.BucketDevices, func(key string, raw []byte) error {
		var d Device
		if err := json.Unmarshal(raw, &d); err != nil {
			return fmt.Errorf("device %s: %w", key, err)
		}
		r.devices[d.DeviceID] = d
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("roster: loading devices: %w", err)
	}
	err = tx.List(store.BucketRevocations, func(key string, raw []byte) error {
		var b []byte
		if err := json.Unmarshal(raw, &b); err != nil {
			return fmt.Errorf("revocation %s: %w", key, err)
		}
		rev, err := seed.ParseRevocation(b)
		if err != nil {
			return fmt.Errorf("revocation %s: %w", key, err)
		}
		r.revoked[rev.Device] = rev
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("roster: loading revocations: %w", err)
	}
	return r, nil
}

// WithLocal returns r with d recorded as the device that holds it: a
// merged roster ([OpMerge]) never lists it among the devices, and
// [Roster.LocalRevoked] says whether a revocation names it.
func (r *Roster) WithLocal(d seed.DevicePublic) *Roster {
	n := r.clone()
	n.local = d
	return n
}

// LocalRevoked returns the revocation of the device that holds r, if this
// user's key revoked it.
func (r *Roster) LocalRevoked() (seed.Revocation, bool) {
	rev, ok := r.revoked[r.local]
	if !ok || !rev.User.Equal(r.self) {
		return seed.Revocation{}, false
	}
	return rev, true
}

// Self is the user whose roster this is.
func (r *Roster) Self() seed.UserPublic { return r.self }

// Friend returns the friend with user ID u.
func (r *Roster) Friend(u seed.UserPublic) (Friend, bool) {
	f, ok := r.friends[u]
	return f, ok
}

// Device returns the device with ID d, revoked or not.
func (r *Roster) Device(d seed.DevicePublic) (Device, bool) {
	dv, ok := r.devices[d]
	return dv, ok
}

// Revoked reports whether device d was revoked: by its own user's key, if
// the roster knows whose device it is.
func (r *Roster) Revoked(d seed.DevicePublic) bool {
	rev, ok := r.revoked[d]
	if !ok {
		return false
	}
	if dv, known := r.devices[d]; known && !dv.UserID.Equal(rev.User) {
		return false
	}
	return true
}

// revokedAs reports whether device d was revoked by user's key.
func (r *Roster) revokedAs(d seed.DevicePublic, user seed.UserPublic) bool {
	rev, ok := r.revoked[d]
	return ok && rev.User.Equal(user)
}

// Revocations returns every revocation, sorted by device ID.
func (r *Roster) Revocations() []seed.Revocation {
	out := make([]seed.Revocation, 0, len(r.revoked))
	for _, rev := range r.revoked {
		out = append(out, rev)
	}
	slices.SortFunc(out, func(a, b seed.Revocation) int { return bytes.Compare(a.Device[:], b.Device[:]) })
	return out
}

// Blocked reports whether user u is blocked.
func (r *Roster) Blocked(u seed.UserPublic) bool {
	f, ok := r.friends[u]
	return ok && f.Status == StatusBlocked
}

// Reachable reports whether device d may talk to us: known, not revoked,
// and not a blocked user's.
func (r *Roster) Reachable(d seed.DevicePublic) (Device, bool) {
	dv, ok := r.devices[d]
	if !ok || r.Revoked(d) || r.Blocked(dv.UserID) {
		return Device{}, false
	}
	return dv, true
}

// Friends returns every friend, sorted by user ID.
func (r *Roster) Friends() []Friend {
	out := make([]Friend, 0, len(r.friends))
	for _, f := range r.friends {
		out = append(out, f)
	}
	// Byte order is the order of the lowercase hex IDs, without encoding.
	slices.SortFunc(out, func(a, b Friend) int { return bytes.Compare(a.UserID[:], b.UserID[:]) })
	return out
}

// Devices returns every known device, sorted by device ID.
func (r *Roster) Devices() []Device {
	out := make([]Device, 0, len(r.devices))
	for _, d := range r.devices {
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b Device) int { return bytes.Compare(a.DeviceID[:], b.DeviceID[:]) })
	return out
}

// DevicesOf returns the devices of user u, sorted by device ID.
func (r *Roster) DevicesOf(u seed.UserPublic) []Device {
	var out []Device
	for _, d := range r.Devices() {
		if d.UserID.Equal(u) {
			out = append(out, d)
		}
	}
	return out
}

// Op names what a Change does.
type Op string

// Operations.
const (
	// OpPair records a completed pairing: Device, and Friend unless the
	// device is one of our own.
	OpPair Op = "pair"
	// OpStatus sets User's status to Status. Blocking a user never met is
	// allowed (their invites are then refused); unblocking such a user
	// forgets them.
	OpStatus Op = "status"
	// OpRemove forgets User and every device of theirs.
	OpRemove Op = "remove"
	// OpRevoke records Revocation, signed by this user's key, and forgets
	// nothing else: the revoked device stays listed as revoked.
	OpRevoke Op = "revoke"
	// OpMerge takes Roster, a signed roster (signed.go) of this user or of
	// a friend, as a union: see [Roster.merge].
	OpMerge Op = "merge"
)

// Change is one replicated change to a roster.
type Change struct {
	Op         Op              `json:"op"`
	Friend     *Friend         `json:"friend,omitempty"`
	Device     *Device         `json:"device,omitempty"`
	User       seed.UserPublic `json:"user,omitzero"`
	Status     Status          `json:"status,omitempty"`
	Revocation []byte          `json:"revocation,omitempty"`
	// Roster is a signed roster's binary form, for OpMerge.
	Roster []byte `json:"roster,omitempty"`
}

// Apply returns the roster with c applied, after writing every record c
// changes into tx. r itself is unchanged; install the result only after tx
// committed.
func (r *Roster) Apply(tx *store.Tx, c Change) (*Roster, error) {
	next := r.clone()
	switch c.Op {
	case OpPair:
		if c.Device == nil {
			return nil, fmt.Errorf("%w: pair without a device", ErrBadChange)
		}
		d := *c.Device
		if next.revokedAs(d.DeviceID, d.UserID) {
			return nil, fmt.Errorf("%w: %s", ErrRevoked, d.DeviceID)
		}
		if _, ok := next.revoked[d.DeviceID]; ok {
			// Another user's key "revoked" this device: met in person, it
			// is not theirs, and their word on it goes.
			if err := next.deleteRevocation(tx, d.DeviceID); err != nil {
				return nil, err
			}
		}
		if d.Kind == KindFriend {
			if c.Friend == nil || !c.Friend.UserID.Equal(d.UserID) {
				return nil, fmt.Errorf("%w: a friend's device without its friend", ErrBadChange)
			}
			if err := next.putFriend(tx, *c.Friend); err != nil {
				return nil, err
			}
		}
		if err := next.putDevice(tx, d); err != nil {
			return nil, err
		}
	case OpStatus:
		f, ok := next.friends[c.User]
		switch {
		case c.Status != StatusFriend && c.Status != StatusBlocked:
			return nil, fmt.Errorf("%w: status %q", ErrBadChange, c.Status)
		case !ok && c.Status != StatusBlocked:
			return nil, ErrNoFriend
		case !ok:
			f = Friend{UserID: c.User}
		}
		f.Status = c.Status
		if f.Status == StatusFriend && !f.Met() {
			// Unblocking a user never met leaves nothing to keep.
			if err := next.removeUser(tx, c.User); err != nil {
				return nil, err
			}
			break
		}
		if err := next.putFriend(tx, f); err != nil {
			return nil, err
		}
	case OpRemove:
		if _, ok := next.friends[c.User]; !ok {
			return nil, ErrNoFriend
		}
		if err := next.removeUser(tx, c.User); err != nil {
			return nil, err
		}
	case OpRevoke:
		rev, err := seed.ParseRevocation(c.Revocation)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadChange, err)
		}
		if !rev.User.Equal(r.self) {
			return nil, fmt.Errorf("%w: the revocation is signed by another user", ErrBadChange)
		}
		if err := next.putRevocation(tx, rev); err != nil {
			return nil, err
		}
	case OpMerge:
		if err := next.merge(tx, c.Roster); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%w: unknown operation %q", ErrBadChange, c.Op)
	}
	return next, nil
}

func (r *Roster) clone() *Roster {
	return &Roster{self: r.self, local: r.local, friends: maps.Clone(r.friends), devices: maps.Clone(r.devices), revoked: maps.Clone(r.revoked)}
}

func (r *Roster) putFriend(tx *store.Tx, f Friend) error {
	if err := tx.Put(store.BucketFriends, f.UserID.ID(), f); err != nil {
		return fmt.Errorf("roster: %w", err)
	}
	r.friends[f.UserID] = f
	return nil
}

func (r *Roster) putDevice(tx *store.Tx, d Device) error {
	if err := tx.Put(store.BucketDevices, d.DeviceID.ID(), d); err != nil {
		return fmt.Errorf("roster: %w", err)
	}
	r.devices[d.DeviceID] = d
	return nil
}

// removeUser forgets user u and every device of theirs.
func (r *Roster) removeUser(tx *store.Tx, u seed.UserPublic) error {
	if err := tx.Delete(store.BucketFriends, u.ID()); err != nil {
		return fmt.Errorf("roster: %w", err)
	}
	delete(r.friends, u)
	for id, d := range r.devices {
		if d.UserID.Equal(u) {
			if err := tx.Delete(store.BucketDevices, id.ID()); err != nil {
				return fmt.Errorf("roster: %w", err)
			}
			delete(r.devices, id)
		}
	}
	return nil
}
