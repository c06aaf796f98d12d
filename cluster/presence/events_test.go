package presence_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/kith-project/kith/cluster/presence"
	"github.com/kith-project/kith/cluster/presence/presencetest"
	"github.com/kith-project/kith/seed"
)

// drain returns the events waiting on ch, without waiting for more.
func drain(ch <-chan presence.Event) (out []presence.Event) {
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return out
			}
			out = append(out, ev)
		default:
			return out
		}
	}
}

// find returns the first event of kind about device in evs.
func find(evs []presence.Event, kind presence.EventKind, device seed.DevicePublic) (presence.Event, bool) {
	for _, ev := range evs {
		if ev.Kind == kind && ev.Device.Equal(device) {
			return ev, true
		}
	}
	return presence.Event{}, false
}

// A peer's first authenticated packet makes it online; when it stops
// answering, Step reports it offline at the moment the online rule says so,
// with no packet to prompt it.
func TestEventsOnlineOffline(t *testing.T) {
	const T = presence.DefaultInterval
	s := presencetest.New(t, presencetest.Options{N: 2, Seed: 40})
	evs, cancel := s.Nodes[0].P.Subscribe(64)
	defer cancel()
	peer := s.Nodes[1]
	s.Run(time.Second)
	on, ok := find(drain(evs), presence.PeerOnline, peer.Pub)
	if !ok || on.Addr != peer.Wire || on.At.After(s.Now()) {
		t.Fatalf("no online event for node 1 (got %+v)", on)
	}

	s.Run(5 * T)
	if got := drain(evs); len(got) != 0 {
		if _, off := find(got, presence.PeerOffline, peer.Pub); off {
			t.Fatalf("node 1 reported offline while it answers: %+v", got)
		}
	}
	s.Kill(1)
	killed := s.Now()
	var off presence.Event
	took := s.RunUntil(10*T, func() bool {
		var ok bool
		off, ok = find(drain(evs), presence.PeerOffline, peer.Pub)
		return ok
	})
	if took < 0 {
		t.Fatal("no offline event within 10T of node 1 going silent")
	}
	if s.Status(0, 1).Online {
		t.Error("the offline event came while Status still says online")
	}
	if !off.At.Equal(s.Now()) || off.At.Before(killed) || off.Addr != peer.Wire {
		t.Errorf("offline event %+v; killed at %v, now %v", off, killed, s.Now())
	}
	// Online until just before the event: Status agrees to the nanosecond.
	s.Clock.Set(off.At.Add(-1))
	if !s.Status(0, 1).Online {
		t.Error("Status said offline before the event's time")
	}
	s.Clock.Set(off.At)
	// No second offline event for a peer already offline.
	s.Run(3 * T)
	if _, again := find(drain(evs), presence.PeerOffline, peer.Pub); again {
		t.Error("a second offline event for a peer already offline")
	}
}

// A peer removed from the book while online is reported offline.
func TestEventsOfflineWhenLeavingBook(t *testing.T) {
	s := presencetest.New(t, presencetest.Options{N: 2, Seed: 41})
	evs, cancel := s.Nodes[0].P.Subscribe(64)
	defer cancel()
	s.Run(time.Second)
	s.Nodes[0].Book.Remove(s.Nodes[1].Pub)
	s.Run(presence.DefaultInterval * 2)
	if _, ok := find(drain(evs), presence.PeerOffline, s.Nodes[1].Pub); !ok {
		t.Error("no offline event for a peer that left the book")
	}
}

// A peer seen from a new address is reported moved there.
func TestEventsPeerMoved(t *testing.T) {
	s := presencetest.New(t, presencetest.Options{N: 2, Seed: 42})
	evs, cancel := s.Nodes[0].P.Subscribe(64)
	defer cancel()
	s.Run(time.Second)
	drain(evs)
	to := netip.MustParseAddrPort("192.0.2.9:4000")
	s.Move(1, to, false) // a NAT rebinding: only its packets show it
	var mv presence.Event
	if s.RunUntil(5*presence.DefaultInterval, func() bool {
		var ok bool
		mv, ok = find(drain(evs), presence.PeerMoved, s.Nodes[1].Pub)
		return ok
	}) < 0 {
		t.Fatal("no moved event")
	}
	if mv.Addr != to || !mv.At.Equal(s.Now()) || s.Nodes[0].Book.Addr(s.Nodes[1].Pub) != to {
		t.Errorf("moved event %+v, book has %v", mv, s.Nodes[0].Book.Addr(s.Nodes[1].Pub))
	}
}

// Our own address: a new interface address signs a new record; behind a
// NAT, peers' replies show a new public address.
func TestEventsOwnAddr(t *testing.T) {
	s := presencetest.New(t, presencetest.Options{N: 3, Seed: 43})
	me := s.Nodes[0]
	evs, cancel := me.P.Subscribe(64)
	defer cancel()
	s.Run(time.Second)
	if ev, ok := find(drain(evs), presence.OwnAddrChanged, seed.DevicePublic{}); !ok || ev.Addr != me.Wire {
		t.Fatalf("first record: event %+v, want own address %v", ev, me.Wire)
	}
	to := netip.MustParseAddrPort("198.51.100.7:7117")
	s.Move(0, to, true)
	var own presence.Event
	if s.RunUntil(presence.DefaultInterval, func() bool {
		var ok bool
		own, ok = find(drain(evs), presence.OwnAddrChanged, seed.DevicePublic{})
		return ok
	}) < 0 || own.Addr != to {
		t.Fatalf("after an interface change: event %+v, want %v", own, to)
	}
	if addr, _ := me.P.OwnRecord(); addr != to {
		t.Errorf("OwnRecord %v, the event said %v", addr, to)
	}

	nat := netip.MustParseAddrPort("203.0.113.5:31000")
	s.Move(0, nat, false)
	var pub presence.Event
	if s.RunUntil(5*presence.DefaultInterval, func() bool {
		var ok bool
		pub, ok = find(drain(evs), presence.PublicAddrChanged, seed.DevicePublic{})
		return ok
	}) < 0 || pub.Addr != nat {
		t.Fatalf("behind a NAT: event %+v, want public %v", pub, nat)
	}
}

// A subscriber that does not read loses events, counted, and never holds
// up the packet path; cancel closes the channel and may be repeated.
func TestEventsSlowSubscriberAndCancel(t *testing.T) {
	s := presencetest.New(t, presencetest.Options{N: 5, Seed: 44})
	p := s.Nodes[0].P
	slow, cancelSlow := p.Subscribe(1)
	fast, cancelFast := p.Subscribe(1000)
	s.Run(10 * time.Second) // four peers online and more: several events
	all := drain(fast)
	if len(all) < 5 {
		t.Fatalf("only %d events", len(all))
	}
	if got := drain(slow); len(got) != 1 || got[0] != all[0] {
		t.Errorf("the slow subscriber holds %v, want only the first event %v", got, all[0])
	}
	if d := p.Stats().EventsDropped; d != uint64(len(all)-1) {
		t.Errorf("EventsDropped %d, want %d", d, len(all)-1)
	}
	cancelSlow()
	cancelSlow()
	if _, ok := <-slow; ok {
		t.Error("the channel is open after cancel")
	}
	s.Move(1, netip.MustParseAddrPort("192.0.2.50:1"), false)
	s.Run(3 * presence.DefaultInterval) // events after cancel go nowhere, and nothing panics
	cancelFast()
	cancelFast()
	for range fast { // what was buffered, then the end: the channel is closed
	}
}
