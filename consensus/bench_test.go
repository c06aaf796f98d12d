package consensus

import (
	"crypto/ed25519"
	"fmt"
	"strings"
	"testing"
	"time"
)

// handWritten are the presets as plain Go over a Tally, the floor a rule's
// cost is compared with.
var handWritten = map[string]func(t *Tally, elapsed time.Duration) bool{
	"majority": func(t *Tally, _ time.Duration) bool {
		n := len(t.members)
		return 2*t.Count("yes") > n || 2*t.Count("no") > n
	},
	"supermajority": func(t *Tally, _ time.Duration) bool {
		n := len(t.members)
		return 3*t.Count("yes") >= 2*n || 3*t.Count("no") >= 2*n
	},
	"unanimity": func(t *Tally, _ time.Duration) bool {
		return t.unanimous("yes") || t.unanimous("no")
	},
	"consent": func(t *Tally, elapsed time.Duration) bool {
		return elapsed >= 24*time.Hour && t.Count("no") == 0
	},
	"quorum": func(t *Tally, _ time.Duration) bool {
		return 3*t.Voted() >= 2*len(t.members) && 2*t.Count("yes") > t.Voted()
	},
	"everyone": func(t *Tally, _ time.Duration) bool {
		return t.Voted() == len(t.members)
	},
}

var sink bool

func benchMembers(n int) []string {
	m := make([]string, n)
	for i := range m {
		m[i] = fmt.Sprintf("%064x", i)
	}
	return m
}

// BenchmarkRule is one message's cost to a conversation: Tally.Add of a
// vote, then the rule's Eval, for each preset at 10 to 10,000 members,
// beside the same rule written in Go ("go"); BenchmarkReferenceEd25519Verify,
// the cost of checking the message's signature, runs beside it.
func BenchmarkRule(b *testing.B) {
	choices := []string{"yes", "no", "abstain"}
	for _, p := range presets {
		r, err := Compile(p.Rule)
		if err != nil {
			b.Fatal(err)
		}
		for _, n := range []int{10, 100, 1000, 10000} {
			members := benchMembers(n)
			run := func(b *testing.B, eval func(*Tally) bool) {
				t := NewTally(members)
				b.ReportAllocs()
				b.ResetTimer()
				for i := range b.N {
					t.Add(Message{By: members[i%n], Kind: KindVote, Body: choices[(i/n+i)%3], At: t0})
					sink = eval(t)
				}
			}
			b.Run(fmt.Sprintf("%s/members=%d/expr", p.Name, n), func(b *testing.B) {
				run(b, func(t *Tally) bool {
					ok, err := r.Eval(t, time.Hour)
					if err != nil {
						b.Fatal(err)
					}
					return ok
				})
			})
			fn := handWritten[p.Name]
			b.Run(fmt.Sprintf("%s/members=%d/go", p.Name, n), func(b *testing.B) {
				run(b, func(t *Tally) bool { return fn(t, time.Hour) })
			})
		}
	}
	// A rule reading the votes list is O(members) per message, for scale.
	scan, err := Compile(`count(votes, .choice == "yes") * 2 > n`)
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{10, 100, 1000, 10000} {
		members := benchMembers(n)
		b.Run(fmt.Sprintf("count-votes/members=%d/expr", n), func(b *testing.B) {
			t := NewTally(members)
			for i := range n {
				t.Add(Message{By: members[i], Kind: KindVote, Body: choices[i%3], At: t0})
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				t.Add(Message{By: members[i%n], Kind: KindVote, Body: choices[i%3], At: t0})
				ok, err := scan.Eval(t, 0)
				if err != nil {
					b.Fatal(err)
				}
				sink = ok
			}
		})
	}
}

// BenchmarkReferenceEd25519Verify is one ed25519.Verify of a 256-byte
// message: what checking a message's signature costs, the reference for
// BenchmarkRule in the same run.
func BenchmarkReferenceEd25519Verify(b *testing.B) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	msg := make([]byte, 256)
	sig := ed25519.Sign(priv, msg)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		sink = ed25519.Verify(pub, msg, sig)
	}
}

// BenchmarkCompile is compiling a preset: once per conversation.
func BenchmarkCompile(b *testing.B) {
	src, _ := Preset("quorum")
	for range b.N {
		if _, err := Compile(src); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWorstRule is about the most a rule within the bounds costs: as
// many predicates over the messages as 200 nodes allow (side by side, as
// they may not nest), with 1,000 and 10,000 messages.
func BenchmarkWorstRule(b *testing.B) {
	term := `count(messages, .body == "x")`
	src := term
	for {
		next := src + " + " + term
		if _, err := Compile(next + " > 0"); err != nil {
			break
		}
		src = next
	}
	r, err := Compile(src + " > 0")
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("%d predicates", strings.Count(src, "count("))
	for _, n := range []int{1000, 10000} {
		t := NewTally([]string{"a"})
		for range n {
			t.Add(Message{By: "a", Kind: "text", Body: "y", At: t0})
		}
		b.Run(fmt.Sprintf("messages=%d", n), func(b *testing.B) {
			for range b.N {
				ok, err := r.Eval(t, 0)
				if err != nil {
					b.Fatal(err)
				}
				sink = ok
			}
		})
	}
}
