package conversation

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kith-project/kith/internal/store"
	"github.com/kith-project/kith/seed"
)

// # Held envelopes
//
// An envelope that must wait (for its conversation's genesis, an earlier
// envelope of its chain, the messages an outcome names) is kept in memory,
// bounded: MaxHeld envelopes and MaxHeldBytes in all, MaxHeldPerConv per
// conversation, MaxHeldPerUser per author user. When a bound is reached the
// oldest envelope of the author user holding the most (in all, or in the
// conversation) goes first, so one flooding author evicts its own
// envelopes before anybody else's. Anybody can sign an envelope of a
// made-up conversation, and mint users at will: an envelope of a
// conversation this device does not know, from a stranger (neither this
// user nor a user the Directory has certificates of), is kept among at most
// MaxHeldStrangers such, the oldest evicted first, so strangers evict only
// strangers. An evicted envelope is not acknowledged: its sender sends it
// again.

// MaxHeldPerUser is how many held envelopes one author user may have, in
// all conversations.
const MaxHeldPerUser = MaxHeldPerConv

// MaxHeldStrangers is how many held envelopes of unknown conversations by
// strangers are kept, in all.
const MaxHeldStrangers = 64

type heldEnv struct {
	id       [32]byte
	raw      []byte
	e        *envelope // parsed and verified
	wait     waitFor
	user     seed.UserPublic
	age      uint64 // order of arrival: lower is older
	stranger bool   // of an unknown conversation, by a stranger
}

// knownUser says whether u is this device's user or a friend.
func (b *Book) knownUser(u seed.UserPublic) bool {
	return u.Equal(b.user) || (b.cfg.Dir != nil && len(b.cfg.Dir.Certs(u)) > 0)
}

// hold keeps e until what it waits for arrives; stranger: see Held
// envelopes.
func (b *Book) hold(e *envelope, stranger bool, w waitFor) {
	for _, h := range b.held[e.conv] {
		if h.id == e.id {
			h.wait = w
			return
		}
	}
	u := e.cert.User
	if stranger && b.nstrangers >= MaxHeldStrangers {
		b.evictOldest(func(_ ID, h *heldEnv) bool { return h.stranger })
	}
	if b.heldBy[u] >= MaxHeldPerUser {
		b.evictOldest(func(_ ID, h *heldEnv) bool { return h.user == u })
	}
	if len(b.held[e.conv]) >= MaxHeldPerConv {
		b.evictHeaviest(func(id ID) bool { return id == e.conv })
	}
	for b.nheld >= MaxHeld || (b.nheld > 0 && b.heldBytes+len(e.raw) > MaxHeldBytes) {
		b.evictHeaviest(func(ID) bool { return true })
	}
	b.heldAge++
	b.held[e.conv] = append(b.held[e.conv], &heldEnv{id: e.id, raw: e.raw, e: e, wait: w, user: u, age: b.heldAge, stranger: stranger})
	if stranger {
		b.nstrangers++
	}
	b.nheld++
	b.heldBytes += len(e.raw)
	b.heldBy[u]++
}

// evictHeaviest drops the oldest held envelope of the author user with
// the most held envelopes in the conversations in.
func (b *Book) evictHeaviest(in func(ID) bool) {
	n := map[seed.UserPublic]int{}
	var heavy seed.UserPublic
	for id, q := range b.held {
		if !in(id) {
			continue
		}
		for _, h := range q {
			n[h.user]++
			if n[h.user] > n[heavy] {
				heavy = h.user
			}
		}
	}
	b.evictOldest(func(id ID, h *heldEnv) bool { return in(id) && h.user == heavy })
}

// evictOldest drops the oldest held envelope that match says to.
func (b *Book) evictOldest(match func(ID, *heldEnv) bool) {
	var oldest *heldEnv
	var conv ID
	for id, q := range b.held {
		for _, h := range q {
			if match(id, h) && (oldest == nil || h.age < oldest.age) {
				oldest, conv = h, id
			}
		}
	}
	if oldest != nil {
		b.unhold(conv, oldest.id)
	}
}

func (b *Book) unhold(conv ID, id [32]byte) {
	q := b.held[conv]
	for i, h := range q {
		if h.id == id {
			b.held[conv] = slices.Delete(q, i, i+1)
			b.nheld--
			b.heldBytes -= len(h.raw)
			if h.stranger {
				b.nstrangers--
			}
			if b.heldBy[h.user]--; b.heldBy[h.user] == 0 {
				delete(b.heldBy, h.user)
			}
			break
		}
	}
	if len(b.held[conv]) == 0 {
		delete(b.held, conv)
	}
}

// waitFor is what a held envelope waits for; the zero fields do not count.
type waitFor struct {
	genesis bool              // its conversation's genesis
	dev     seed.DevicePublic // with seq: the envelope at seq of device dev
	seq     uint64
	id      MessageID // a message an outcome names
	lamport uint64    // the conversation's highest Lamport time reaching this
	at      time.Time // this device's clock reaching this
}

// heldError is an ErrHeld saying what the envelope waits for.
type heldError struct {
	wait   waitFor
	reason string
}

func heldf(w waitFor, format string, args ...any) error {
	return &heldError{wait: w, reason: fmt.Sprintf(format, args...)}
}

func (e *heldError) Error() string { return ErrHeld.Error() + ": " + e.reason }

func (e *heldError) Is(target error) bool { return target == ErrHeld }

// storedEvent is an envelope just stored, which may wake held ones, or
// (tick) the clock having moved on.
type storedEvent struct {
	tick    bool
	genesis bool
	dev     seed.DevicePublic
	seq     uint64
	id      MessageID
}

// stored says whether e is stored now (a genesis, a message, late or not,
// or an outcome), and as what event.
func (b *Book) stored(e *envelope) (storedEvent, bool) {
	c := b.convs[e.conv]
	switch {
	case c == nil:
		return storedEvent{}, false
	case e.kind == kindGenesis:
		return storedEvent{genesis: true}, true
	case c.msgs[e.id] != nil && c.msgs[e.id].device == e.cert.Device:
		return storedEvent{dev: e.cert.Device, seq: e.seq, id: e.id}, true
	}
	return storedEvent{}, false
}

// wakes says whether ev (in conversation c, at now) may let h apply.
func (w waitFor) wakes(c *conv, ev storedEvent, now time.Time) bool {
	switch {
	case !w.at.IsZero():
		return !now.Before(w.at)
	case ev.tick:
		return false
	case w.genesis:
		return ev.genesis
	case w.seq != 0:
		return ev.dev == w.dev && ev.seq == w.seq
	case w.id != MessageID{}:
		return ev.id == w.id
	case w.lamport != 0:
		return c.lamport >= w.lamport
	}
	return true
}

// drainHeld applies the held envelopes of conversation id that ev wakes,
// then those each of them wakes in turn. Held envelopes stay parsed and
// verified, and each stored envelope looks only at what waits in its
// conversation (a comparison each, no cryptography), so a chain held in
// reverse drains in linear time but for those comparisons.
func (b *Book) drainHeld(tx *store.Tx, id ID, ev storedEvent, changed map[ID]bool) error {
	events := []storedEvent{ev}
	now := b.now()
	for len(events) > 0 {
		ev := events[0]
		events = events[1:]
		c := b.convs[id]
		if c == nil {
			return nil
		}
		var woken []*heldEnv
		for _, h := range b.held[id] {
			if h.wait.wakes(c, ev, now) {
				woken = append(woken, h)
			}
		}
		for _, h := range woken {
			b.heldApplies++
			_, err := b.apply(tx, h.e, changed)
			var f *fatalError
			if errors.As(err, &f) {
				return err
			}
			var he *heldError
			if errors.As(err, &he) {
				h.wait = he.wait
				continue
			}
			b.unhold(id, h.id)
			if next, ok := b.stored(h.e); ok {
				events = append(events, next)
			}
		}
	}
	return nil
}

// dueHeld lists the conversations with a held envelope waiting for this
// device's clock to reach a time now passed.
func (b *Book) dueHeld() []ID {
	now := b.now()
	var out []ID
	for id, q := range b.held {
		for _, h := range q {
			if !h.wait.at.IsZero() && !now.Before(h.wait.at) {
				out = append(out, id)
				break
			}
		}
	}
	return out
}

// open decrypts e's payload once; a held envelope keeps it.
func (b *Book) open(e *envelope) ([]byte, error) {
	if e.plain != nil {
		return e.plain, nil
	}
	plain, err := openWith(b.ident, e.payload, maxPayload)
	if err != nil {
		return nil, err
	}
	e.plain = plain
	return plain, nil
}
