package conversation

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kith-project/kith/seed"
)

// craft seals and signs an envelope as device key/cert would, with any
// header, sealed to the lab's devices: for forging what a Book would not
// send.
func (l *lab) craft(key seed.DeviceKey, cert seed.DeviceCert, kind byte, conv ID, seq uint64, prev MessageID, lamport uint64, plain []byte) []byte {
	l.t.Helper()
	var rs []seed.ArchiveRecipient
	for _, d := range l.devs {
		rs = append(rs, d.self.Cert.Archive)
	}
	sealed, err := sealTo(rs, plain)
	if err != nil {
		l.t.Fatal(err)
	}
	raw, _ := sealEnvelope(key, cert, kind, conv, seq, prev, lamport, sealed)
	return raw
}

func (l *lab) craftMsg(d *device, conv ID, seq uint64, prev MessageID, lamport uint64, kind, body string) []byte {
	l.t.Helper()
	return l.craft(d.self.Key, d.self.Cert, kindMessage, conv, seq, prev, lamport,
		messagePayload{at: l.clock.Now(), kind: kind, body: body}.marshal())
}

// mustRefuse delivers env to d and asserts it is refused with reason and
// stores nothing.
func mustRefuse(t *testing.T, d *device, env []byte, reason string) {
	t.Helper()
	before := countStored(t, d)
	ack, err := d.book.Receive(env)
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), reason) {
		t.Fatalf("%s: Receive = %v, want refused with %q", d.name, err, reason)
	}
	if ack != nil {
		t.Fatalf("%s acknowledged a refused envelope", d.name)
	}
	if after := countStored(t, d); after != before {
		t.Fatalf("%s stored %d envelopes of a refused one", d.name, after-before)
	}
}

// lastEnvelope is the newest outbox item of from for to.
func lastEnvelope(t *testing.T, from, to *device) []byte {
	t.Helper()
	p := from.book.Pending(to.self.Cert.Device, 1000)
	if len(p) == 0 {
		t.Fatalf("%s has nothing for %s", from.name, to.name)
	}
	return p[len(p)-1].Envelope
}

func TestRefusals(t *testing.T) {
	l := newLab(t)
	alice, bob := l.addUser("alice", 2), l.addUser("bob", 1)
	eve := l.addUser("eve", 1) // not a member
	id := l.create(alice, Discussion, `unanimous("yes")`, "refusals", bob)
	eve.devs[0].offline = true
	n := l.net(1, 0, 0)
	n.settle()
	a0, a1, b0 := alice.devs[0], alice.devs[1], bob.devs[0]
	if _, err := a0.book.Post(id, "text", "first"); err != nil {
		t.Fatal(err)
	}
	good := lastEnvelope(t, a0, b0)

	t.Run("forged signature", func(t *testing.T) {
		bad := append([]byte(nil), good...)
		bad[len(bad)-1] ^= 1
		mustRefuse(t, b0, bad, "bad signature")
	})
	t.Run("altered in transit", func(t *testing.T) {
		bad := append([]byte(nil), good...)
		bad[len(bad)-100] ^= 1 // in the sealed payload
		mustRefuse(t, b0, bad, "bad signature")
		bad = append([]byte(nil), good...)
		bad[len(envMagic)+2+32+7] ^= 1 // the seq
		mustRefuse(t, b0, bad, "bad signature")
	})
	t.Run("cert not signed by a member", func(t *testing.T) {
		// Eve's device key with a certificate that claims bob's user but
		// is signed by eve: the certificate does not verify.
		cert := eve.devs[0].self.Cert
		cert.User = bob.key.Public()
		env := l.craft(eve.devs[0].self.Key, cert, kindMessage, id, 1, MessageID{}, 5,
			messagePayload{at: l.clock.Now(), kind: "text", body: "hi"}.marshal())
		mustRefuse(t, b0, env, "certificate")
	})
	t.Run("non-member", func(t *testing.T) {
		mustRefuse(t, b0, l.craftMsg(eve.devs[0], id, 1, MessageID{}, 5, "text", "let me in"), "not a member")
	})
	t.Run("kind not allowed", func(t *testing.T) {
		mustRefuse(t, b0, l.craftMsg(a1, id, 1, MessageID{}, 5, "rsvp", "yes"), "does not take")
	})
	t.Run("choice not allowed", func(t *testing.T) {
		mustRefuse(t, b0, l.craftMsg(a1, id, 1, MessageID{}, 5, "vote", "maybe"), "not a choice")
	})
	t.Run("terminal escape in a body", func(t *testing.T) {
		mustRefuse(t, b0, l.craftMsg(a1, id, 1, MessageID{}, 5, "text", "hi \x1b[2J"), "control character")
	})
	t.Run("replay", func(t *testing.T) {
		ack, err := b0.book.Receive(good)
		if err != nil || ack == nil {
			t.Fatalf("first delivery: %v", err)
		}
		before := countStored(t, b0)
		for range 3 {
			ack, err := b0.book.Receive(good)
			if err != nil || ack == nil {
				t.Fatalf("a duplicate: ack %v, %v; want an ack again", ack != nil, err)
			}
		}
		if countStored(t, b0) != before || len(l.show(b0, id).Messages) != 1 {
			t.Fatal("a duplicate stored something")
		}
	})
	t.Run("broken chain", func(t *testing.T) {
		// seq 2 of a0 with a prev that is not a0's first message.
		mustRefuse(t, b0, l.craftMsg(a0, id, 2, MessageID{1}, 9, "text", "rewritten"), "broken chain")
		// a second seq 1: a fork.
		mustRefuse(t, b0, l.craftMsg(a0, id, 1, MessageID{}, 1, "text", "other first"), "forked")
	})
	t.Run("revoked device", func(t *testing.T) {
		l.dir.mu.Lock()
		l.dir.revoked[a1.self.Cert.Device] = true
		l.dir.mu.Unlock()
		defer func() {
			l.dir.mu.Lock()
			delete(l.dir.revoked, a1.self.Cert.Device)
			l.dir.mu.Unlock()
		}()
		mustRefuse(t, b0, l.craftMsg(a1, id, 1, MessageID{}, 5, "text", "from a lost phone"), "revoked")
	})
	t.Run("outcome the set does not support", func(t *testing.T) {
		v := l.show(b0, id)
		ids := msgIDs(v)
		o := outcomePayload{evaluated: l.clock.Now(), result: "yes", tally: map[string]int{"yes": 2}, set: setHash(ids), ids: ids}
		env := l.craft(a1.self.Key, a1.self.Cert, kindOutcome, id, 1, MessageID{}, 50, o.marshal())
		mustRefuse(t, b0, env, "rule is false")
	})
	t.Run("outcome from the future", func(t *testing.T) {
		o := outcomePayload{evaluated: l.clock.Now().Add(time.Hour), tally: map[string]int{}, set: setHash(nil)}
		env := l.craft(a1.self.Key, a1.self.Cert, kindOutcome, id, 1, MessageID{}, 50, o.marshal())
		// Held, not refused, since the review (finding 8): the
		// decider's clock may be ahead; it waits for this one's.
		before := countStored(t, b0)
		if ack, err := b0.book.Receive(env); !errors.Is(err, ErrHeld) || !strings.Contains(err.Error(), "clock tolerance") || ack != nil {
			t.Fatalf("Receive = %v (ack %v), want held for the clock tolerance", err, ack != nil)
		}
		if after := countStored(t, b0); after != before {
			t.Fatalf("stored %d envelopes of a held one", after-before)
		}
	})
	t.Run("not sealed to this device", func(t *testing.T) {
		sealed, err := sealTo([]seed.ArchiveRecipient{a0.self.Cert.Archive}, messagePayload{at: l.clock.Now(), kind: "text", body: "x"}.marshal())
		if err != nil {
			t.Fatal(err)
		}
		env, _ := sealEnvelope(a1.self.Key, a1.self.Cert, kindMessage, id, 1, MessageID{}, 5, sealed)
		mustRefuse(t, b0, env, "not sealed to this device")
	})
	t.Run("garbage", func(t *testing.T) {
		for _, b := range [][]byte{nil, []byte("kith-conv"), good[:len(good)-1], append(append([]byte(nil), good...), 0)} {
			mustRefuse(t, b0, b, "")
		}
	})
	// After all that, the honest exchange still works.
	if _, err := b0.book.Post(id, "text", "still here"); err != nil {
		t.Fatal(err)
	}
	n.settle()
	if v := checkConverged(t, &lab{t: t, devs: []*device{a0, a1, b0}}, id); len(v.Messages) != 2 {
		t.Fatalf("%d messages after the refusals, want 2", len(v.Messages))
	}
}

// TestForgedAckDrainsNothing: an ack signed by another device than the one
// an item waits for leaves the item in the outbox.
func TestForgedAckDrainsNothing(t *testing.T) {
	l := newLab(t)
	alice, bob, eve := l.addUser("alice", 1), l.addUser("bob", 1), l.addUser("eve", 1)
	id := l.create(alice, Chat, "", "acks", bob)
	a0, b0, e0 := alice.devs[0], bob.devs[0], eve.devs[0]
	want := len(a0.book.Pending(b0.self.Cert.Device, 100))
	forged, _ := sealEnvelope(e0.self.Key, e0.self.Cert, kindAck, id, 0, MessageID{}, 0, ackPayload(a0.self.Cert.Device, []MessageID{MessageID(id)}))
	if _, err := a0.book.Receive(forged); err != nil {
		t.Fatal(err)
	}
	if got := len(a0.book.Pending(b0.self.Cert.Device, 100)); got != want || want == 0 {
		t.Fatalf("%d pending after eve's ack, want %d", got, want)
	}
	ack, err := b0.book.Receive(lastEnvelope(t, a0, b0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a0.book.Receive(ack); err != nil {
		t.Fatal(err)
	}
	if got := len(a0.book.Pending(b0.self.Cert.Device, 100)); got != 0 {
		t.Fatalf("%d pending after bob's ack, want 0", got)
	}
}

// A peer's text going into an error or a log line loses its control,
// bidirectional and invisible format characters, and is bounded.
func TestSanitize(t *testing.T) {
	got := sanitize("ab\x1b[2J\u202ecd\u200bef\x85", 100)
	if got != "ab?[2J?cd?ef?" {
		t.Fatalf("sanitize = %q", got)
	}
	if got := sanitize(strings.Repeat("é", 100), 11); !strings.HasSuffix(got, "…") || len(got) > 11+len("…")+1 {
		t.Fatalf("sanitize cut = %q", got)
	}
}
