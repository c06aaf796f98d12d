package agent

import (
	"context"
	"sync"
	"time"

	"github.com/kith-project/kith/cluster/presence"
	"github.com/kith-project/kith/conversation"
	"github.com/kith-project/kith/seed"
)

// Delivery. The conversation service (run) is one goroutine that owns the
// outbox's schedule: for every device the Book has pending envelopes for,
// and every device the forward queue holds envelopes for, it runs one
// attempt at a time (at most convParallel attempts at once, each in a
// goroutine it waits for) and backs off per device after a failure, 1 s
// doubling to 60 s. Presence saying a device came online or moved, a
// change in the Book (a new message, a received one) and a change of the
// roster wake it at once, and clear the backoffs.
//
// An attempt for device d sends up to convBatch pending envelopes:
//   - directly, when presence has d online and the roster knows it;
//   - else (or when that fails) through a forwarder: an online own or
//     friend's device that, asked with a probe, says it can reach d (or
//     knows d, to keep the envelopes until d comes back). Envelopes handed
//     to a forwarder are not handed again for convHandedTTL: the ack comes
//     back through the forwarder.
//
// An envelope counts as delivered when its ack, signed by the recipient,
// drains the Book's outbox; nothing else does.

// Delivery's limits and times.
const (
	convBatch      = 64
	convBatchBytes = 4 << 20
	convParallel   = 8
	convBackoffMin = time.Second
	convBackoffMax = 60 * time.Second
	convHandedTTL  = 10 * time.Minute
	convProbeMax   = 4 // forwarders asked per attempt
	// convExchangeTimeout bounds one batch's exchange on the sending
	// side, answers included.
	convExchangeTimeout = 5 * time.Second
)

// jobKind is what an attempt does for a device.
type jobKind uint8

const (
	jobOutbox jobKind = iota // the Book's pending envelopes for the device
	jobQueue                 // envelopes held for the device by the forward queue
	jobSync                  // fetch a conversation from an own device
)

type jobKey struct {
	dev  seed.DevicePublic
	kind jobKind
	conv conversation.ID // jobSync
}

// jobResult is what an attempt reports to run.
type jobResult struct {
	key jobKey
	ok  bool              // done for now: no backoff
	via seed.DevicePublic // the forwarder that took envelopes, if any
	// handed are outbox sequence numbers a forwarder took.
	handed []uint64
	err    error
}

// retry is a job's backoff.
type retry struct {
	next  time.Time
	delay time.Duration
}

// run is the conversation service.
func (c *convs) run(ctx context.Context) error {
	events, cancel := c.a.presence.Subscribe(64)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(c.stopping) // first: followers end while attempts finish
	results := make(chan jobResult, convParallel)
	var (
		backoff = map[jobKey]*retry{}
		busy    = map[jobKey]bool{}
		handed  = map[seed.DevicePublic]map[uint64]time.Time{}
		via     = map[seed.DevicePublic]seed.DevicePublic{}
		syncs   = map[jobKey]seed.DevicePublic{}
	)
	tick := time.NewTicker(convTick)
	defer tick.Stop()
	timer := time.NewTimer(0)
	defer timer.Stop()

	pass := func() {
		now := time.Now()
		for id, from := range c.takeSyncs() {
			syncs[jobKey{dev: from, kind: jobSync, conv: id}] = from
		}
		var jobs []jobKey
		for _, d := range c.book.Recipients() {
			jobs = append(jobs, jobKey{dev: d, kind: jobOutbox})
		}
		for _, d := range c.fwd.targets() {
			jobs = append(jobs, jobKey{dev: d, kind: jobQueue})
		}
		for k := range syncs {
			jobs = append(jobs, k)
		}
		var wait time.Duration = -1
		for _, k := range jobs {
			if busy[k] {
				continue
			}
			if r := backoff[k]; r != nil && now.Before(r.next) {
				if d := r.next.Sub(now); wait < 0 || d < wait {
					wait = d
				}
				continue
			}
			if len(busy) >= convParallel {
				break // a result brings another pass
			}
			busy[k] = true
			skip := recentlyHanded(handed[k.dev], now)
			hint := via[k.dev]
			wg.Add(1)
			go func() {
				defer wg.Done()
				var r jobResult
				switch k.kind {
				case jobOutbox:
					r = c.deliverOutbox(ctx, k.dev, skip, hint)
				case jobQueue:
					r = c.deliverQueue(ctx, k.dev)
				case jobSync:
					r = c.fetch(ctx, k.dev, k.conv)
				}
				r.key = k
				results <- r
			}()
		}
		if wait >= 0 {
			timer.Reset(wait)
		}
	}
	clearBackoff := func() { clear(backoff) }

	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-events:
			if ev.Kind == presence.PeerOnline || ev.Kind == presence.PeerMoved {
				clearBackoff()
				pass()
			}
		case <-c.kick:
			clearBackoff()
			pass()
		case <-tick.C:
			c.book.Tick()
			now := time.Now()
			for d, m := range handed {
				for s, t := range m {
					if now.Sub(t) > convHandedTTL {
						delete(m, s)
					}
				}
				if len(m) == 0 {
					delete(handed, d)
				}
			}
			if err := c.fwd.expire(c.a.cfg.Now()); err != nil {
				c.a.log.Warn("forward queue", "err", err)
			}
			pass()
		case <-timer.C:
			pass()
		case r := <-results:
			delete(busy, r.key)
			if r.key.kind == jobSync && (r.ok || r.err == nil) {
				delete(syncs, r.key)
			}
			if len(r.handed) > 0 {
				m := handed[r.key.dev]
				if m == nil {
					m = map[uint64]time.Time{}
					handed[r.key.dev] = m
				}
				now := time.Now()
				for _, s := range r.handed {
					m[s] = now
				}
			}
			if r.via != (seed.DevicePublic{}) {
				via[r.key.dev] = r.via
			} else if !r.ok {
				delete(via, r.key.dev)
			}
			if r.ok {
				delete(backoff, r.key)
			} else {
				b := backoff[r.key]
				if b == nil {
					b = &retry{delay: convBackoffMin}
					backoff[r.key] = b
				} else {
					b.delay = min(2*b.delay, convBackoffMax)
				}
				b.next = time.Now().Add(b.delay)
				if r.err != nil && ctx.Err() == nil {
					c.a.log.Debug("conversation delivery", "device", r.key.dev.Short(), "kind", r.key.kind, "retry_in", b.delay, "err", r.err)
				}
			}
			pass()
		}
	}
}

// recentlyHanded returns the sequence numbers handed less than
// convHandedTTL ago.
func recentlyHanded(m map[uint64]time.Time, now time.Time) map[uint64]bool {
	out := make(map[uint64]bool, len(m))
	for s, t := range m {
		if now.Sub(t) <= convHandedTTL {
			out[s] = true
		}
	}
	return out
}
