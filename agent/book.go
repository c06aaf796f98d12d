package agent

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kith-project/kith/internal/store"
	"github.com/kith-project/kith/internal/transport"
	"github.com/kith-project/kith/roster"
	"github.com/kith-project/kith/seed"
)

// Local is what this device alone knows of another device, as stored in
// bucket "peers": where it is and when it was last heard from. It is never
// replicated; every device learns it for itself.
type Local struct {
	DeviceID seed.DevicePublic `json:"device_id"`
	// Addr is the address the device was last reached at or announced.
	Addr string `json:"addr"`
	// Addrs are other addresses it announced (its invite's, say).
	Addrs []string `json:"addrs,omitempty"`
	// AddrVersion is the version of the newest signed address record
	// applied, so that an older one is never taken again.
	AddrVersion uint64    `json:"addr_version,omitempty"`
	LastSeen    time.Time `json:"last_seen"`
}

// Peer is a known device: its roster entry and what this device knows of
// where it is.
type Peer struct {
	roster.Device
	Addr        string
	Addrs       []string
	AddrVersion uint64
	LastSeen    time.Time
}

func (p Peer) local() Local {
	return Local{DeviceID: p.DeviceID, Addr: p.Addr, Addrs: p.Addrs, AddrVersion: p.AddrVersion, LastSeen: p.LastSeen}
}

// book is the agent's address book: the roster (package roster) and the
// local state of every known device, loaded from the store at start.
// Roster changes are written through at once, in one transaction each.
// Address and last-seen changes, which presence makes from the packet
// path, are written by the book's own writer (see run), never under the
// lock and never on the caller's goroutine. Its methods are safe for
// concurrent use.
type book struct {
	st *store.Store

	mu     sync.Mutex
	roster *roster.Roster                 // guarded by mu; replaced whole on every change
	local  map[seed.DevicePublic]*Local   // guarded by mu
	dirty  map[seed.DevicePublic]struct{} // guarded by mu: local records not yet written
	kick   chan struct{}                  // wakes the writer; buffered, one slot
	werr   error                          // guarded by mu: the writer's last error
	writes atomic.Uint64                  // transactions the writer made
	// published is roster, for readers that must not take mu: the
	// conversations' Directory, which the Book asks inside its store
	// transactions while a roster change holds mu and waits for the
	// store (conv.go).
	published atomic.Pointer[roster.Roster]
	// ownVersion is the version of this device's newest signed address
	// record (presence.VersionBook), kept in bucket "meta" so that a
	// restarted device numbers on from it whatever its clock says.
	ownVersion      uint64 // guarded by mu
	ownVersionDirty bool   // guarded by mu

	// onChange, if set before the agent serves, is called (with mu held;
	// it must not block) after every roster change: rosters.go pushes the
	// new roster.
	onChange func()
	// propose, set before the agent serves, hands every roster change
	// made on this device to the own cluster (cluster.go); nil for none.
	propose func(roster.Change)

	// blocked holds the last addresses of blocked users' devices, derived
	// by refreshLocked after every change. It is read without the lock for
	// every incoming packet.
	blocked atomic.Pointer[map[netip.AddrPort]bool]
	// revokedAt maps the last addresses of revoked devices to them, to
	// tell a revoked device so when its packets are dropped (revoked.go).
	revokedAt atomic.Pointer[map[netip.AddrPort]seed.DevicePublic]
}

func loadBook(st *store.Store, self seed.UserPublic, local seed.DevicePublic) (*book, error) {
	b := &book{
		st:    st,
		local: map[seed.DevicePublic]*Local{},
		dirty: map[seed.DevicePublic]struct{}{},
		kick:  make(chan struct{}, 1),
	}
	err := st.View(func(tx *store.Tx) error {
		r, err := roster.Load(tx, self)
		if err != nil {
			return err
		}
		b.roster = r.WithLocal(local)
		b.published.Store(b.roster)
		if _, err := tx.Get(store.BucketMeta, ownVersionKey, &b.ownVersion); err != nil {
			return fmt.Errorf("our address record version: %w", err)
		}
		return tx.List(store.BucketPeers, func(key string, raw []byte) error {
			var l Local
			if err := json.Unmarshal(raw, &l); err != nil {
				return fmt.Errorf("peer %s: %w", key, err)
			}
			if _, ok := r.Device(l.DeviceID); !ok {
				return nil // left behind by a removal racing a write
			}
			b.local[l.DeviceID] = &l
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("loading the address book: %w", err)
	}
	b.refreshLocked() // no other goroutine has b yet
	return b, nil
}

// ownVersionKey is where bucket "meta" keeps book.ownVersion.
const ownVersionKey = "presence_record_version"

// setOwnVersion takes a new own record version; the writer persists it.
func (b *book) setOwnVersion(v uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if v > b.ownVersion {
		b.ownVersion, b.ownVersionDirty = v, true
		b.wake()
	}
}

// ownVersionNow returns the own record version last set or loaded.
func (b *book) ownVersionNow() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ownVersion
}

// errUnknownPeer is what authorize returns for a key nobody knows.
var errUnknownPeer = errors.New("unknown device")

// devOf converts a key the transport proved into a device ID.
func devOf(pub ed25519.PublicKey) (seed.DevicePublic, bool) {
	var d seed.DevicePublic
	if len(pub) != len(d) {
		return d, false
	}
	copy(d[:], pub)
	return d, true
}

// peerLocked joins a roster entry with its local state.
func (b *book) peerLocked(d roster.Device) Peer {
	p := Peer{Device: d}
	if l := b.local[d.DeviceID]; l != nil {
		p.Addr, p.Addrs, p.AddrVersion, p.LastSeen = l.Addr, append([]string(nil), l.Addrs...), l.AddrVersion, l.LastSeen
	}
	return p
}

// peerFor returns the known device with ID d if it may talk to us: not
// revoked and not a blocked user's.
func (b *book) peerFor(d seed.DevicePublic) (Peer, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	dv, ok := b.roster.Reachable(d)
	if !ok {
		return Peer{}, false
	}
	return b.peerLocked(dv), true
}

// peerForKey is peerFor for a key the transport proved.
func (b *book) peerForKey(pub ed25519.PublicKey) (Peer, bool) {
	d, ok := devOf(pub)
	if !ok {
		return Peer{}, false
	}
	return b.peerFor(d)
}

// revoked reports whether device d was revoked.
func (b *book) revoked(d seed.DevicePublic) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.roster.Revoked(d)
}

// blockedUser reports whether user is blocked.
func (b *book) blockedUser(user seed.UserPublic) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.roster.Blocked(user)
}

// blockedAddr reports whether from is the last address of a blocked user's
// device, so that its packets can be dropped before any work. It takes no
// lock: the transport asks it for every incoming packet.
func (b *book) blockedAddr(from netip.AddrPort) bool {
	m := b.blocked.Load()
	return m != nil && (*m)[from]
}

// revokedDevice returns the revoked device last at from, if any; like
// blockedAddr it takes no lock.
func (b *book) revokedDevice(from netip.AddrPort) (seed.DevicePublic, bool) {
	m := b.revokedAt.Load()
	if m == nil {
		return seed.DevicePublic{}, false
	}
	d, ok := (*m)[from]
	return d, ok
}

// refreshLocked rebuilds what is derived from the roster and the local
// state. Call with mu held, after every change.
func (b *book) refreshLocked() {
	m := map[netip.AddrPort]bool{}
	rv := map[netip.AddrPort]seed.DevicePublic{}
	for _, d := range b.roster.Devices() {
		if !b.roster.Blocked(d.UserID) && !b.roster.Revoked(d.DeviceID) {
			continue
		}
		if l := b.local[d.DeviceID]; l != nil {
			if ap, err := netip.ParseAddrPort(l.Addr); err == nil {
				m[ap] = true
				if b.roster.Revoked(d.DeviceID) {
					rv[ap] = d.DeviceID
				}
			}
		}
	}
	b.blocked.Store(&m)
	b.revokedAt.Store(&rv)
}

// change applies one roster change and writes, in the same transaction, the
// local records in locals and whatever extra writes. Nothing changes in
// memory unless the transaction commits. A committed change goes to the
// own cluster, which replicates it to the other own devices.
func (b *book) change(c roster.Change, locals []Local, extra func(*store.Tx) error) error {
	if err := b.apply(c, locals, extra); err != nil {
		return err
	}
	if b.propose != nil {
		b.propose(c)
	}
	return nil
}

// apply is change without handing the change to the cluster: what the
// cluster's log applies.
func (b *book) apply(c roster.Change, locals []Local, extra func(*store.Tx) error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var next *roster.Roster
	err := b.st.Update(func(tx *store.Tx) error {
		var err error
		if next, err = b.roster.Apply(tx, c); err != nil {
			return err
		}
		for _, l := range locals {
			if err := tx.Put(store.BucketPeers, l.DeviceID.ID(), l); err != nil {
				return err
			}
		}
		// Devices the roster forgot lose their local state too.
		for id := range b.local {
			if _, ok := next.Device(id); !ok {
				if err := tx.Delete(store.BucketPeers, id.ID()); err != nil {
					return err
				}
			}
		}
		if extra != nil {
			return extra(tx)
		}
		return nil
	})
	if err != nil {
		return err
	}
	b.roster = next
	b.published.Store(next)
	for _, l := range locals {
		lc := l
		b.local[l.DeviceID] = &lc
		delete(b.dirty, l.DeviceID)
	}
	for id := range b.local {
		if _, ok := next.Device(id); !ok {
			delete(b.local, id)
			delete(b.dirty, id)
		}
	}
	b.refreshLocked()
	if b.onChange != nil {
		b.onChange()
	}
	return nil
}

// addPairing records a completed pairing, the friend (unless it is our own
// user) and its device, and runs extra (marking invites used) in the same
// transaction. A crash leaves either all of it stored or none.
func (b *book) addPairing(f roster.Friend, p Peer, extra func(*store.Tx) error) error {
	c := roster.Change{Op: roster.OpPair, Device: &p.Device}
	if p.Kind == roster.KindFriend {
		c.Friend = &f
	}
	if err := b.change(c, []Local{p.local()}, extra); err != nil {
		return fmt.Errorf("saving the pairing: %w", err)
	}
	return nil
}

// setAddr moves device d to addr, as presence decided from a signed record
// or an authenticated packet. The change is written by the book's writer,
// not by the caller, which is presence's packet path. A blocked or revoked
// device is not moved: nothing of theirs is stored, and the blocked set,
// which holds their last addresses, stays as it is without a rebuild.
func (b *book) setAddr(d seed.DevicePublic, addr netip.AddrPort, version uint64, now time.Time) (moved bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.roster.Reachable(d); !ok {
		return false
	}
	l := b.local[d]
	if l == nil {
		l = &Local{DeviceID: d}
		b.local[d] = l
	}
	as := addr.String()
	moved = l.Addr != as
	if moved {
		keepRealAddr(l, addr)
		// The address it moved from is kept among the others for
		// presence to try while it is offline, unless it is a relay's
		// virtual address, which means nothing once the route is gone.
		if old, err := netip.ParseAddrPort(l.Addr); err == nil && !transport.IsRelayAddr(old) {
			l.Addrs = keepAddr(l.Addrs, l.Addr, as)
		}
	}
	l.Addr = as
	if version > l.AddrVersion {
		l.AddrVersion = version
	}
	l.LastSeen = now.UTC()
	b.dirty[d] = struct{}{}
	b.wake()
	return moved
}

// maxKeptAddrs bounds a device's other addresses (Local.Addrs).
const maxKeptAddrs = 8

// keepAddr returns addrs with old, the address a device just moved from,
// first (presence tries it, beside the others, while the device is
// offline), without now, the address it moved to, and at most
// maxKeptAddrs long: the oldest go.
func keepAddr(addrs []string, old, now string) []string {
	out := make([]string, 0, maxKeptAddrs)
	if old != "" && old != now {
		out = append(out, old)
	}
	for _, s := range addrs {
		if len(out) == maxKeptAddrs {
			break
		}
		if s != old && s != now {
			out = append(out, s)
		}
	}
	return out
}

// hintAddr takes addr ("HOST:PORT", from the own cluster's log) as device
// d's address if the book has none for it; presence corrects it later.
func (b *book) hintAddr(d seed.DevicePublic, addr string) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.roster.Reachable(d); !ok {
		return
	}
	l := b.local[d]
	if l == nil {
		l = &Local{DeviceID: d}
		b.local[d] = l
	}
	if l.Addr != "" {
		return
	}
	l.Addr = ap.String()
	b.dirty[d] = struct{}{}
	b.wake()
}

// noteLastSeen records last-seen times newer than the known ones; the
// writer persists them on its next write.
func (b *book) noteLastSeen(seen map[seed.DevicePublic]time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for d, t := range seen {
		if l, ok := b.local[d]; ok && t.After(l.LastSeen) {
			l.LastSeen = t.UTC()
			b.dirty[d] = struct{}{}
		}
	}
}

func (b *book) wake() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// minWriteGap spaces the writer's transactions, so that a peer that sends
// many packets from changing addresses costs at most a few fsyncs a second.
const minWriteGap = 250 * time.Millisecond

// run is the book's writer: woken by wake, it persists local changes in
// batches, at most one transaction every minWriteGap, and once more when
// ctx ends.
func (b *book) run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			b.flush()
			return nil
		case <-b.kick:
		}
		b.flush()
		select {
		case <-ctx.Done():
			b.flush()
			return nil
		case <-time.After(minWriteGap):
		}
	}
}

// flush writes every dirty local record in one transaction.
func (b *book) flush() {
	b.mu.Lock()
	var ls []Local
	for d := range b.dirty {
		if l := b.local[d]; l != nil {
			ls = append(ls, storable(*l))
		}
	}
	clear(b.dirty)
	r := b.roster
	own, ownDirty := b.ownVersion, b.ownVersionDirty
	b.ownVersionDirty = false
	b.mu.Unlock()
	// The roster is read before the transaction: change holds mu while it
	// waits for bbolt's writer lock, so taking mu inside one would deadlock.
	var err error
	if len(ls) > 0 || ownDirty {
		b.writes.Add(1)
		err = b.st.Update(func(tx *store.Tx) error {
			if ownDirty {
				if err := tx.Put(store.BucketMeta, ownVersionKey, own); err != nil {
					return err
				}
			}
			for _, l := range ls {
				if _, ok := r.Device(l.DeviceID); !ok {
					continue // removed meanwhile
				}
				if err := tx.Put(store.BucketPeers, l.DeviceID.ID(), l); err != nil {
					return err
				}
			}
			return nil
		})
	}
	b.mu.Lock()
	if err != nil {
		b.werr = fmt.Errorf("saving addresses: %w", err)
		for _, l := range ls {
			b.dirty[l.DeviceID] = struct{}{}
		}
		b.ownVersionDirty = b.ownVersionDirty || ownDirty
	}
	b.mu.Unlock()
}

// rosterNow returns the current roster.
func (b *book) rosterNow() *roster.Roster {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.roster
}

// rosterPublished is rosterNow without the lock: the roster of the last
// change that completed.
func (b *book) rosterPublished() *roster.Roster { return b.published.Load() }

// writeErr returns and clears the writer's last error.
func (b *book) writeErr() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	err := b.werr
	b.werr = nil
	return err
}

// window returns user's presence window secret, if a friend gave it.
func (b *book) window(user seed.UserPublic) []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	if f, ok := b.roster.Friend(user); ok {
		return f.Window
	}
	return nil
}

// setStatus blocks or unblocks user. Blocking a user never met is allowed:
// their invites are then refused. Unblocking one forgets them.
func (b *book) setStatus(user seed.UserPublic, status roster.Status) (roster.Friend, error) {
	if err := b.change(roster.Change{Op: roster.OpStatus, User: user, Status: status}, nil, nil); err != nil {
		if errors.Is(err, roster.ErrNoFriend) {
			return roster.Friend{}, errNoFriend
		}
		return roster.Friend{}, fmt.Errorf("saving %s: %w", user, err)
	}
	f, ok := b.rosterNow().Friend(user)
	if !ok {
		f = roster.Friend{UserID: user, Status: status}
	}
	return f, nil
}

var errNoFriend = errors.New("no such friend")

// remove forgets user and every device of theirs, and returns those
// devices.
func (b *book) remove(user seed.UserPublic) ([]seed.DevicePublic, error) {
	devs := b.devicesOf(user)
	if err := b.change(roster.Change{Op: roster.OpRemove, User: user}, nil, nil); err != nil {
		if errors.Is(err, roster.ErrNoFriend) {
			return nil, errNoFriend
		}
		return nil, fmt.Errorf("removing %s: %w", user, err)
	}
	return devs, nil
}

// snapshot returns copies of every friend and known device, sorted.
func (b *book) snapshot() ([]roster.Friend, []Peer) {
	b.mu.Lock()
	defer b.mu.Unlock()
	fs := b.roster.Friends()
	ds := b.roster.Devices()
	ps := make([]Peer, 0, len(ds))
	for _, d := range ds {
		ps = append(ps, b.peerLocked(d))
	}
	return fs, ps
}

// reachable returns every device that may talk to us, for heartbeats and
// reconnects, sorted by device ID (as roster.Devices is).
func (b *book) reachable() []Peer {
	b.mu.Lock()
	defer b.mu.Unlock()
	var ps []Peer
	for _, d := range b.roster.Devices() {
		if _, ok := b.roster.Reachable(d.DeviceID); ok {
			ps = append(ps, b.peerLocked(d))
		}
	}
	return ps
}

// devicesOf returns the device IDs of user.
func (b *book) devicesOf(user seed.UserPublic) []seed.DevicePublic {
	b.mu.Lock()
	defer b.mu.Unlock()
	var ids []seed.DevicePublic
	for _, d := range b.roster.DevicesOf(user) {
		ids = append(ids, d.DeviceID)
	}
	return ids
}
