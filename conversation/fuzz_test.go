package conversation

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/kith-project/kith/roster"
	"github.com/kith-project/kith/seed"
)

// FuzzEnvelope feeds arbitrary bytes to Inspect and to a member device's
// Receive, seeded with real envelopes of every kind: no panic, and every
// error is a refusal, a hold or nothing.
func FuzzEnvelope(f *testing.F) {
	l := newLab(f)
	alice, bob := l.addUser("alice", 1), l.addUser("bob", 1)
	a, b := alice.devs[0], bob.devs[0]
	id := l.create(alice, Discussion, `tally("yes") >= 2`, "fuzz", bob)
	if _, err := a.book.Post(id, "text", "hello"); err != nil {
		f.Fatal(err)
	}
	if _, err := a.book.Vote(id, "yes"); err != nil {
		f.Fatal(err)
	}
	for _, o := range a.book.Pending(b.self.Cert.Device, 100) {
		f.Add(o.Envelope)
		ack, err := b.book.Receive(o.Envelope)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(ack)
	}
	if _, err := b.book.Vote(id, "yes"); err != nil { // bob decides
		f.Fatal(err)
	}
	for _, o := range b.book.Pending(a.self.Cert.Device, 100) {
		f.Add(o.Envelope)
	}
	f.Add([]byte("kith-conv\x01\x02"))
	// Alice has every seed already, so that a seed's second delivery is
	// a duplicate and the state stays the same from one input to the
	// next (the fuzzer minimizes inputs whose coverage changes).
	for _, o := range b.book.Pending(a.self.Cert.Device, 100) {
		a.book.Receive(o.Envelope)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, ierr := Inspect(data)
		if ierr == nil && h.Kind == "" {
			t.Fatal("Inspect accepted an envelope without a kind")
		}
		if ierr != nil && !errors.Is(ierr, ErrRefused) {
			t.Fatalf("Inspect: %v, not a refusal", ierr)
		}
		_, err := a.book.Receive(data)
		if err != nil && !errors.Is(err, ErrRefused) && !errors.Is(err, ErrHeld) {
			t.Fatalf("Receive: %v, neither refused nor held", err)
		}
		if ierr != nil && err == nil {
			t.Fatalf("Receive took what Inspect refused: %v", ierr)
		}
	})
}

// FuzzPayload feeds arbitrary bytes to the decoders of what is inside a
// signature (the sealed payloads and the ack body), which FuzzEnvelope
// cannot reach without the keys: no panic, only refusals, and what is
// accepted encodes back to the same bytes.
func FuzzPayload(f *testing.F) {
	l := newLab(f)
	alice, bob := l.addUser("alice", 1), l.addUser("bob", 1)
	g := genesisPayload{created: l.clock.Now(), pattern: Discussion, rule: `tally("yes") >= 2`, topic: "fuzz",
		members: sortedUsers(alice, bob), rosters: nil}
	f.Add(byte(0), g.marshal())
	g.rosters = sortedRosters(f, alice, bob)
	f.Add(byte(0), g.marshal())
	f.Add(byte(1), messagePayload{at: l.clock.Now(), kind: "vote", body: "yes"}.marshal())
	ids := []MessageID{{1}, {2}}
	f.Add(byte(2), outcomePayload{evaluated: l.clock.Now(), result: "yes", tally: map[string]int{"yes": 2, "no": 1}, set: setHash(ids), ids: ids}.marshal())
	f.Add(byte(3), ackPayload(alice.devs[0].self.Cert.Device, ids))
	f.Fuzz(func(t *testing.T, which byte, data []byte) {
		var err error
		var again []byte
		switch which % 4 {
		case 0:
			var p genesisPayload
			if p, err = parseGenesis(data); err == nil {
				again = p.marshal()
			}
		case 1:
			var p messagePayload
			if p, err = parseMessage(data); err == nil {
				again = p.marshal()
			}
		case 2:
			var p outcomePayload
			if p, err = parseOutcome(data); err == nil {
				again = p.marshal()
			}
		case 3:
			to, ids, aerr := parseAck(data)
			if err = aerr; err == nil {
				again = ackPayload(to, ids)
			}
		}
		if err != nil && !errors.Is(err, ErrRefused) {
			t.Fatalf("%v, not a refusal", err)
		}
		if err == nil && !bytes.Equal(again, data) {
			t.Fatalf("kind %d: accepted bytes that do not encode back the same (not canonical)", which%4)
		}
	})
}

func sortedUsers(us ...*user) []seed.UserPublic {
	var out []seed.UserPublic
	for _, u := range us {
		out = append(out, u.key.Public())
	}
	slices.SortFunc(out, func(x, y seed.UserPublic) int { return bytes.Compare(x[:], y[:]) })
	return out
}

func sortedRosters(t testing.TB, us ...*user) []roster.Signed {
	var out []roster.Signed
	for _, u := range us {
		out = append(out, u.roster(t))
	}
	slices.SortFunc(out, func(x, y roster.Signed) int { return bytes.Compare(x.User[:], y.User[:]) })
	return out
}
