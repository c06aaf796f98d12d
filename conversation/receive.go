package conversation

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kith-project/kith/internal/store"
)

// Receive takes one envelope from the network. It verifies it, stores it
// durably (a bbolt commit) before returning, decides when the rule became
// true, and returns the ack to send back (also for a duplicate). A refused
// envelope returns an error wrapping ErrRefused and stores nothing, except
// a valid message that came after the decision: it is acknowledged (ack
// is non-nil beside the error; send it) and kept only as evidence (see
// Deciding). One that must wait for an earlier envelope returns ErrHeld
// and no ack. An ack envelope removes outbox items and returns no ack.
func (b *Book) Receive(env []byte) (ack []byte, err error) {
	acks, errs := b.ReceiveBatch([][]byte{env})
	return acks[0], errs[0]
}

// ReceiveBatch is Receive of several envelopes committed together (one
// bbolt commit). acks[i] and errs[i] are what Receive(envs[i]) would
// return.
func (b *Book) ReceiveBatch(envs [][]byte) (acks [][]byte, errs []error) {
	acks, errs = make([][]byte, len(envs)), make([]error, len(envs))
	changed := map[ID]bool{}
	// Form, certificate and signature first, outside the lock and any
	// transaction.
	parsed := make([]*envelope, len(envs))
	some := false
	for i, env := range envs {
		parsed[i], errs[i] = parseEnvelope(env)
		some = some || errs[i] == nil
	}
	if !some {
		return acks, errs
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		for i := range errs {
			errs[i] = ErrClosed
		}
		return acks, errs
	}
	err := b.update(func(tx *store.Tx) error {
		for i, e := range parsed {
			if e == nil {
				continue
			}
			ack, err := b.receive(tx, e, changed)
			var fatal *fatalError
			if errors.As(err, &fatal) {
				return fatal.err
			}
			acks[i], errs[i] = ack, err
		}
		return nil
	})
	b.mu.Unlock()
	if err != nil {
		for i := range envs {
			acks[i], errs[i] = nil, fmt.Errorf("conversation: storing: %w", err)
		}
		return acks, errs
	}
	b.notify(changed)
	return acks, errs
}

// fatalError is a failure of the store: the whole transaction is dropped.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }

func (e *fatalError) Unwrap() error { return e.err }

func fatal(err error) error {
	if err == nil {
		return nil
	}
	return &fatalError{err}
}

// receive handles one envelope in tx, then the held envelopes it unblocks.
func (b *Book) receive(tx *store.Tx, e *envelope, changed map[ID]bool) ([]byte, error) {
	if e.kind != kindAck && b.forgotten[e.conv] {
		return b.ackFor(e), nil // archived: acknowledged, not brought back (export.go)
	}
	ack, err := b.apply(tx, e, changed)
	var h *heldError
	if errors.As(err, &h) {
		b.hold(e, b.convs[e.conv] == nil && !b.knownUser(e.cert.User), h.wait)
		return nil, err
	}
	if ev, ok := b.stored(e); ok {
		b.unhold(e.conv, e.id) // a copy held earlier, if any
		if ferr := b.drainHeld(tx, e.conv, ev, changed); ferr != nil {
			return nil, ferr
		}
	}
	if changed[e.conv] {
		// Decide after the held envelopes: an outcome among them spares
		// this device publishing its own.
		if c := b.convs[e.conv]; c != nil && (err == nil || c.winner == nil) {
			if ferr := b.tryDecide(tx, c); ferr != nil {
				return nil, ferr
			}
		}
	}
	return ack, err
}

// ackFor signs this device's ack of envelope e.
func (b *Book) ackFor(e *envelope) []byte {
	raw, _ := sealEnvelope(b.cfg.Self.Key, b.cfg.Self.Cert, kindAck, e.conv, 0, MessageID{}, 0,
		ackPayload(e.cert.Device, []MessageID{e.id}))
	return raw
}

// apply verifies envelope e against what is stored and stores it.
func (b *Book) apply(tx *store.Tx, e *envelope, changed map[ID]bool) ([]byte, error) {
	switch e.kind {
	case kindAck:
		return nil, b.applyAck(tx, e)
	case kindGenesis:
		return b.applyGenesis(tx, e, changed)
	}
	c := b.convs[e.conv]
	if c == nil {
		return nil, heldf(waitFor{genesis: true}, "the conversation's genesis has not arrived")
	}
	if old := c.msgs[e.id]; old != nil { // a duplicate: ack again, store nothing
		if old.late {
			return b.ackFor(e), refusef("conversation decided")
		}
		return b.ackFor(e), nil
	}
	if !c.isMember(e.cert.User) {
		return nil, refusef("the author %s is not a member", e.cert.User.Short())
	}
	if b.revoked(c, e.cert) {
		return nil, refusef("the author's device %s is revoked", e.cert.Device.Short())
	}
	h := c.heads[e.cert.Device]
	var headSeq uint64
	if h != nil {
		headSeq = h.seq
	}
	switch {
	case e.seq <= headSeq:
		return nil, refusef("a second envelope at seq %d of device %s (a forked chain)", e.seq, e.cert.Device.Short())
	case e.seq > headSeq+1:
		return nil, heldf(waitFor{dev: e.cert.Device, seq: e.seq - 1}, "seq %d of device %s follows %d", e.seq, e.cert.Device.Short(), headSeq)
	case h != nil && e.prev != h.id:
		return nil, refusef("broken chain: seq %d does not follow its device's previous envelope", e.seq)
	case h != nil && e.lamport <= h.lamport:
		return nil, refusef("broken chain: Lamport time %d not after %d", e.lamport, h.lamport)
	}
	if e.lamport > c.lamport+MaxLamportStep {
		// An honest author is at most one above what it has seen, and
		// it can have seen at most MaxMessages messages this device
		// lacks: wait for them. A jump beyond (towards MaxLamport, where
		// nobody could post any more) waits for good.
		return nil, heldf(waitFor{lamport: e.lamport - MaxLamportStep}, "Lamport time %d is more than %d above this device's highest, %d", e.lamport, MaxLamportStep, c.lamport)
	}
	if len(c.msgs) >= MaxMessages {
		return nil, refusef("the conversation is full (%d messages)", MaxMessages)
	}
	plain, err := b.open(e)
	if err != nil {
		return nil, err
	}
	m, err := msgOf(e, plain)
	if err != nil {
		return nil, err
	}
	if m.outcome != nil {
		if err := b.verifyOutcome(c, m.outcome, m.lamport, m.prev); err != nil {
			return nil, err
		}
		if err := b.storeMsg(tx, c, e, m, plain); err != nil {
			return nil, fatal(err)
		}
		c.addOutcome(m)
		changed[c.id] = true
		return b.ackFor(e), nil
	}
	if err := c.g.pattern.allows(m.m.kind, m.m.body, e.cert.User.Equal(c.creator)); err != nil {
		return nil, refusef("%w", err)
	}
	if due := m.m.at.Add(-ClockTolerance); b.now().UTC().Truncate(time.Millisecond).Before(due) { // as decide truncates
		// Written in this device's future: accepted once the clock gets
		// there, so that an outcome is never evaluated before a message
		// it names (see Deciding).
		return nil, heldf(waitFor{at: due}, "a message written at %s, beyond the clock tolerance of %s", m.m.at.Format(time.RFC3339), ClockTolerance)
	}
	if c.winner != nil {
		m.late = true
		if err := b.storeMsg(tx, c, e, m, plain); err != nil {
			return nil, fatal(err)
		}
		changed[c.id] = true // a held outcome may name it
		return b.ackFor(e), refusef("conversation decided")
	}
	if err := b.storeMsg(tx, c, e, m, plain); err != nil {
		return nil, fatal(err)
	}
	changed[c.id] = true
	return b.ackFor(e), nil
}

func (b *Book) applyGenesis(tx *store.Tx, e *envelope, changed map[ID]bool) ([]byte, error) {
	if b.convs[e.conv] != nil {
		return b.ackFor(e), nil
	}
	plain, err := openWith(b.ident, e.payload, maxPayload)
	if err != nil {
		return nil, err
	}
	g, err := parseGenesis(plain)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(g.members, e.cert.User) {
		return nil, refusef("the creator %s is not a member", e.cert.User.Short())
	}
	if !slices.Contains(g.members, b.user) {
		return nil, refusef("this device's user is not a member")
	}
	if b.revokedIn(g.rosters, e.cert) {
		return nil, refusef("the creator's device %s is revoked", e.cert.Device.Short())
	}
	if g.pattern == Chat && g.rule != "" {
		return nil, refusef("a chat with a rule")
	}
	// Each conversation can hold MaxMessages messages on our disk: another
	// user (a friend, or anyone a member introduced) gets a bounded number
	// of open ones, not as many as they care to start.
	if !e.cert.User.Equal(b.user) && b.openBy(e.cert.User) >= MaxOpenByOther {
		return nil, refusef("%s already has %d conversations with this device (open, or decided and not archived yet), its limit", e.cert.User.Short(), MaxOpenByOther)
	}
	// A user who is not a friend costs nothing to make: a friend could
	// hand us conversations of as many made-up creators as it likes,
	// MaxOpenByOther each. Creators who are not friends share one bound.
	if !b.knownUser(e.cert.User) && b.openByStrangers() >= MaxOpenByStrangers {
		return nil, refusef("users who are not friends of this device's user already have %d conversations with it (open, or decided and not archived yet), their limit together", MaxOpenByStrangers)
	}
	if _, err := b.storeGenesis(tx, e, g, plain); err != nil {
		return nil, fatal(err)
	}
	changed[e.conv] = true
	return b.ackFor(e), nil
}

// applyAck removes the outbox items the ack's device acknowledges. The ack
// is signed by that device, so it drains only its own items.
func (b *Book) applyAck(tx *store.Tx, e *envelope) error {
	_, ids, err := parseAck(e.payload)
	if err != nil {
		return err
	}
	q := b.outbox[e.cert.Device]
	if q == nil {
		return nil
	}
	keep := q.items[:0:0]
	for _, it := range q.items {
		if it.conv == e.conv && slices.Contains(ids, it.id) {
			b.dirty = true
			if err := tx.Delete(store.BucketConvOutbox, outKey(e.cert.Device, it.seq)); err != nil {
				return fatal(err)
			}
			continue
		}
		keep = append(keep, it)
	}
	q.items = keep
	if len(keep) == 0 {
		delete(b.outbox, e.cert.Device)
	}
	return nil
}
