package conversation

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// deliverAll hands every pending item of from for to to it, and the acks
// back. It returns the errors of Receive.
func deliverAll(t *testing.T, from, to *device) []error {
	t.Helper()
	var errs []error
	for _, o := range from.book.Pending(to.self.Cert.Device, 1000) {
		ack, err := to.book.Receive(o.Envelope)
		if err != nil {
			errs = append(errs, err)
		}
		if ack != nil {
			if _, err := from.book.Receive(ack); err != nil {
				t.Fatal(err)
			}
		}
	}
	return errs
}

// TestOfflineCatchUpAndLateVote: carol is offline while alice and bob
// decide; her vote, cast before she heard of the outcome, is refused by
// the others (and acknowledged); when she comes back she has every
// message, verifies the outcome and shows what they show.
func TestOfflineCatchUpAndLateVote(t *testing.T) {
	for s := uint64(1); s <= 3; s++ {
		l := newLab(t)
		alice, bob, carol := l.addUser("alice", 1), l.addUser("bob", 1), l.addUser("carol", 1)
		id := l.create(alice, Discussion, `tally("yes") >= 2`, "picnic", bob, carol)
		a, b, c := alice.devs[0], bob.devs[0], carol.devs[0]
		deliverAll(t, a, c) // carol has the genesis, then goes offline
		c.offline = true
		n := l.net(s, 0.25, 0.25)
		n.settle()
		if _, err := a.book.Vote(id, "yes"); err != nil {
			t.Fatal(err)
		}
		if _, err := a.book.Post(id, "text", "bring cake"); err != nil {
			t.Fatal(err)
		}
		if _, err := b.book.Vote(id, "yes"); err != nil {
			t.Fatal(err)
		}
		n.settle()
		va := l.show(a, id)
		if va.Outcome == nil || va.Outcome.Result != "yes" {
			t.Fatalf("alice's outcome %+v, want yes", va.Outcome)
		}
		// Carol, offline, votes no: her own device takes it.
		late, err := c.book.Vote(id, "no")
		if err != nil {
			t.Fatal(err)
		}
		env := lastEnvelope(t, c, a)
		ack, err := a.book.Receive(env)
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "decided") || ack == nil {
			t.Fatalf("alice receiving carol's late vote: ack %v, %v; want refused as decided, with an ack", ack != nil, err)
		}
		if _, err := c.book.Receive(ack); err != nil {
			t.Fatal(err)
		}
		c.offline = false
		n.settle()
		v := checkConverged(t, l, id)
		for _, m := range v.Messages {
			if m.ID == late {
				t.Fatal("the late vote is shown")
			}
		}
		if v.Outcome.Tally["yes"] != 2 || v.Outcome.Tally["no"] != 0 {
			t.Fatalf("tally %v, want yes 2", v.Outcome.Tally)
		}
		if _, err := c.book.Vote(id, "yes"); !IsBadInput(err) {
			t.Fatalf("voting in a decided conversation: %v, want bad input", err)
		}
	}
}

// TestInvitationSecondYes: the invitation closes at the second member's
// yes; one member changing their RSVP back and forth counts once.
func TestInvitationSecondYes(t *testing.T) {
	l := newLab(t)
	alice, bob, carol, dan := l.addUser("alice", 1), l.addUser("bob", 1), l.addUser("carol", 1), l.addUser("dan", 1)
	id := l.create(alice, Invitation, `tally("yes") >= 2`, "dinner at 8", bob, carol, dan)
	n := l.net(7, 0.2, 0.2)
	n.settle()
	b, c, d := bob.devs[0], carol.devs[0], dan.devs[0]
	for _, choice := range []string{"yes", "no", "yes", "maybe", "yes"} {
		if _, err := b.book.Vote(id, choice); err != nil {
			t.Fatal(err)
		}
		n.settle()
	}
	if _, err := d.book.Vote(id, "maybe"); err != nil {
		t.Fatal(err)
	}
	n.settle()
	if v := checkConverged(t, l, id); v.Outcome != nil || v.Tally["yes"] != 1 {
		t.Fatalf("after bob's five RSVPs: outcome %v tally %v; want open with one yes", v.Outcome, v.Tally)
	}
	if _, err := c.book.Vote(id, "yes"); err != nil {
		t.Fatal(err)
	}
	n.settle()
	v := checkConverged(t, l, id)
	if v.Status != StatusDecided || v.Outcome.Result != "yes" || v.Outcome.Tally["yes"] != 2 || v.Outcome.Tally["maybe"] != 1 {
		t.Fatalf("status %s outcome %+v; want decided yes 2 maybe 1", v.Status, v.Outcome)
	}
	if _, err := d.book.Post(id, "rsvp", "yes"); !IsBadInput(err) {
		t.Fatalf("an RSVP after the decision: %v, want bad input", err)
	}
}

// TestAnnouncement: only the creator posts text; others may ack.
func TestAnnouncement(t *testing.T) {
	l := newLab(t)
	alice, bob := l.addUser("alice", 1), l.addUser("bob", 1)
	id := l.create(alice, Announcement, "", "the office is closed monday", bob)
	n := l.net(3, 0, 0)
	n.settle()
	a, b := alice.devs[0], bob.devs[0]
	if _, err := b.book.Post(id, "text", "no it is not"); !IsBadInput(err) {
		t.Fatalf("bob posting text: %v, want bad input", err)
	}
	// Bob's device made to send it anyway is refused by alice's.
	mustRefuse(t, a, l.craftMsg(b, id, 1, MessageID{}, 3, "text", "no it is not"), "only the creator")
	if _, err := b.book.Post(id, "ack", "seen"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.book.Post(id, "text", "and tuesday"); err != nil {
		t.Fatal(err)
	}
	n.settle()
	if v := checkConverged(t, l, id); len(v.Messages) != 2 {
		t.Fatalf("%d messages, want the ack and the text", len(v.Messages))
	}
	if _, err := b.book.Vote(id, "yes"); !IsBadInput(err) {
		t.Fatalf("voting in an announcement: %v, want bad input", err)
	}
}

// TestConcurrentOutcomes: two devices decide at once; every device ends
// with the lowest (Lamport, ID), whichever outcome it saw first.
func TestConcurrentOutcomes(t *testing.T) {
	l := newLab(t)
	alice, bob, carol := l.addUser("alice", 1), l.addUser("bob", 1), l.addUser("carol", 1)
	id := l.create(alice, Discussion, `tally("yes") >= 2`, "paint it blue?", bob, carol)
	a, b, c := alice.devs[0], bob.devs[0], carol.devs[0]
	deliverAll(t, a, b)
	deliverAll(t, a, c)
	if _, err := a.book.Vote(id, "yes"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.book.Vote(id, "yes"); err != nil {
		t.Fatal(err)
	}
	voteA, voteB := lastEnvelope(t, a, b), lastEnvelope(t, b, a)
	if _, err := b.book.Receive(voteA); err != nil {
		t.Fatal(err)
	}
	if _, err := a.book.Receive(voteB); err != nil {
		t.Fatal(err)
	}
	oa, ob := l.show(a, id).Outcome, l.show(b, id).Outcome
	if oa == nil || ob == nil || oa.ID == ob.ID {
		t.Fatalf("want two concurrent outcomes, have %v and %v", oa, ob)
	}
	win := oa
	if ob.Lamport < oa.Lamport || (ob.Lamport == oa.Lamport && bytes.Compare(ob.ID[:], oa.ID[:]) < 0) {
		win = ob
	}
	// Carol gets the loser first, then the winner.
	first, second := a, b
	if win == oa {
		first, second = b, a
	}
	// Carol gets the loser's device's vote and outcome (held: she lacks
	// the other vote), then the other vote: the loser is valid and wins,
	// for now.
	deliverAll(t, first, c)
	if o := l.show(c, id).Outcome; o != nil {
		t.Fatalf("carol decided without every vote: %v", o)
	}
	other := voteA
	if first == a {
		other = voteB
	}
	if _, err := c.book.Receive(other); err != nil {
		t.Fatal(err)
	}
	if o := l.show(c, id).Outcome; o == nil || o.ID == win.ID {
		t.Fatalf("carol's outcome after the loser: %v", o)
	}
	deliverAll(t, second, c)
	if o := l.show(c, id).Outcome; o == nil || o.ID != win.ID {
		t.Fatalf("carol's outcome after the winner: %v", o)
	}
	n := l.net(11, 0.2, 0.2)
	n.settle()
	v := checkConverged(t, l, id)
	if v.Outcome.ID != win.ID {
		t.Fatalf("everyone shows outcome %s, want the lowest %s", v.Outcome.ID, win.ID)
	}
}

// TestAtRestSealed: a copy of the database file holds neither the topic
// nor a body, in clear or in the hex or base64 a JSON value could carry.
func TestAtRestSealed(t *testing.T) {
	l := newLab(t)
	alice, bob := l.addUser("alice", 1), l.addUser("bob", 1)
	topic, body := "TOPIC-the-surprise-party-for-dan", "BODY-buy-the-blue-balloons"
	id := l.create(alice, Discussion, `unanimous("yes")`, topic, bob)
	if _, err := alice.devs[0].book.Post(id, "text", body); err != nil {
		t.Fatal(err)
	}
	l.net(1, 0, 0).settle()
	if v := l.show(bob.devs[0], id); v.Topic != topic || len(v.Messages) != 1 || v.Messages[0].Body != body {
		t.Fatalf("bob shows %q %v", v.Topic, v.Messages)
	}
	for _, d := range l.devs {
		path := d.path
		d.close()
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{topic, body, "surprise-party", "blue-balloons"} {
			if bytes.Contains(raw, []byte(secret)) {
				t.Fatalf("%s's database holds %q", d.name, secret)
			}
		}
		l.open(d)
		if v := l.show(d, id); v.Topic != topic || v.Messages[0].Body != body {
			t.Fatalf("%s after reopening: %q %v", d.name, v.Topic, v.Messages)
		}
	}
}

// TestOutOfOrder: messages before their genesis, and after a gap in their
// chain, wait and are applied when the gap fills.
func TestOutOfOrder(t *testing.T) {
	l := newLab(t)
	alice, bob := l.addUser("alice", 1), l.addUser("bob", 1)
	id := l.create(alice, Discussion, `unanimous("yes")`, "order", bob)
	a, b := alice.devs[0], bob.devs[0]
	for _, s := range []string{"one", "two", "three"} {
		if _, err := a.book.Post(id, "text", s); err != nil {
			t.Fatal(err)
		}
	}
	p := a.book.Pending(b.self.Cert.Device, 100)
	if len(p) != 4 {
		t.Fatalf("%d pending, want the genesis and three messages", len(p))
	}
	for _, i := range []int{3, 2, 1} {
		if ack, err := b.book.Receive(p[i].Envelope); !errors.Is(err, ErrHeld) || ack != nil {
			t.Fatalf("message %d before the genesis: %v", i, err)
		}
	}
	if _, err := b.book.Receive(p[0].Envelope); err != nil {
		t.Fatal(err)
	}
	v := l.show(b, id)
	if len(v.Messages) != 3 || v.Messages[0].Body != "one" || v.Messages[2].Body != "three" {
		t.Fatalf("bob shows %v after the genesis", v.Messages)
	}
	// The held ones were applied: a re-send is a duplicate with its ack.
	if ack, err := b.book.Receive(p[2].Envelope); err != nil || ack == nil {
		t.Fatalf("a re-send of an applied held envelope: %v", err)
	}
}

// TestElapsedRuleOnTick: a rule reading elapsed decides on Tick, without
// a new message.
func TestElapsedRuleOnTick(t *testing.T) {
	l := newLab(t)
	alice, bob := l.addUser("alice", 1), l.addUser("bob", 1)
	id := l.create(alice, Discussion, `elapsed >= 3600 && tally("no") == 0`, "silence is consent", bob)
	n := l.net(5, 0, 0)
	n.settle()
	if _, err := bob.devs[0].book.Vote(id, "yes"); err != nil {
		t.Fatal(err)
	}
	n.settle()
	for _, d := range l.devs {
		d.book.Tick()
	}
	if v := l.show(alice.devs[0], id); v.Outcome != nil {
		t.Fatal("decided before the hour")
	}
	l.clock.Advance(time.Hour)
	alice.devs[0].book.Tick()
	n.settle()
	v := checkConverged(t, l, id)
	if v.Outcome == nil || v.Outcome.Result != "yes" {
		t.Fatalf("outcome %v after the hour, want yes", v.Outcome)
	}
}

// TestEnvelopesSync: a device that was never sent anything takes a decided
// conversation from another's Envelopes, in one batch, and shows the same.
func TestEnvelopesSync(t *testing.T) {
	l := newLab(t)
	alice, bob := l.addUser("alice", 2), l.addUser("bob", 1)
	a1 := alice.devs[1]
	a1.offline = true
	id := l.create(alice, Discussion, `tally("yes") >= 2`, "sync", bob)
	n := l.net(4, 0, 0)
	n.settle()
	for _, d := range []*device{alice.devs[0], bob.devs[0]} {
		if _, err := d.book.Post(id, "text", "hello from "+d.name); err != nil {
			t.Fatal(err)
		}
		if _, err := d.book.Vote(id, "yes"); err != nil {
			t.Fatal(err)
		}
		n.settle()
	}
	envs, err := bob.devs[0].book.Envelopes(id)
	if err != nil {
		t.Fatal(err)
	}
	_, errs := a1.book.ReceiveBatch(envs)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("envelope %d of %d: %v", i, len(envs), err)
		}
	}
	a1.offline = false
	n.settle()
	if v := checkConverged(t, l, id); v.Outcome == nil || len(v.Messages) != 4 {
		t.Fatalf("outcome %v, %d messages; want decided with 4", v.Outcome, len(v.Messages))
	}
}

// TestOnChangeAndBatch: OnChange follows what was stored, not duplicates or
// acks; ReceiveBatch answers each envelope as Receive would.
func TestOnChangeAndBatch(t *testing.T) {
	l := newLab(t)
	alice, bob := l.addUser("alice", 1), l.addUser("bob", 1)
	a, b := alice.devs[0], bob.devs[0]
	id := l.create(alice, Chat, "", "changes", bob)
	for _, s := range []string{"one", "two"} {
		if _, err := a.book.Post(id, "text", s); err != nil {
			t.Fatal(err)
		}
	}
	if got := a.changes.Load(); got != 3 {
		t.Fatalf("alice's OnChange ran %d times for a genesis and two posts, want 3", got)
	}
	var envs [][]byte
	for _, o := range a.book.Pending(b.self.Cert.Device, 100) {
		envs = append(envs, o.Envelope)
	}
	envs = append(envs, envs[1], []byte("junk"))
	acks, errs := b.book.ReceiveBatch(envs)
	for i := range 4 { // three envelopes and a duplicate
		if errs[i] != nil || acks[i] == nil {
			t.Fatalf("envelope %d: ack %v, %v", i, acks[i] != nil, errs[i])
		}
	}
	if !errors.Is(errs[4], ErrRefused) || acks[4] != nil {
		t.Fatalf("junk in a batch: %v", errs[4])
	}
	if got := b.changes.Load(); got != 1 {
		t.Fatalf("bob's OnChange ran %d times for one batch of one conversation, want 1", got)
	}
	before := a.changes.Load()
	_, errs = a.book.ReceiveBatch(acks[:4])
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if a.changes.Load() != before || len(a.book.Recipients()) != 0 {
		t.Fatalf("acks: OnChange ran, or %d devices still pending", len(a.book.Recipients()))
	}
}

// TestConcurrentUse: posts, deliveries, listings and ticks from several
// goroutines at once (for the race detector), then everything converges.
func TestConcurrentUse(t *testing.T) {
	l := newLab(t)
	alice, bob := l.addUser("alice", 1), l.addUser("bob", 1)
	a, b := alice.devs[0], bob.devs[0]
	id := l.create(alice, Discussion, `unanimous("yes")`, "busy", bob)
	deliverAll(t, a, b)
	var wg sync.WaitGroup
	for _, d := range []*device{a, b} {
		wg.Go(func() {
			for i := range 10 {
				if _, err := d.book.Post(id, "text", fmt.Sprint(d.name, i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range 10 {
			a.book.List()
			b.book.Show(id)
			a.book.Tick()
			for _, o := range a.book.Pending(b.self.Cert.Device, 5) {
				b.book.Receive(o.Envelope)
			}
		}
	})
	wg.Wait()
	l.net(3, 0.1, 0.1).settle()
	if v := checkConverged(t, l, id); len(v.Messages) != 20 {
		t.Fatalf("%d messages, want 20", len(v.Messages))
	}
}

// A rule that fails at run time (an index past the end of messages, int()
// of a body that is no number) says why in the View, and decides once the
// messages make it evaluate.
func TestRuleErrorShown(t *testing.T) {
	l := newLab(t)
	alice, bob := l.addUser("alice", 1), l.addUser("bob", 1)
	id := l.create(alice, Discussion, `int(messages[len(messages)-1].body) > 3`, "numbers", bob)
	a := alice.devs[0]
	if _, err := a.book.Post(id, "text", "no number"); err != nil {
		t.Fatal(err)
	}
	v := l.show(a, id)
	if v.Outcome != nil || v.RuleError == "" {
		t.Fatalf("a rule failing on %q: outcome %+v, rule error %q", "no number", v.Outcome, v.RuleError)
	}
	// Reopened (the agent restarted), the Book says so again at once.
	a.close()
	l.open(a)
	if again := l.show(a, id); again.RuleError != v.RuleError {
		t.Fatalf("after reopening, the rule error is %q, want %q", again.RuleError, v.RuleError)
	}
	if _, err := a.book.Post(id, "text", "5"); err != nil {
		t.Fatal(err)
	}
	v = l.show(a, id)
	if v.Outcome == nil || v.RuleError != "" {
		t.Fatalf("after a number: outcome %+v, rule error %q", v.Outcome, v.RuleError)
	}
}
