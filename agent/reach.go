package agent

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kith-project/kith/cluster/presence"
	"github.com/kith-project/kith/roster"
	"github.com/kith-project/kith/seed"
)

// The reach service decides when to punch. For every known device, own
// or a friend's, that is offline (or online only through a relay) while
// some other device is online, it asks the online devices in turn to
// introduce the two (own devices first, then friends, each by RTT), and
// punches with the first that does (punch.go). A round is one
// introduction and its punch; rounds are spaced by backoff: the first at
// once (within reachTick of noticing), then 5 s, 30 s, and 2 min from
// then on. Presence events (a peer offline, our address changed) start a
// new round at once. After the first round that failed it calls fallback
// (a relay) once, so that two devices behind symmetric NATs talk within
// seconds, and it goes on punching: reachTries rounds at the backoff, then
// at the capped backoff, so that a punched path wins over a relayed one
// when it can.

// Reach defaults; tests shorten them through the reacher's fields.
var defaultBackoff = []time.Duration{5 * time.Second, 30 * time.Second, 2 * time.Minute}

const (
	reachTick  = 250 * time.Millisecond
	reachTries = 3 // rounds before the backoff is capped
	// reachRelayAfter is the failed rounds after which fallback sets up a
	// relay, while punching goes on.
	reachRelayAfter = 1
)

// reacher is the reach service's state. Safe for concurrent use.
type reacher struct {
	a *Agent
	// Constant once the agent runs (tests set them before).
	backoff  []time.Duration
	punchFor time.Duration
	// relayAfter is the failed rounds before fallback; zero means
	// reachRelayAfter. Tests that set up relays by hand raise it.
	relayAfter int

	punchesSent atomic.Uint64
	fallbacks   atomic.Uint64

	mu      sync.Mutex
	peers   map[seed.DevicePublic]*reachState // guarded by mu
	stopped bool                              // guarded by mu: run returned, spawn refuses
	wg      sync.WaitGroup                    // punches spawned for offers
}

// reachState is one peer's. Guarded by reacher.mu.
type reachState struct {
	running  bool
	failed   int       // rounds failed in a row
	next     time.Time // no round before
	fellBack bool      // fallback called for this streak
	lastErr  error
}

func newReacher(a *Agent) *reacher {
	return &reacher{a: a, backoff: defaultBackoff, punchFor: defaultPunchFor, peers: map[seed.DevicePublic]*reachState{}}
}

// fallback is what reach does when punching failed reachTries times in a
// row: a relayed path through a friend or an own device. It reports
// whether one was set up (relayTo, relay.go).
func (a *Agent) fallback(ctx context.Context, d seed.DevicePublic) bool {
	ok, err := a.relayTo(ctx, d)
	if err != nil {
		a.log.Info("no relay for an unreachable peer", "peer", d.Short(), "err", err)
	}
	return ok
}

// run is the service: it returns when ctx ends, after every round it
// started returned.
func (r *reacher) run(ctx context.Context) error {
	events, cancel := r.a.Subscribe(64)
	defer cancel()
	defer func() {
		r.mu.Lock()
		r.stopped = true
		r.mu.Unlock()
		r.wg.Wait()
	}()
	var wg sync.WaitGroup
	defer wg.Wait()
	t := time.NewTicker(reachTick)
	defer t.Stop()
	r.scan(ctx, &wg)
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-events:
			r.onEvent(ev)
		case <-t.C:
		}
		r.scan(ctx, &wg)
	}
}

// spawn runs fn on a goroutine that run waits for before it returns; it
// reports false, running nothing, once run is returning.
func (r *reacher) spawn(fn func()) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return false
	}
	r.wg.Go(fn)
	return true
}

// onEvent makes a round due at once for a peer that went offline, and
// for every peer on a punched path when our own address changed (the
// holes are gone).
func (r *reacher) onEvent(ev presence.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch ev.Kind {
	case presence.PeerOffline:
		st := r.stateLocked(ev.Device)
		st.failed, st.next, st.fellBack = 0, time.Time{}, false
	case presence.OwnAddrChanged, presence.PublicAddrChanged:
		for _, st := range r.peers {
			st.next = time.Time{}
		}
	}
}

func (r *reacher) stateLocked(d seed.DevicePublic) *reachState {
	st := r.peers[d]
	if st == nil {
		st = &reachState{}
		r.peers[d] = st
	}
	return st
}

// scan starts a round for every peer that needs one and is due.
func (r *reacher) scan(ctx context.Context, wg *sync.WaitGroup) {
	a := r.a
	now := a.cfg.Now()
	status := a.presence.Status()
	var online []presence.PeerStatus
	for _, ps := range status {
		if ps.Online {
			online = append(online, ps)
		}
	}
	if len(online) == 0 {
		return
	}
	for _, ps := range status {
		need := !ps.Online
		if !need {
			// A relayed path is recorded at its exact address: no need
			// for our networks' prefixes to tell it.
			kind, _ := a.paths.of(ps.Device, ps.Addr, nil)
			need = kind == PathRelay
		}
		r.mu.Lock()
		st := r.stateLocked(ps.Device)
		if !need {
			if !st.running {
				st.failed, st.fellBack, st.next = 0, false, time.Time{}
			}
			r.mu.Unlock()
			continue
		}
		due := !st.running && !now.Before(st.next)
		if due {
			st.running = true
		}
		r.mu.Unlock()
		if !due {
			continue
		}
		vias := introducersFor(ps.Device, online)
		if len(vias) == 0 {
			r.mu.Lock()
			st.running = false
			r.mu.Unlock()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.round(ctx, ps.Device, vias)
		}()
	}
}

// introducersFor orders the online devices other than d that may
// introduce us to it: own devices first, then friends, each by RTT.
func introducersFor(d seed.DevicePublic, online []presence.PeerStatus) []seed.DevicePublic {
	var vias []presence.PeerStatus
	for _, ps := range online {
		if !ps.Device.Equal(d) {
			vias = append(vias, ps)
		}
	}
	slices.SortStableFunc(vias, func(x, y presence.PeerStatus) int {
		if x.Own != y.Own {
			if x.Own {
				return -1
			}
			return 1
		}
		return int(x.RTT - y.RTT)
	})
	out := make([]seed.DevicePublic, len(vias))
	for i, v := range vias {
		out[i] = v.Device
	}
	return out
}

// round is one try for d: the first introducer that introduces us, and
// the punch. It then schedules the next round by the backoff, and calls
// fallback after reachRelayAfter failures in a row.
func (r *reacher) round(ctx context.Context, d seed.DevicePublic, vias []seed.DevicePublic) {
	a := r.a
	ok, counted, err := r.try(ctx, d, vias)
	r.mu.Lock()
	st := r.stateLocked(d)
	st.running, st.lastErr = false, err
	if ok {
		st.failed, st.fellBack, st.next = 0, false, time.Time{}
		r.mu.Unlock()
		return
	}
	if counted {
		st.failed++
	}
	st.next = a.cfg.Now().Add(r.backoff[min(max(st.failed-1, 0), len(r.backoff)-1)])
	after := r.relayAfter
	if after <= 0 {
		after = reachRelayAfter
	}
	fall, tries := st.failed >= after && !st.fellBack, st.failed
	if fall {
		st.fellBack = true
	}
	r.mu.Unlock()
	if fall && ctx.Err() == nil {
		r.fallbacks.Add(1)
		a.log.Info("no punched path; falling back to a relay while punching goes on", "peer", d.Short(), "tries", tries, "nat", a.natType(), "err", err)
		a.fallback(ctx, d)
	}
}

// try asks each introducer in turn and punches with the first that
// introduces us. counted says whether it was a try at punching (an
// introduction refused because d is offline everywhere is not).
func (r *reacher) try(ctx context.Context, d seed.DevicePublic, vias []seed.DevicePublic) (ok, counted bool, err error) {
	a := r.a
	for _, v := range vias {
		via, known := a.book.peerFor(v)
		if !known || !(via.Kind == roster.KindOwn || via.Kind == roster.KindFriend) {
			continue
		}
		plan, ierr := a.introduce(ctx, via, d)
		if ierr != nil {
			err = ierr
			var ie *errIntroduction
			if errors.As(ierr, &ie) && ie.Code == introOffline {
				continue
			}
			counted = true
			a.log.Debug("introduction failed", "peer", d.Short(), "via", v.Short(), "err", ierr)
			continue
		}
		_, ok := a.punch(ctx, plan)
		if ok {
			return true, true, nil
		}
		return false, true, errors.New("punching found no path")
	}
	return false, counted, err
}

// ReachStats counts what the reach service did.
type ReachStats struct {
	PunchesSent uint64 // punch packets sent, every address of every try
	Fallbacks   uint64 // times punching gave up and fallback was called
}

// reachStats returns the counters.
func (a *Agent) reachStats() ReachStats {
	return ReachStats{PunchesSent: a.reach.punchesSent.Load(), Fallbacks: a.reach.fallbacks.Load()}
}
