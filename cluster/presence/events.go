package presence

import (
	"net/netip"
	"sync"
	"time"

	"github.com/kith-project/kith/seed"
)

// EventKind says what an Event reports.
type EventKind uint8

// Kinds of event.
const (
	// PeerOnline: a peer that was not online (or not yet heard from since
	// New) sent an authenticated packet. Addr is where it came from.
	PeerOnline EventKind = iota + 1
	// PeerOffline: a peer stopped meeting the online rule (see
	// PeerStatus.Online), or left the book while online. Addr is its
	// last known address. Step notices it on time, with no packet needed.
	PeerOffline
	// PeerMoved: presence gave the book a new address for a peer, from an
	// authenticated packet or a signed record. Addr is the new address.
	PeerMoved
	// OwnAddrChanged: we signed a new record advertising Addr, our own
	// new address. Device is zero.
	OwnAddrChanged
	// PublicAddrChanged: the latest evidence of our public address, from
	// STUN or from what a peer saw, is Addr. Device is zero.
	PublicAddrChanged
)

var kindNames = [...]string{PeerOnline: "peer-online", PeerOffline: "peer-offline", PeerMoved: "peer-moved",
	OwnAddrChanged: "own-addr-changed", PublicAddrChanged: "public-addr-changed"}

func (k EventKind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return "unknown"
}

// Event is a change presence noticed.
type Event struct {
	Kind   EventKind
	Device seed.DevicePublic // the peer; zero for our own address
	Addr   netip.AddrPort
	At     time.Time // by presence's clock (Config.Now)
}

// subscribers are the channels events go to. Its own lock, taken after
// Presence.mu when both are held, so that events can be sent from where
// they are noticed.
type subscribers struct {
	mu   sync.Mutex
	subs map[chan Event]struct{}
}

// Subscribe returns a channel that receives every Event from now on, in
// the order presence noticed them, and a cancel function that stops the
// events and closes the channel; cancel may be called any number of times.
// Events are sent without ever waiting: presence's packet path and Run
// never block on a subscriber. A subscriber that falls more than buffer
// events behind (buffer is at least 1) loses the events that do not fit,
// counted in Stats.EventsDropped; after a gap it can read the state
// itself (Status, OwnRecord, PublicAddrs). Subscribe starts no goroutine.
func (p *Presence) Subscribe(buffer int) (events <-chan Event, cancel func()) {
	ch := make(chan Event, max(buffer, 1))
	s := &p.subs
	s.mu.Lock()
	if s.subs == nil {
		s.subs = map[chan Event]struct{}{}
	}
	s.subs[ch] = struct{}{}
	s.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			s.mu.Lock()
			delete(s.subs, ch)
			close(ch)
			s.mu.Unlock()
		})
	}
}

// emit sends ev to every subscriber that has room, and counts the others.
func (p *Presence) emit(ev Event) {
	s := &p.subs
	s.mu.Lock()
	defer s.mu.Unlock()
	for ch := range s.subs {
		select {
		case ch <- ev:
		default:
			p.n.eventsDropped.Add(1)
		}
	}
}

// offlineAtLocked returns the first instant at which the online peer ps,
// among n peers, stops being online by onlineLocked if nothing arrives.
func (p *Presence) offlineAtLocked(ps *peerState, n int) time.Time {
	at := ps.lastSeen.Add(OnlineIntervals*p.cfg.Interval*time.Duration(max(n, 1)) + 1)
	grace := max(p.cfg.Interval/2, 2*time.Second)
	unanswered := 0
	for _, b := range ps.pending { // in the order sent
		sent := time.Unix(0, b.t1)
		if !sent.After(ps.lastSeen) {
			continue
		}
		if unanswered++; unanswered == 2 {
			at = minTime(at, sent.Add(grace+1))
			break
		}
	}
	return at
}

// checkOnlineLocked notices the peers that went offline by now among the
// book's peers, emits their events, and sets nextOffline to when the next
// one would.
func (p *Presence) checkOnlineLocked(book []PeerInfo, now time.Time) {
	inBook := make(map[seed.DevicePublic]PeerInfo, len(book))
	for _, pi := range book {
		inBook[pi.Device] = pi
	}
	p.nextOffline = time.Time{}
	for d, ps := range p.peers {
		if !ps.online {
			continue
		}
		pi, ok := inBook[d]
		if ok && p.onlineLocked(ps, now, len(book)) {
			p.nextOffline = minTime(p.nextOffline, p.offlineAtLocked(ps, len(book)))
			continue
		}
		ps.online = false
		p.emit(Event{Kind: PeerOffline, Device: d, Addr: pi.Addr, At: now})
	}
}

// minTime is the earlier of a and b, a zero time counting as none.
func minTime(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}
