package conversation

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/kith-project/kith/consensus"
	"github.com/kith-project/kith/internal/store"
)

// # Deciding
//
// Every member device evaluates the rule after each message it accepts
// (and on Tick, for rules that read elapsed), over the messages it has
// accepted in the deciding order: ascending (Lamport time, message ID),
// the same on every device whatever order they arrived in. elapsed is the
// time from the genesis's creation to the evaluation. When the rule is
// true and no outcome is known, the device publishes a signed outcome: the
// result (the choice with the highest tally, ties broken by name), the
// tallies, the evaluation time, the ascending IDs of the messages it
// evaluated and their hash.
//
// A verifier accepts an outcome only after it has every message it names
// and its clock has reached ClockTolerance before the evaluation time
// (until then the outcome is held), when the set is closed under each
// chain's prev links, when its Lamport time is above every named message's,
// when its evaluation time is neither before the genesis nor more than
// ClockTolerance before the latest named message's time (a message written
// beyond ClockTolerance in a device's future is held by it, so an honest
// decider's outcome passes), and when evaluating exactly that set in the
// deciding order at that time makes the rule true with the same result and
// tallies. A member can still forge a decision: see docs/conversations.md,
// Hardening, finding 1.
//
// Of the valid outcomes, the lowest (Lamport, ID) wins, on every device,
// whichever arrived first: a decided conversation shows the winner's
// message set. A message that arrives after an outcome is refused
// ("conversation decided") and acknowledged; it is kept, flagged late and
// never shown or counted, only so that a competing outcome naming it can
// still be verified.

// maxRuleErr bounds the characters of a rule's evaluation error as a View
// shows it.
const maxRuleErr = 300

// checkRule evaluates the rule of open conversation c, publishing
// nothing, only to know whether it fails at run time (ruleErr): after the
// Book is loaded, a rule that failed before says so again without waiting
// for the next message.
func (b *Book) checkRule(c *conv) {
	if c.rule == nil || c.winner != nil {
		return
	}
	now := b.now().UTC().Truncate(time.Millisecond)
	if _, err := c.rule.Eval(c.currentTally(), now.Sub(c.g.created)); err != nil {
		c.ruleErr = sanitize(err.Error(), maxRuleErr)
	}
}

// decide evaluates c's rule at now and publishes an outcome if it holds.
func (b *Book) decide(tx *store.Tx, c *conv) error {
	if c.rule == nil || c.winner != nil {
		return nil
	}
	now := b.now().UTC().Truncate(time.Millisecond)
	t := c.currentTally()
	ok, err := c.rule.Eval(t, now.Sub(c.g.created))
	if err != nil {
		// Once per error, not on every tick.
		if msg := sanitize(err.Error(), maxRuleErr); msg != c.ruleErr {
			b.log.Warn("conversation: evaluating the rule", "conv", c.id, "err", msg)
			c.ruleErr = msg
		}
		return nil
	}
	c.ruleErr = ""
	if !ok {
		return nil
	}
	ids := make([]MessageID, len(c.order))
	for i, m := range c.order {
		ids[i] = m.id
	}
	slices.SortFunc(ids, func(x, y MessageID) int { return bytes.Compare(x[:], y[:]) })
	o := outcomePayload{evaluated: now, result: t.Result(), tally: t.Counts(), set: setHash(ids), ids: ids}
	if _, err := b.publish(tx, c, kindOutcome, o.marshal()); err != nil {
		return fmt.Errorf("conversation: publishing the outcome: %w", err)
	}
	b.log.Info("conversation: decided", "conv", c.id, "result", sanitize(o.result, 32))
	return nil
}

// tryDecide is decide for a caller whose own work stands whether or not an
// outcome can be published: only a failure of the store (a *fatalError) is
// returned, to drop the transaction; any other failure to publish is
// logged, and the next message or Tick tries again.
func (b *Book) tryDecide(tx *store.Tx, c *conv) error {
	err := b.decide(tx, c)
	var f *fatalError
	if err == nil || errors.As(err, &f) {
		return err
	}
	b.log.Warn("conversation: publishing an outcome", "conv", c.id, "err", err)
	return nil
}

// verifyOutcome checks an outcome of lamport against c (see Deciding).
func (b *Book) verifyOutcome(c *conv, o *outcomePayload, lamport uint64, prev MessageID) error {
	if c.rule == nil {
		return refusef("an outcome of a conversation without a rule")
	}
	set := make(map[MessageID]bool, len(o.ids))
	ms := make([]*msg, 0, len(o.ids))
	for _, id := range o.ids {
		m := c.msgs[id]
		if m == nil {
			return heldf(waitFor{id: id}, "an outcome names messages this device does not have yet")
		}
		if m.outcome != nil {
			return refusef("an outcome that names an outcome")
		}
		set[id] = true
		ms = append(ms, m)
	}
	if prev != (MessageID{}) && !set[prev] {
		// An honest decider evaluates every message it accepted, its
		// own device's first of all (review finding 1, in part).
		return refusef("an outcome that leaves out its own device's earlier messages")
	}
	for _, m := range ms {
		if m.prev != (MessageID{}) && !set[m.prev] {
			return refusef("an outcome's message set skips a message of a chain")
		}
		if m.lamport >= lamport {
			return refusef("an outcome not after the messages it names")
		}
	}
	if o.evaluated.Before(c.g.created) {
		return refusef("an outcome evaluated before the conversation began")
	}
	var latest time.Time
	for _, m := range ms {
		if m.m.at.After(latest) {
			latest = m.m.at
		}
	}
	if o.evaluated.Before(latest.Add(-ClockTolerance)) {
		// Every message accepted here was written at most
		// ClockTolerance ahead of the accepting device's clock, so an
		// honest decider's evaluation time is no earlier than this.
		return refusef("an outcome evaluated at %s, before a message it names (%s)", o.evaluated.Format(time.RFC3339), latest.Format(time.RFC3339))
	}
	if due := o.evaluated.Add(-ClockTolerance); b.now().Before(due) {
		// The decider's clock is ahead of this one: wait, not refuse
		// (refusing for good would leave this device alone undecided).
		return heldf(waitFor{at: due}, "an outcome evaluated at %s, beyond the clock tolerance of %s", o.evaluated.Format(time.RFC3339), ClockTolerance)
	}
	slices.SortFunc(ms, func(x, y *msg) int { return x.less(y) })
	t := consensus.NewTally(c.memberIDs())
	for _, m := range ms {
		t.Add(ruleMessage(m))
	}
	ok, err := c.rule.Eval(t, o.evaluated.Sub(c.g.created))
	switch {
	case err != nil:
		return refusef("evaluating the outcome's message set: %w", err)
	case !ok:
		return refusef("the rule is false on the outcome's message set")
	case t.Result() != o.result || !maps.Equal(t.Counts(), o.tally):
		return refusef("the outcome's result or tallies differ from its message set's")
	}
	return nil
}
