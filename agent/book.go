package agent

import (
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kith-project/kith/internal/store"
)

// Kinds of peer.
const (
	KindOwn    = "own"    // another device of this user
	KindFriend = "friend" // a device of a friend
)

// Friend statuses.
const (
	StatusFriend  = "friend"
	StatusBlocked = "blocked"
)

// Friend is a user paired with in person, as stored in bucket "friends".
type Friend struct {
	UserID   string    `json:"user_id"`
	Name     string    `json:"name"`
	Status   string    `json:"status"`
	SAS      string    `json:"sas,omitempty"`
	PairedAt time.Time `json:"paired_at"`
	// Window is the friend's presence window secret, given at pairing so
	// that this device can find theirs in quiet mode.
	Window []byte `json:"window,omitempty"`
}

// Peer is a known device, own or a friend's, as stored in bucket "peers".
type Peer struct {
	DeviceID string `json:"device_id"`
	UserID   string `json:"user_id"`
	Kind     string `json:"kind"`
	Name     string `json:"name"`
	// Cert is the device certificate signed by the device's user key.
	Cert []byte `json:"cert,omitempty"`
	// Addr is the address the device was last reached at or announced.
	Addr string `json:"addr"`
	// Addrs are other addresses it announced (its invite's, say).
	Addrs []string `json:"addrs,omitempty"`
	// AddrVersion is the version of the newest signed address record
	// applied, so that an older one is never taken again.
	AddrVersion uint64    `json:"addr_version,omitempty"`
	LastSeen    time.Time `json:"last_seen"`
}

// book is the agent's address book: friends and known devices, loaded from
// the store at start and written through on every change. Its methods are
// safe for concurrent use.
type book struct {
	st *store.Store

	mu      sync.Mutex
	friends map[string]*Friend // by user ID; guarded by mu
	peers   map[string]*Peer   // by device ID; guarded by mu

	// blocked holds the last addresses of blocked users' devices, derived
	// from friends and peers by refreshLocked after every change. It is read
	// without the lock for every incoming packet.
	blocked atomic.Pointer[map[netip.AddrPort]bool]
}

func loadBook(st *store.Store) (*book, error) {
	b := &book{st: st, friends: map[string]*Friend{}, peers: map[string]*Peer{}}
	defer b.refreshLocked() // no other goroutine has b yet
	err := st.List("friends", func(key string, raw []byte) error {
		var f Friend
		if err := json.Unmarshal(raw, &f); err != nil {
			return fmt.Errorf("friend %s: %w", key, err)
		}
		b.friends[f.UserID] = &f
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("loading friends: %w", err)
	}
	err = st.List("peers", func(key string, raw []byte) error {
		var p Peer
		if err := json.Unmarshal(raw, &p); err != nil {
			return fmt.Errorf("peer %s: %w", key, err)
		}
		b.peers[p.DeviceID] = &p
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("loading peers: %w", err)
	}
	return b, nil
}

// errUnknownPeer is what authorize returns for a key nobody knows.
var errUnknownPeer = errors.New("unknown device")

// peerFor returns a copy of the known, unblocked device with key pub.
func (b *book) peerFor(pub []byte) (Peer, bool) {
	id := hex.EncodeToString(pub)
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.peers[id]
	if !ok {
		return Peer{}, false
	}
	if f, ok := b.friends[p.UserID]; ok && f.Status == StatusBlocked {
		return Peer{}, false
	}
	// Map lookup by hex is not constant time; confirm the key itself.
	raw, err := hex.DecodeString(p.DeviceID)
	if err != nil || subtle.ConstantTimeCompare(raw, pub) != 1 {
		return Peer{}, false
	}
	return *p, true
}

// blockedUser reports whether user is blocked.
func (b *book) blockedUser(user string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	f, ok := b.friends[user]
	return ok && f.Status == StatusBlocked
}

// blockedAddr reports whether from is the last address of a blocked user's
// device, so that its packets can be dropped before any work. It takes no
// lock: the transport asks it for every incoming packet.
func (b *book) blockedAddr(from netip.AddrPort) bool {
	m := b.blocked.Load()
	return m != nil && (*m)[from]
}

// refreshLocked rebuilds the set of blocked addresses. Call with mu held,
// after every change to friends or peers.
func (b *book) refreshLocked() {
	m := map[netip.AddrPort]bool{}
	for _, p := range b.peers {
		if f, ok := b.friends[p.UserID]; ok && f.Status == StatusBlocked {
			if ap, err := netip.ParseAddrPort(p.Addr); err == nil {
				m[ap] = true
			}
		}
	}
	b.blocked.Store(&m)
}

// addPairing records a completed pairing: the friend (unless it is our own
// user) and its device.
func (b *book) addPairing(f Friend, p Peer) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	defer b.refreshLocked()
	err := b.st.Update(func(tx *store.Tx) error {
		if p.Kind == KindFriend {
			if err := tx.Put("friends", f.UserID, f); err != nil {
				return err
			}
		}
		return tx.Put("peers", p.DeviceID, p)
	})
	if err != nil {
		return fmt.Errorf("saving the pairing: %w", err)
	}
	if p.Kind == KindFriend {
		fc := f
		b.friends[f.UserID] = &fc
	}
	pc := p
	b.peers[p.DeviceID] = &pc
	return nil
}

// setAddr moves device id to addr, as presence decided from a signed
// record or an authenticated packet, and persists it at once.
func (b *book) setAddr(id string, addr netip.AddrPort, version uint64, now time.Time) (moved bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	defer b.refreshLocked()
	p, ok := b.peers[id]
	if !ok {
		return false, nil
	}
	moved = p.Addr != addr.String()
	p.Addr = addr.String()
	if version > p.AddrVersion {
		p.AddrVersion = version
	}
	p.LastSeen = now.UTC()
	if err := b.st.Put("peers", id, p); err != nil {
		return false, fmt.Errorf("saving %s's address: %w", id, err)
	}
	return moved, nil
}

// window returns user's presence window secret, if a friend gave it.
func (b *book) window(user string) []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	if f, ok := b.friends[user]; ok {
		return f.Window
	}
	return nil
}

// saveLastSeen persists the last-seen times that are newer than the
// stored ones, in one transaction. seen maps device IDs to times.
func (b *book) saveLastSeen(seen map[string]time.Time) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var changed []*Peer
	for id, t := range seen {
		if p, ok := b.peers[id]; ok && t.After(p.LastSeen) {
			p.LastSeen = t.UTC()
			changed = append(changed, p)
		}
	}
	if len(changed) == 0 {
		return nil
	}
	return b.st.Update(func(tx *store.Tx) error {
		for _, p := range changed {
			if err := tx.Put("peers", p.DeviceID, p); err != nil {
				return err
			}
		}
		return nil
	})
}

// setStatus blocks or unblocks user. Blocking a user never met is allowed:
// their invites are then refused.
func (b *book) setStatus(user, status string) (Friend, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	defer b.refreshLocked()
	f, ok := b.friends[user]
	if !ok {
		if status != StatusBlocked {
			return Friend{}, errNoFriend
		}
		f = &Friend{UserID: user}
	}
	nf := *f
	nf.Status = status
	if err := b.st.Put("friends", user, nf); err != nil {
		return Friend{}, fmt.Errorf("saving %s: %w", user, err)
	}
	b.friends[user] = &nf
	return nf, nil
}

var errNoFriend = errors.New("no such friend")

// remove forgets user and every device of theirs.
func (b *book) remove(user string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	defer b.refreshLocked()
	if _, ok := b.friends[user]; !ok {
		return errNoFriend
	}
	err := b.st.Update(func(tx *store.Tx) error {
		if err := tx.Delete("friends", user); err != nil {
			return err
		}
		for id, p := range b.peers {
			if p.UserID == user {
				if err := tx.Delete("peers", id); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("removing %s: %w", user, err)
	}
	delete(b.friends, user)
	for id, p := range b.peers {
		if p.UserID == user {
			delete(b.peers, id)
		}
	}
	return nil
}

// snapshot returns copies of every friend and peer, sorted.
func (b *book) snapshot() ([]Friend, []Peer) {
	b.mu.Lock()
	defer b.mu.Unlock()
	fs := make([]Friend, 0, len(b.friends))
	for _, f := range b.friends {
		fs = append(fs, *f)
	}
	ps := make([]Peer, 0, len(b.peers))
	for _, p := range b.peers {
		ps = append(ps, *p)
	}
	sort.Slice(fs, func(i, j int) bool { return fs[i].UserID < fs[j].UserID })
	sort.Slice(ps, func(i, j int) bool { return ps[i].DeviceID < ps[j].DeviceID })
	return fs, ps
}

// reachable returns every unblocked peer, for heartbeats and reconnects.
func (b *book) reachable() []Peer {
	b.mu.Lock()
	defer b.mu.Unlock()
	var ps []Peer
	for _, p := range b.peers {
		if f, ok := b.friends[p.UserID]; ok && f.Status == StatusBlocked {
			continue
		}
		ps = append(ps, *p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].DeviceID < ps[j].DeviceID })
	return ps
}

// devicesOf returns the device IDs of user.
func (b *book) devicesOf(user string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var ids []string
	for id, p := range b.peers {
		if p.UserID == user {
			ids = append(ids, id)
		}
	}
	return ids
}
