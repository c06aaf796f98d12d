package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/kith-project/kith/cluster/presence"
	"github.com/kith-project/kith/conversation"
	"github.com/kith-project/kith/internal/transport"
	"github.com/kith-project/kith/roster"
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
	convExchangeTimeout = 10 * time.Second
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
			skip := maps2slice(handed[k.dev], now)
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

// maps2slice returns the sequence numbers handed less than
// convHandedTTL ago.
func maps2slice(m map[uint64]time.Time, now time.Time) map[uint64]bool {
	out := make(map[uint64]bool, len(m))
	for s, t := range m {
		if now.Sub(t) <= convHandedTTL {
			out[s] = true
		}
	}
	return out
}

// errNoForwarder: no online device would take envelopes for a device.
var errNoForwarder = errors.New("no online device can reach it or keep envelopes for it")

// deliverOutbox sends the Book's pending envelopes for device d, directly
// or through a forwarder.
func (c *convs) deliverOutbox(ctx context.Context, d seed.DevicePublic, handed map[uint64]bool, hint seed.DevicePublic) jobResult {
	items := c.book.Pending(d, convBatch)
	if len(items) == 0 {
		return jobResult{ok: true}
	}
	items = capBytes(items)
	var direct error
	if p, ok := c.a.book.peerFor(d); ok && c.a.onlineSet()[d] {
		frames := make([]convFrame, len(items))
		for i, it := range items {
			frames[i] = convFrame{Type: convDeliver, Envelope: it.Envelope}
		}
		answers, err := c.exchange(ctx, p, frames)
		if err == nil {
			acked := c.takeAcks(answers)
			return jobResult{ok: acked == len(items), err: refusalsOf(answers)}
		}
		direct = err
	}
	var rest []conversation.Outgoing
	for _, it := range items {
		if !handed[it.Seq] {
			rest = append(rest, it)
		}
	}
	if len(rest) == 0 {
		// Everything is with a forwarder; its relayed acks drain the
		// outbox.
		return jobResult{ok: direct == nil, err: direct}
	}
	fw, err := c.pickForwarder(ctx, d, hint)
	if err != nil {
		return jobResult{err: errors.Join(direct, err)}
	}
	frames := make([]convFrame, len(rest))
	for i, it := range rest {
		frames[i] = convFrame{Type: convForward, Device: d, Envelope: it.Envelope}
	}
	answers, err := c.exchange(ctx, fw, frames)
	if err != nil {
		return jobResult{err: fmt.Errorf("forwarding through %s: %w", fw.DeviceID.Short(), err)}
	}
	var res jobResult
	for i, f := range answers {
		if f.Type == convQueued {
			res.handed = append(res.handed, rest[i].Seq)
		}
	}
	if len(res.handed) > 0 {
		res.via = fw.DeviceID
	}
	res.ok = len(res.handed) == len(rest)
	if !res.ok {
		res.err = refusalsOf(answers)
	}
	return res
}

// capBytes keeps a batch within convBatchBytes (at least one item).
func capBytes(items []conversation.Outgoing) []conversation.Outgoing {
	size := 0
	for i, it := range items {
		size += len(it.Envelope)
		if i > 0 && size > convBatchBytes {
			return items[:i]
		}
	}
	return items
}

// takeAcks hands the acks among answers to the Book and returns how many
// answers acknowledged their envelope.
func (c *convs) takeAcks(answers []convFrame) int {
	var acks [][]byte
	n := 0
	for _, f := range answers {
		if f.Type != convAck {
			continue
		}
		n++
		if len(f.Envelope) > 0 {
			acks = append(acks, f.Envelope)
		}
	}
	if len(acks) > 0 {
		_, errs := c.book.ReceiveBatch(acks)
		for _, err := range errs {
			if err != nil {
				c.a.log.Debug("an ack refused", "err", err)
			}
		}
	}
	return n
}

// refusalsOf summarizes the refusals among answers, nil if none.
func refusalsOf(answers []convFrame) error {
	var first convFrame
	n := 0
	for _, f := range answers {
		if f.Type == convRefused {
			if n == 0 {
				first = f
			}
			n++
		}
	}
	if n == 0 {
		return nil
	}
	return fmt.Errorf("%d envelopes refused, the first (code %d): %s", n, first.Code, first.Reason)
}

// pickForwarder finds an online own or friend's device that can reach d
// (or keep envelopes for it): hint first, then the others, asked with a
// probe; one that has d online wins over one that only knows it.
func (c *convs) pickForwarder(ctx context.Context, d seed.DevicePublic, hint seed.DevicePublic) (Peer, error) {
	online := c.a.onlineSet()
	var cands []Peer
	for _, p := range c.a.book.reachable() {
		if p.DeviceID.Equal(d) || !online[p.DeviceID] {
			continue
		}
		cands = append(cands, p)
	}
	if len(cands) == 0 {
		return Peer{}, errNoForwarder
	}
	slices.SortStableFunc(cands, func(x, y Peer) int {
		rank := func(p Peer) int {
			switch {
			case p.DeviceID.Equal(hint):
				return 0
			case p.Kind == roster.KindOwn:
				return 1
			}
			return 2
		}
		return rank(x) - rank(y)
	})
	var known *Peer
	for i, p := range cands {
		if i == convProbeMax {
			break
		}
		answers, err := c.exchange(ctx, p, []convFrame{{Type: convProbe, Device: d}})
		if err != nil || answers[0].Type != convReach {
			continue
		}
		switch answers[0].Reach {
		case reachOnline:
			return p, nil
		case reachOffline:
			if known == nil {
				known = &cands[i]
			}
		}
	}
	if known != nil {
		return *known, nil
	}
	return Peer{}, errNoForwarder
}

// deliverQueue delivers what the forward queue holds for device d, which
// must be reachable directly, and queues the acks it gets for the
// envelopes' authors.
func (c *convs) deliverQueue(ctx context.Context, d seed.DevicePublic) jobResult {
	p, ok := c.a.book.peerFor(d)
	if !ok {
		return jobResult{err: fmt.Errorf("device %s is no longer known", d.Short())}
	}
	if !c.a.onlineSet()[d] {
		return jobResult{err: fmt.Errorf("device %s is offline", d.Short())}
	}
	entries, err := c.fwd.pending(d, convBatch, convBatchBytes)
	if err != nil || len(entries) == 0 {
		return jobResult{ok: err == nil, err: err}
	}
	frames := make([]convFrame, len(entries))
	for i, e := range entries {
		frames[i] = convFrame{Type: convDeliver, Envelope: e.Envelope}
	}
	answers, err := c.exchange(ctx, p, frames)
	if err != nil {
		return jobResult{err: err}
	}
	var done []string
	now := c.a.cfg.Now()
	kept := 0
	for i, f := range answers {
		e := entries[i]
		switch {
		case f.Type == convAck && len(f.Envelope) > 0:
			c.relayAck(e, f.Envelope, now)
			done = append(done, e.key)
		case f.Type == convAck:
			done = append(done, e.key)
		case f.Type == convRefused && (f.Code == convCodeHeld || f.Code == convCodeFailed):
			kept++
		default:
			c.a.log.Debug("a forwarded envelope refused by its recipient", "device", d.Short(), "code", f.Code, "reason", f.Reason)
			done = append(done, e.key)
		}
	}
	if err := c.fwd.delete(done); err != nil {
		return jobResult{err: err}
	}
	return jobResult{ok: kept == 0}
}

// relayAck queues an ack for the device whose outbox it drains: the one
// it names if this device knows it, else the one that handed the
// envelope over.
func (c *convs) relayAck(e fwdEntry, ack []byte, now time.Time) {
	to := e.Origin
	if h, err := conversation.Inspect(ack); err == nil && h.To != (seed.DevicePublic{}) {
		if _, ok := c.a.book.peerFor(h.To); ok {
			to = h.To
		}
	}
	if to.Equal(c.a.dev.Cert.Device) {
		if _, err := c.book.Receive(ack); err != nil {
			c.a.log.Debug("a relayed ack refused", "err", err)
		}
		return
	}
	if err := c.fwd.put(to, e.Origin, ack, now); err != nil {
		c.a.log.Debug("queueing an ack to relay", "err", err)
	}
}

// fetch asks own device from for conversation id and takes what it sends.
func (c *convs) fetch(ctx context.Context, from seed.DevicePublic, id conversation.ID) jobResult {
	if _, err := c.book.Show(id); err == nil {
		return jobResult{ok: true}
	}
	p, ok := c.a.book.peerFor(from)
	if !ok || p.Kind != roster.KindOwn {
		return jobResult{ok: true} // nobody to ask
	}
	if !c.a.onlineSet()[from] {
		return jobResult{err: fmt.Errorf("own device %s is offline", from.Short())}
	}
	answers, err := c.exchange(ctx, p, []convFrame{{Type: convSync, Conv: id}})
	if err != nil {
		return jobResult{err: err}
	}
	if answers[0].Type != convEnvelopes {
		return jobResult{ok: true, err: refusalsOf(answers)}
	}
	_, errs := c.book.ReceiveBatch(answers[0].Envelopes)
	for _, err := range errs {
		if err != nil && !errors.Is(err, conversation.ErrHeld) {
			c.a.log.Debug("a synced envelope refused", "err", err)
		}
	}
	return jobResult{ok: true}
}

// exchange sends one batch of request frames to p and returns its
// answers, one per frame.
func (c *convs) exchange(ctx context.Context, p Peer, frames []convFrame) ([]convFrame, error) {
	addr, err := netip.ParseAddrPort(p.Addr)
	if err != nil {
		return nil, fmt.Errorf("no address for %s", p.DeviceID.Short())
	}
	ctx, cancel := context.WithTimeout(ctx, convExchangeTimeout)
	defer cancel()
	s, err := c.a.tr.OpenStream(ctx, addr, p.DeviceID.Ed25519(), protoConv)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(convExchangeTimeout))
	answers, err := exchangeOn(s, frames)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		// A connection that swallows a whole batch without an answer is
		// most likely to a process that is gone (killed and restarted on
		// the same address): the next attempt dials afresh instead of
		// waiting for QUIC's idle timeout.
		c.a.tr.ClosePeer(p.DeviceID.Ed25519())
	}
	return answers, err
}

// exchangeOn writes frames on s, closes its side and reads the answers.
func exchangeOn(s *transport.Stream, frames []convFrame) ([]convFrame, error) {
	for _, f := range frames {
		if err := writeConvFrame(s, f); err != nil {
			return nil, err
		}
	}
	if err := s.CloseWrite(); err != nil {
		return nil, err
	}
	answers := make([]convFrame, 0, len(frames))
	for range frames {
		f, _, err := readConvFrame(s)
		if err != nil {
			return nil, fmt.Errorf("reading the answers: %w", err)
		}
		if isRequest(f.Type) {
			return nil, fmt.Errorf("an answer of type %#02x", f.Type)
		}
		answers = append(answers, f)
	}
	return answers, nil
}
