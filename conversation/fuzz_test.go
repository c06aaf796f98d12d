package conversation

import (
	"errors"
	"testing"
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
