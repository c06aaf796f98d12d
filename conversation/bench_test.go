package conversation

import (
	"fmt"
	"testing"

	"github.com/kith-project/kith/seed"
)

// benchEnvelopes has alice post n messages to bob in conversations of
// pattern p with rule (a new conversation every 4000 messages) and returns
// bob's device and the envelopes in order, genesis included.
func benchEnvelopes(b *testing.B, n int, p Pattern, rule string) (*device, [][]byte) {
	l := newLab(b)
	alice, bob := l.addUser("alice", 1), l.addUser("bob", 1)
	a, d := alice.devs[0], bob.devs[0]
	var id ID
	for i := range n {
		if i%4000 == 0 {
			id = l.create(alice, p, rule, "bench", bob)
		}
		if _, err := a.book.Post(id, "text", fmt.Sprintf("message %d with a body of a typical length, about a line", i)); err != nil {
			b.Fatal(err)
		}
	}
	var envs [][]byte
	for _, o := range a.book.Pending(d.self.Cert.Device, n+n/4000+1) {
		envs = append(envs, o.Envelope)
	}
	return d, envs
}

// BenchmarkReceive: one envelope per Receive, one bbolt commit each.
func BenchmarkReceive(b *testing.B) {
	for _, c := range []struct {
		name    string
		pattern Pattern
		rule    string
	}{{"chat", Chat, ""}, {"rule", Discussion, `quorum(2/3) && majority("yes")`}} {
		b.Run(c.name, func(b *testing.B) {
			d, envs := benchEnvelopes(b, b.N, c.pattern, c.rule)
			b.ResetTimer()
			for _, env := range envs {
				if _, err := d.book.Receive(env); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReceiveBatch: 64 envelopes per ReceiveBatch, one commit.
func BenchmarkReceiveBatch(b *testing.B) {
	d, envs := benchEnvelopes(b, b.N, Chat, "")
	b.ResetTimer()
	for len(envs) > 0 {
		n := min(64, len(envs))
		_, errs := d.book.ReceiveBatch(envs[:n])
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
		envs = envs[n:]
	}
}

// BenchmarkSeal and BenchmarkOpen: the age cost of one message's payload
// sealed to 4 member devices.
func BenchmarkSeal(b *testing.B) {
	rs, _ := benchKeys(b, 4)
	plain := messagePayload{kind: "text", body: "a message with a body of a typical length, about a line"}.marshal()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := sealTo(rs, plain); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	rs, k := benchKeys(b, 4)
	plain := messagePayload{kind: "text", body: "a message with a body of a typical length, about a line"}.marshal()
	sealed, err := sealTo(rs, plain)
	if err != nil {
		b.Fatal(err)
	}
	id, err := k.AgeIdentity()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := openWith(id, sealed, maxPayload); err != nil {
			b.Fatal(err)
		}
	}
}

// benchKeys returns n archive recipients and the key of the last one.
func benchKeys(b *testing.B, n int) ([]seed.ArchiveRecipient, seed.ArchiveKey) {
	var rs []seed.ArchiveRecipient
	var k seed.ArchiveKey
	for i := range n {
		var err error
		_, k, err = seed.DeriveDevice(seedOf("bench"), uint32(i))
		if err != nil {
			b.Fatal(err)
		}
		rs = append(rs, k.Recipient())
	}
	return rs, k
}
