package conversation

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"

	"github.com/kith-project/kith/internal/store"
	"github.com/kith-project/kith/seed"
)

// Pending lists up to max outbox items for device to, in order (a
// conversation's genesis before its messages).
func (b *Book) Pending(to seed.DevicePublic, max int) []Outgoing {
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.outbox[to]
	if q == nil || b.closed {
		return nil
	}
	var out []Outgoing
	err := b.cfg.Store.View(func(tx *store.Tx) error {
		for _, it := range q.items {
			if len(out) >= max {
				break
			}
			raw := b.envelopeOf(tx, it.conv, it.id)
			if raw == nil {
				continue
			}
			out = append(out, Outgoing{To: to, ToUser: q.user, Seq: it.seq, Envelope: raw})
		}
		return nil
	})
	if err != nil {
		b.log.Warn("conversation: reading the outbox", "err", err)
	}
	return out
}

// envelopeOf reads a stored envelope. b.mu is held.
func (b *Book) envelopeOf(tx *store.Tx, conv ID, id MessageID) []byte {
	if id == MessageID(conv) {
		if c := b.convs[conv]; c != nil {
			return slices.Clone(c.rec.Genesis)
		}
		return nil
	}
	var rec msgRec
	if ok, err := tx.Get(store.BucketConvMessages, msgKey(conv, id), &rec); !ok || err != nil {
		if err != nil {
			b.log.Warn("conversation: reading an outbox envelope", "err", err)
		}
		return nil
	}
	return rec.Env
}

// Recipients lists the devices with pending outbox items.
func (b *Book) Recipients() []seed.DevicePublic {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]seed.DevicePublic, 0, len(b.outbox))
	for d := range b.outbox {
		out = append(out, d)
	}
	slices.SortFunc(out, func(x, y seed.DevicePublic) int { return bytes.Compare(x[:], y[:]) })
	return out
}

// List summarizes the conversations, most recently updated first.
func (b *Book) List() ([]Summary, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	out := make([]Summary, 0, len(b.convs))
	for _, c := range b.convs {
		out = append(out, c.summary())
	}
	slices.SortFunc(out, func(x, y Summary) int {
		if c := y.Updated.Compare(x.Updated); c != 0 {
			return c
		}
		return bytes.Compare(x.ID[:], y.ID[:])
	})
	return out, nil
}

func (c *conv) summary() Summary {
	s := Summary{ID: c.id, Topic: c.g.topic, Pattern: c.g.pattern, Status: StatusOpen,
		Members: slices.Clone(c.g.members), Updated: c.state.Updated}
	if c.winner != nil {
		s.Status = StatusDecided
	}
	return s
}

// Show returns conversation id in full, or ErrNotFound.
func (b *Book) Show(id ID) (View, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return View{}, ErrClosed
	}
	c := b.convs[id]
	if c == nil {
		return View{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	v := View{Summary: c.summary(), Rule: c.g.rule, Creator: c.creator, Created: c.g.created}
	ms := c.order
	if w := c.winner; w != nil {
		ms = make([]*msg, 0, len(w.outcome.ids))
		for _, id := range w.outcome.ids {
			ms = append(ms, c.msgs[id])
		}
		slices.SortFunc(ms, func(x, y *msg) int { return x.less(y) })
		o := outcomeOf(w)
		v.Outcome = &o
		v.Tally = maps.Clone(w.outcome.tally)
	} else {
		v.Tally = c.currentTally().Counts()
		v.RuleError = c.ruleErr
	}
	for _, m := range ms {
		v.Messages = append(v.Messages, MessageView{ID: m.id, By: m.user, Device: m.device,
			Kind: m.m.kind, Body: m.m.body, At: m.m.at, Lamport: m.lamport})
	}
	return v, nil
}

func outcomeOf(w *msg) Outcome {
	o := w.outcome
	return Outcome{
		Result: o.result, Tally: maps.Clone(o.tally), EvaluatedAt: o.evaluated,
		MessageSet: hex.EncodeToString(o.set[:]), Messages: slices.Clone(o.ids),
		DecidedBy: w.user, DecidedByDevice: w.device, Lamport: w.lamport, ID: w.id,
	}
}

// Genesis returns the conversation's genesis envelope, for the agent's
// cluster index.
func (b *Book) Genesis(id ID) ([]byte, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.convs[id]
	if c == nil {
		return nil, false
	}
	return slices.Clone(c.rec.Genesis), true
}

// Tick re-evaluates open conversations whose rule reads elapsed; the agent
// calls it every few seconds.
func (b *Book) Tick() {
	changed := map[ID]bool{}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	err := b.update(func(tx *store.Tx) error {
		for _, id := range b.dueHeld() {
			if err := b.drainHeld(tx, id, storedEvent{tick: true}, changed); err != nil {
				return err
			}
		}
		for _, c := range b.convs {
			if c.rule == nil || c.winner != nil || (!c.rule.UsesElapsed() && !changed[c.id]) {
				continue
			}
			if err := b.tryDecide(tx, c); err != nil {
				return err
			}
			if c.winner != nil {
				changed[c.id] = true
			}
		}
		return nil
	})
	b.mu.Unlock()
	if err != nil {
		b.log.Warn("conversation: tick", "err", err)
		return
	}
	b.notify(changed)
}

// Envelopes returns every stored envelope of conversation id in an order
// Receive accepts: the genesis, then messages and outcomes ascending by
// (Lamport, ID), which keeps each author chain in order and every outcome
// after the messages it names. Late messages are included. It is for an
// own device that lacks the conversation (the agent's sync); ErrNotFound
// if there is none.
func (b *Book) Envelopes(id ID) ([][]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	c := b.convs[id]
	if c == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	ms := make([]*msg, 0, len(c.msgs))
	for _, m := range c.msgs {
		ms = append(ms, m)
	}
	slices.SortFunc(ms, func(x, y *msg) int { return x.less(y) })
	out := [][]byte{slices.Clone(c.rec.Genesis)}
	err := b.cfg.Store.View(func(tx *store.Tx) error {
		for _, m := range ms {
			var rec msgRec
			ok, err := tx.Get(store.BucketConvMessages, msgKey(id, m.id), &rec)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("conversation: message %s of %s is missing from the store", m.id, id)
			}
			out = append(out, rec.Env)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
