package conversation

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/kith-project/kith/seed"
)

// The regression tests of the security review of issue 12 (its findings
// are numbered as in the review; see docs/conversations.md, Hardening).

// forge signs an envelope of kind by d for conversation id with a chosen
// seq, prev and Lamport time, sealed to every member device via knows.
func forge(t *testing.T, d, via *device, id ID, kind byte, seq uint64, prev MessageID, lamport uint64, plain []byte) ([]byte, MessageID) {
	t.Helper()
	via.book.mu.Lock()
	certs, err := via.book.recipients(via.book.convs[id])
	via.book.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := sealTo(archives(certs), plain)
	if err != nil {
		t.Fatal(err)
	}
	raw, eid := sealEnvelope(d.self.Key, d.self.Cert, kind, id, seq, prev, lamport, sealed)
	return raw, MessageID(eid)
}

// TestLamportCeiling (finding 3): a member's message at MaxLamport used to
// be accepted, after which no device could post (its next Lamport time
// was out of range). Now it waits, held, and the others post on.
func TestLamportCeiling(t *testing.T) {
	l := newLab(t)
	alice, bob, mallory := l.addUser("alice", 1), l.addUser("bob", 1), l.addUser("mallory", 1)
	id := l.create(alice, Discussion, `tally("yes") >= 2`, "picnic", bob, mallory)
	a, b, m := alice.devs[0], bob.devs[0], mallory.devs[0]
	n := l.net(1, 0, 0)
	n.settle()
	p := messagePayload{at: l.clock.Now(), kind: "text", body: "hi"}
	for _, lam := range []uint64{MaxLamport, MaxLamportStep + 1} {
		raw, _ := forge(t, m, a, id, kindMessage, 1, MessageID{}, lam, p.marshal())
		for _, d := range []*device{a, b} {
			if _, err := d.book.Receive(raw); !errors.Is(err, ErrHeld) {
				t.Fatalf("%s receives Lamport %d: %v, want ErrHeld", d.name, lam, err)
			}
		}
	}
	if _, err := a.book.Vote(id, "yes"); err != nil {
		t.Fatalf("alice votes: %v", err)
	}
	if _, err := b.book.Post(id, "text", "hello"); err != nil {
		t.Fatalf("bob posts: %v", err)
	}
	// Within the step it is accepted, and honest devices follow it.
	raw, _ := forge(t, m, a, id, kindMessage, 1, MessageID{}, MaxLamportStep, p.marshal())
	if _, err := a.book.Receive(raw); err != nil {
		t.Fatalf("Lamport %d: %v", uint64(MaxLamportStep), err)
	}
	if _, err := a.book.Post(id, "text", "after"); err != nil {
		t.Fatalf("alice posts after the step: %v", err)
	}
}

// TestDecideFailureKeepsBatch (finding 3): when this device cannot publish
// its outcome (here: more member devices than MaxRecipients), the
// envelopes received in the same batch used to be rolled back with it, and
// their senders retried for ever. Now they are stored and acknowledged.
func TestDecideFailureKeepsBatch(t *testing.T) {
	l := newLab(t)
	alice, bob, mallory := l.addUser("alice", 1), l.addUser("bob", 1), l.addUser("mallory", 1)
	id := l.create(alice, Discussion, `tally("yes") >= 2`, "picnic", bob, mallory)
	a, b := alice.devs[0], bob.devs[0]
	n := l.net(1, 0, 0)
	n.settle()
	if _, err := a.book.Vote(id, "yes"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.book.Post(id, "text", "bring cake"); err != nil {
		t.Fatal(err)
	}
	var honest [][]byte
	for _, o := range a.book.Pending(b.self.Cert.Device, 10) {
		honest = append(honest, o.Envelope)
	}
	if _, err := b.book.Vote(id, "yes"); err != nil {
		t.Fatal(err)
	}
	// mallory's directory entry grows past MaxRecipients devices.
	var certs []seed.DeviceCert
	for i := range MaxRecipients + 1 {
		dk, ak, err := seed.DeriveDevice(seedOf("mallory"), uint32(i+1))
		if err != nil {
			t.Fatal(err)
		}
		cert, err := mallory.key.IssueDeviceCert(seed.DeviceCert{Device: dk.Public(), Index: uint32(i + 1), Archive: ak.Recipient(),
			Name: fmt.Sprintf("m%d", i+1), Issued: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)})
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, cert)
	}
	l.dir.mu.Lock()
	l.dir.certs[mallory.key.Public()] = certs
	l.dir.mu.Unlock()
	before := countStored(t, b)
	if _, err := b.book.Post(id, "text", "x"); err == nil {
		t.Fatal("bob could publish to more than MaxRecipients devices")
	}
	acks, errs := b.book.ReceiveBatch(honest)
	for i := range errs {
		if errs[i] != nil || acks[i] == nil {
			t.Errorf("batch[%d]: ack %v, err %v", i, acks[i] != nil, errs[i])
		}
	}
	if got := countStored(t, b); got != before+len(honest) {
		t.Errorf("bob stored %d envelopes, want %d", got, before+len(honest))
	}
	if v := l.show(b, id); v.Outcome != nil {
		t.Errorf("bob decided without publishing: %+v", v.Outcome)
	}
}

// TestCrossUserRevocation (finding 6): mallory's own roster carried a
// "revocation" of bob's device, signed by mallory's user key, and alice
// left bob's device out of the recipients and refused its votes. A
// roster's revocation now counts only for its own user's devices; bob's
// own revocation still does.
func TestCrossUserRevocation(t *testing.T) {
	l := newLab(t)
	alice, bob, mallory := l.addUser("alice", 1), l.addUser("bob", 1), l.addUser("mallory", 1)
	a, b := alice.devs[0], bob.devs[0]
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	rev, err := mallory.key.Revoke(seed.Revocation{Device: b.self.Cert.Device, Index: 0, Revoked: at})
	if err != nil {
		t.Fatal(err)
	}
	mallory.revs = []seed.Revocation{rev}
	id := l.create(alice, Discussion, `tally("yes") >= 2`, "t", bob, mallory)
	a.book.mu.Lock()
	certs, err := a.book.recipients(a.book.convs[id])
	a.book.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	sealed := false
	for _, c := range certs {
		sealed = sealed || c.Device == b.self.Cert.Device
	}
	if !sealed {
		t.Error("alice leaves bob's device out of the recipients")
	}
	for _, err := range deliverAll(t, a, b) {
		if err != nil {
			t.Errorf("bob receives: %v", err)
		}
	}
	p := messagePayload{at: l.clock.Now(), kind: "vote", body: "yes"}
	raw, _ := forge(t, b, a, id, kindMessage, 1, MessageID{}, 1, p.marshal())
	if _, err := a.book.Receive(raw); err != nil {
		t.Errorf("alice receives bob's vote: %v", err)
	}

	// bob's own roster revoking his device is honoured.
	rev, err = bob.key.Revoke(seed.Revocation{Device: b.self.Cert.Device, Index: 0, Revoked: at})
	if err != nil {
		t.Fatal(err)
	}
	bob.revs, mallory.revs = []seed.Revocation{rev}, nil
	id2 := l.create(alice, Discussion, `tally("yes") >= 2`, "t2", bob, mallory)
	raw, _ = forge(t, b, a, id2, kindMessage, 1, MessageID{}, 1, p.marshal())
	if _, err := a.book.Receive(raw); !errors.Is(err, ErrRefused) {
		t.Errorf("alice receives the vote of bob's revoked device: %v, want refused", err)
	}
}

// TestHeldFlood (finding 7): envelopes of made-up conversations, which
// anybody can sign, used to evict a member's legitimately held message.
// Now an outsider's evict only other strangers' (at most MaxHeldStrangers
// are kept), and a friend's or a member's flood evicts its own envelopes
// first.
func TestHeldFlood(t *testing.T) {
	l := newLab(t)
	alice, bob, eve, mallory := l.addUser("alice", 1), l.addUser("bob", 1), l.addUser("eve", 1), l.addUser("mallory", 1)
	id := l.create(alice, Discussion, `tally("yes") >= 2`, "t", bob, mallory)
	a, b, e, m := alice.devs[0], bob.devs[0], eve.devs[0], mallory.devs[0]
	deliverAll(t, a, b)
	if _, err := a.book.Post(id, "text", "one"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.book.Post(id, "text", "two"); err != nil {
		t.Fatal(err)
	}
	ps := a.book.Pending(b.self.Cert.Device, 10)
	if _, err := b.book.Receive(ps[len(ps)-1].Envelope); !errors.Is(err, ErrHeld) { // seq 2 first
		t.Fatalf("seq 2 first: %v", err)
	}
	stillHeld := func(what string) {
		t.Helper()
		b.book.mu.Lock()
		_, ok := b.book.held[id]
		nheld := b.book.nheld
		b.book.mu.Unlock()
		if !ok {
			t.Fatalf("after %s (%d held): alice's held seq 2 was evicted", what, nheld)
		}
	}
	flood := func(d *device, n int) {
		for i := range n {
			var fake ID
			fake[0], fake[1], fake[2], fake[31] = byte(i), byte(i>>8), byte(i>>16), 1
			raw, _ := sealEnvelope(d.self.Key, d.self.Cert, kindMessage, fake, 1, MessageID{}, 1, []byte("x"))
			if _, err := b.book.Receive(raw); !errors.Is(err, ErrHeld) {
				t.Fatal(err)
			}
		}
	}
	flood(e, 4*MaxHeld)
	stillHeld("an outsider's flood")
	b.book.mu.Lock()
	if b.book.nheld != 1+MaxHeldStrangers {
		t.Errorf("%d held, want 1 and %d of the outsider's", b.book.nheld, MaxHeldStrangers)
	}
	b.book.mu.Unlock()

	l.dir.mu.Lock()
	l.dir.certs[eve.key.Public()] = []seed.DeviceCert{e.self.Cert}
	l.dir.mu.Unlock()
	flood(e, 4*MaxHeld)
	stillHeld("a friend's flood")
	b.book.mu.Lock()
	if n := b.book.heldBy[eve.key.Public()]; n != MaxHeldPerUser {
		t.Errorf("a friend has %d held, want %d", n, MaxHeldPerUser)
	}
	b.book.mu.Unlock()

	// A member's flood of its own chain's gaps in the same conversation.
	deliverAll(t, a, m)
	p := messagePayload{at: l.clock.Now(), kind: "text", body: "x"}
	for i := range 2 * MaxHeldPerConv {
		raw, _ := forge(t, m, a, id, kindMessage, uint64(i+10), MessageID{1}, uint64(i+10), p.marshal())
		if _, err := b.book.Receive(raw); !errors.Is(err, ErrHeld) {
			t.Fatal(err)
		}
	}
	stillHeld("a member's flood")
	// The held seq 2 is applied once seq 1 comes.
	if _, err := b.book.Receive(ps[len(ps)-2].Envelope); err != nil {
		t.Fatal(err)
	}
	if v := l.show(b, id); len(v.Messages) != 2 {
		t.Errorf("bob shows %d messages, want 2", len(v.Messages))
	}
}

// TestHeldReverse (finding 5): a forwarder delivering a chain in reverse
// used to cost a parse and a signature check of every held envelope per
// envelope applied (256 messages: 5.8 s against 0.4 s in order). Now each
// held envelope is tried again only when what it waits for is stored.
func TestHeldReverse(t *testing.T) {
	const n = 256
	l := newLab(t)
	alice, bob := l.addUser("alice", 1), l.addUser("bob", 1)
	id := l.create(alice, Discussion, `tally("yes") >= 2`, "t", bob)
	a, b := alice.devs[0], bob.devs[0]
	for range n {
		if _, err := a.book.Post(id, "text", "x"); err != nil {
			t.Fatal(err)
		}
	}
	var envs [][]byte
	for _, o := range a.book.Pending(b.self.Cert.Device, 1000) {
		envs = append(envs, o.Envelope)
	}
	if len(envs) != n+1 {
		t.Fatalf("%d pending", len(envs))
	}
	if _, err := b.book.Receive(envs[0]); err != nil { // the genesis, then the messages in reverse
		t.Fatal(err)
	}
	for i := len(envs) - 1; i >= 1; i-- {
		if _, err := b.book.Receive(envs[i]); (i == 1) != (err == nil) {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	if got := countStored(t, b); got != n {
		t.Fatalf("bob stored %d messages, want %d", got, n)
	}
	b.book.mu.Lock()
	tries, nheld := b.book.heldApplies, b.book.nheld
	b.book.mu.Unlock()
	if nheld != 0 || tries > 2*n {
		t.Errorf("%d held left; %d held envelopes tried again for %d messages, want at most %d", nheld, tries, n, 2*n)
	}
}

// TestOutcomeTimeBounds (finding 8): an outcome could be evaluated at any
// time after the genesis, before the messages it names were written (a
// deadline rule passed after the deadline), and one evaluated beyond the
// verifier's clock tolerance was refused for good (left alone undecided
// if the decider's clock was ahead). Now the first is refused and the
// second held until the clock gets there.
func TestOutcomeTimeBounds(t *testing.T) {
	t.Run("backdated", func(t *testing.T) {
		l := newLab(t)
		alice, bob, mallory := l.addUser("alice", 1), l.addUser("bob", 1), l.addUser("mallory", 1)
		id := l.create(alice, Discussion, `tally("yes") >= 2 && elapsed < 3600`, "within the hour", bob, mallory)
		a, b, m := alice.devs[0], bob.devs[0], mallory.devs[0]
		n := l.net(1, 0, 0)
		n.settle()
		start := l.clock.Now()
		ay, err := a.book.Vote(id, "yes")
		if err != nil {
			t.Fatal(err)
		}
		l.clock.Advance(2 * time.Hour)
		by, err := b.book.Vote(id, "yes")
		if err != nil {
			t.Fatal(err)
		}
		n.settle()
		if v := l.show(a, id); v.Outcome != nil {
			t.Fatalf("decided after the deadline: %+v", v.Outcome)
		}
		ids := []MessageID{ay, by}
		if string(ids[0][:]) > string(ids[1][:]) {
			ids[0], ids[1] = ids[1], ids[0]
		}
		o := outcomePayload{evaluated: start.Add(10 * time.Minute).Truncate(time.Millisecond), result: "yes", tally: map[string]int{"yes": 2}, set: setHash(ids), ids: ids}
		raw, _ := forge(t, m, a, id, kindOutcome, 1, MessageID{}, 3, o.marshal())
		mustRefuse(t, a, raw, "before a message it names")
	})
	t.Run("ahead", func(t *testing.T) {
		l := newLab(t)
		alice, bob, mallory := l.addUser("alice", 1), l.addUser("bob", 1), l.addUser("mallory", 1)
		id := l.create(alice, Discussion, `elapsed >= 3600 && tally("yes") >= 1`, "in an hour", bob, mallory)
		a, b, m := alice.devs[0], bob.devs[0], mallory.devs[0]
		n := l.net(1, 0, 0)
		n.settle()
		ay, err := a.book.Vote(id, "yes")
		if err != nil {
			t.Fatal(err)
		}
		n.settle()
		l.clock.Advance(55 * time.Minute)
		// mallory's clock is 10 minutes ahead.
		o := outcomePayload{evaluated: l.clock.Now().Add(10 * time.Minute).Truncate(time.Millisecond), result: "yes", tally: map[string]int{"yes": 1}, set: setHash([]MessageID{ay}), ids: []MessageID{ay}}
		raw, _ := forge(t, m, a, id, kindOutcome, 1, MessageID{}, 2, o.marshal())
		for _, d := range []*device{a, b} {
			if _, err := d.book.Receive(raw); !errors.Is(err, ErrHeld) {
				t.Fatalf("%s: %v, want held", d.name, err)
			}
		}
		l.clock.Advance(10 * time.Minute)
		for _, d := range []*device{a, b} {
			d.book.Tick()
			v := l.show(d, id)
			if v.Outcome == nil || v.Outcome.DecidedByDevice != m.self.Cert.Device {
				t.Errorf("%s after the clock caught up: %+v, want mallory's outcome", d.name, v.Outcome)
			}
		}
	})
	t.Run("message ahead", func(t *testing.T) {
		l := newLab(t)
		alice, bob := l.addUser("alice", 1), l.addUser("bob", 1)
		id := l.create(alice, Discussion, `tally("yes") >= 2`, "t", bob)
		a, b := alice.devs[0], bob.devs[0]
		l.net(1, 0, 0).settle()
		p := messagePayload{at: l.clock.Now().Add(10 * time.Minute), kind: "text", body: "from the future"}
		raw, _ := forge(t, b, a, id, kindMessage, 1, MessageID{}, 1, p.marshal())
		if _, err := a.book.Receive(raw); !errors.Is(err, ErrHeld) {
			t.Fatalf("a message 10 minutes ahead: %v, want held", err)
		}
		l.clock.Advance(8*time.Minute + time.Second)
		a.book.Tick()
		if v := l.show(a, id); len(v.Messages) != 1 {
			t.Errorf("after the clock caught up alice shows %d messages, want 1", len(v.Messages))
		}
	})
}

// TestOutcomeNamesOwnChain (finding 1, in part): an outcome must name its
// author device's earlier messages, so a member cannot leave out its own
// objection from the same device (it still can from a fresh one: see
// docs/conversations.md, Hardening).
func TestOutcomeNamesOwnChain(t *testing.T) {
	l := newLab(t)
	alice, bob, mallory := l.addUser("alice", 1), l.addUser("bob", 1), l.addUser("mallory", 1)
	id := l.create(alice, Discussion, `elapsed >= 86400 && tally("no") == 0`, "merge?", bob, mallory)
	a, m := alice.devs[0], mallory.devs[0]
	n := l.net(1, 0, 0)
	n.settle()
	no, err := m.book.Vote(id, "no")
	if err != nil {
		t.Fatal(err)
	}
	n.settle()
	l.clock.Advance(25 * time.Hour)
	o := outcomePayload{evaluated: l.clock.Now().Truncate(time.Millisecond), result: "", tally: map[string]int{}, set: setHash(nil)}
	raw, _ := forge(t, m, a, id, kindOutcome, 2, no, 2, o.marshal())
	mustRefuse(t, a, raw, "its own device's earlier messages")
}

// Another user can keep at most MaxOpenByOther conversations open with a
// device: a friend starting conversation after conversation does not fill
// its disk. The device's own user is not bounded.
func TestOpenByOtherBounded(t *testing.T) {
	l := newLab(t)
	alice, bob := l.addUser("alice", 1), l.addUser("bob", 1)
	a0, b0 := alice.devs[0], bob.devs[0]
	for i := range MaxOpenByOther {
		id := l.create(bob, Chat, "", fmt.Sprintf("chat %d", i), alice)
		if _, err := a0.book.Receive(lastEnvelope(t, b0, a0)); err != nil {
			t.Fatalf("conversation %d of bob's: %v", i, err)
		}
		if _, err := a0.book.Show(id); err != nil {
			t.Fatalf("alice lacks bob's conversation %d: %v", i, err)
		}
	}
	l.create(bob, Chat, "", "one too many", alice)
	mustRefuse(t, a0, lastEnvelope(t, b0, a0), "conversations with this device (open, or decided and not archived yet), its limit")
	// Alice's own conversations are hers to start.
	l.create(alice, Chat, "", "mine", bob)
}

// Users who are not friends share one bound of MaxOpenByStrangers
// conversations: a friend handing over conversations of made-up creators,
// MaxOpenByOther each, does not fill the disk either. Decided ones count
// until they are forgotten (archived): a rule of "true" decides at once,
// and a decided conversation still stores late messages. A friend's are
// bounded on their own, and the device's own user not at all.
func TestOpenByStrangersBounded(t *testing.T) {
	l := newLab(t)
	alice, bob := l.addUser("alice", 1), l.addUser("bob", 1)
	l.dir.certs[bob.key.Public()] = []seed.DeviceCert{bob.devs[0].self.Cert} // bob is a friend
	a0 := alice.devs[0]
	var strangers []*user
	for i := range 4 {
		strangers = append(strangers, l.addUser(fmt.Sprintf("stranger%d", i), 1))
	}
	var first ID
	for i := range MaxOpenByStrangers {
		s := strangers[i%3]
		id := l.create(s, Discussion, "true", fmt.Sprintf("decided at once %d", i), alice)
		if errs := deliverAll(t, s.devs[0], a0); len(errs) != 0 {
			t.Fatalf("conversation %d of %s's: %v", i, s.name, errs)
		}
		if v := l.show(a0, id); v.Outcome == nil {
			t.Fatalf("conversation %d is not decided at alice's", i)
		}
		if i == 0 {
			first = id
		}
	}
	s := strangers[3] // a fresh one, with no conversation yet
	l.create(s, Chat, "", "one too many", alice)
	tooMany := lastEnvelope(t, s.devs[0], a0)
	mustRefuse(t, a0, tooMany, "their limit together")
	// Archived and forgotten, a conversation frees its place.
	if err := a0.book.Forget(first); err != nil {
		t.Fatal(err)
	}
	if _, err := a0.book.Receive(tooMany); err != nil {
		t.Fatalf("a stranger's conversation after one was forgotten: %v", err)
	}
	// A friend's conversation is not a stranger's.
	id := l.create(bob, Chat, "", "bob's", alice)
	if _, err := a0.book.Receive(lastEnvelope(t, bob.devs[0], a0)); err != nil {
		t.Fatalf("bob's conversation: %v", err)
	}
	if _, err := a0.book.Show(id); err != nil {
		t.Fatal(err)
	}
	l.create(alice, Chat, "", "mine", strangers[3])
}
