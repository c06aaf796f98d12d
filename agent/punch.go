package agent

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"github.com/kith-project/kith/internal/transport"
	"github.com/kith-project/kith/seed"
	"golang.org/x/time/rate"
)

// Simultaneous open. From the instant the introducer set, both sides send
// signed heartbeats addressed to the other device (presence.SendBeatTo)
// to every address of the other's plan, every 50 to 100 ms (jittered) for
// punchFor. Each packet out opens this side's NAT toward that address; the
// first packet of the other side that gets in is authenticated by presence
// like any heartbeat and moves the peer there, as roaming does, and its
// reply comes back through the hole it came by. QUIC then connects over
// the path at the book's address. A plan is one try; the reach service
// (reach.go) makes up to three, each with a fresh introduction.

// Punching, as the agent does it; tests shorten punchFor.
const (
	defaultPunchFor = 3 * time.Second
	punchGapMin     = 50 * time.Millisecond
	punchGapMax     = 100 * time.Millisecond
)

// punchPlan is one try: where to send, and from when, by our clock.
type punchPlan struct {
	peer  seed.DevicePublic
	addrs []netip.AddrPort
	start time.Time
	// was is the peer's address in the book when the introduction
	// ended: a peer that moved since, to an address no candidate named
	// (its symmetric NAT's new port toward us, say), was reached by the
	// punch too, even before the agreed instant.
	was netip.AddrPort
}

// Bounds of punching toward one peer: the addresses of a plan come from
// the peer (through an introducer), so a friend asking for introduction
// after introduction must not turn this device into a packet source
// aimed wherever it likes. One punch at a time per peer (a second plan
// waits for the first's result), and at most punchBurst punches, then one
// every punchRefill.
const (
	punchBurst  = 6
	punchRefill = 10 * time.Second
)

// punchGate runs one punch per peer at a time, within the rate. Safe for
// concurrent use.
type punchGate struct {
	mu   sync.Mutex
	runs map[seed.DevicePublic]*punchRun     // guarded by mu
	lim  map[seed.DevicePublic]*rate.Limiter // guarded by mu
}

// punchRun is a punch in progress; done is closed once addr and ok are set.
type punchRun struct {
	done chan struct{}
	addr netip.AddrPort
	ok   bool
}

// join returns the punch in progress toward d, or starts one: leader says
// which. A new one is refused (nil) beyond the rate.
func (g *punchGate) join(d seed.DevicePublic) (run *punchRun, leader bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.runs == nil {
		g.runs, g.lim = map[seed.DevicePublic]*punchRun{}, map[seed.DevicePublic]*rate.Limiter{}
	}
	if r := g.runs[d]; r != nil {
		return r, false
	}
	l := g.lim[d]
	if l == nil {
		if len(g.lim) >= maxGuarded {
			clear(g.lim)
		}
		l = rate.NewLimiter(rate.Every(punchRefill), punchBurst)
		g.lim[d] = l
	}
	if !l.Allow() {
		return nil, false
	}
	r := &punchRun{done: make(chan struct{})}
	g.runs[d] = r
	return r, true
}

// finish ends the punch toward d with its result.
func (g *punchGate) finish(d seed.DevicePublic, r *punchRun, addr netip.AddrPort, ok bool) {
	g.mu.Lock()
	delete(g.runs, d)
	g.mu.Unlock()
	r.addr, r.ok = addr, ok
	close(r.done)
}

// punch runs plan and reports the address that won, if one did. It
// records the path as punched (paths.punched: unless discovery confirmed
// it on the LAN there). While a punch toward the same peer runs,
// it waits for that one's result instead.
func (a *Agent) punch(ctx context.Context, plan punchPlan) (netip.AddrPort, bool) {
	if len(plan.addrs) == 0 {
		return netip.AddrPort{}, false
	}
	run, leader := a.punches.join(plan.peer)
	switch {
	case run == nil:
		a.log.Debug("punching: too many tries toward this peer", "peer", plan.peer.Short())
		return netip.AddrPort{}, false
	case !leader:
		select {
		case <-run.done:
			return run.addr, run.ok
		case <-ctx.Done():
			return netip.AddrPort{}, false
		}
	}
	addr, ok := a.punchNow(ctx, plan)
	a.punches.finish(plan.peer, run, addr, ok)
	return addr, ok
}

// punchNow is punch's work.
func (a *Agent) punchNow(ctx context.Context, plan punchPlan) (netip.AddrPort, bool) {
	if wait := plan.start.Sub(a.cfg.Now()); wait > 0 {
		t := time.NewTimer(min(wait, maxIntroLead))
		select {
		case <-ctx.Done():
			t.Stop()
			return netip.AddrPort{}, false
		case <-t.C:
		}
	}
	began := a.cfg.Now()
	before := plan.was
	if !before.IsValid() {
		before = a.bookAddr(plan.peer)
	}
	end := began.Add(a.reach.punchFor)
	a.log.Debug("punching", "peer", plan.peer.Short(), "addrs", plan.addrs)
	t := time.NewTimer(0)
	defer t.Stop()
	<-t.C
	for {
		for _, ap := range plan.addrs {
			a.presence.SendBeatTo(plan.peer, ap)
		}
		a.reach.punchesSent.Add(uint64(len(plan.addrs)))
		gap := punchGapMin + rand.N(punchGapMax-punchGapMin+1)
		t.Reset(gap)
		select {
		case <-ctx.Done():
			return netip.AddrPort{}, false
		case <-t.C:
		}
		now := a.cfg.Now()
		if seen := a.presence.LastSeen(plan.peer); seen.After(began) {
			// A peer moved onto a relayed path meanwhile (a session set
			// up, or replaced, while this punch ran) is heard through the
			// relay: that is no punched path.
			cur := a.bookAddr(plan.peer)
			if !transport.IsRelayAddr(cur) && (containsAddr(plan.addrs, cur) || (cur.IsValid() && cur != before)) {
				kind := a.paths.punched(plan.peer, cur, now)
				a.log.Info("punched a path", "peer", plan.peer.Short(), "addr", cur.String(), "path", string(kind), "after", now.Sub(began).Round(time.Millisecond))
				return cur, true
			}
		}
		if now.After(end) {
			a.log.Debug("punching failed", "peer", plan.peer.Short(), "nat", a.natType())
			return netip.AddrPort{}, false
		}
	}
}

// bookAddr is the address the book holds for d.
func (a *Agent) bookAddr(d seed.DevicePublic) netip.AddrPort {
	p, ok := a.book.peerFor(d)
	if !ok {
		return netip.AddrPort{}
	}
	ap, _ := netip.ParseAddrPort(p.Addr)
	return ap
}
