package consensus

import (
	"errors"
	"os"
	"testing"
	"time"
)

// FuzzCompile: no rule text panics Compile, every refusal is an *Error
// with a position inside the text, and what compiles evaluates without
// panicking, within its budget.
func FuzzCompile(f *testing.F) {
	for _, p := range presets {
		f.Add(p.Rule)
	}
	for _, s := range []string{
		`now() > 0`, `len(keys({"a": 1})) > 0`, `count(votes, count(votes, true) > 0) > 0`,
		`votes[0].choice.String() == ""`, `all(messages, len(map(messages, .body)) > 0)`, `count(votes, .choice == "yes") + count(messages, .kind == "text") > 1`,
		"n > 0 &&\n\tfoo(1)", `tally("yes") >=`, `"\u00e9" + "x" == ""`, `1..3`, `$env.n`,
		`max(members) == "" || upper(members[0]) matches "["`, `let a = 1; a > 0`,
	} {
		f.Add(s)
	}
	tl := NewTally([]string{"a", "b", "c"})
	tl.Add(Message{By: "a", Kind: KindVote, Body: "yes", At: t0})
	tl.Add(Message{By: "b", Kind: "text", Body: "hello", At: t0})
	f.Fuzz(func(t *testing.T, src string) {
		start := time.Now()
		r, err := Compile(src)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("refusal %v is not an *Error", err)
			}
			if e.Line < 1 || e.Column < 1 || e.Reason == "" {
				t.Fatalf("bad position or reason: %+v", e)
			}
			return
		}
		_, _ = r.Eval(tl, time.Hour)
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("compile and eval took %v", d)
		}
	})
}

// FuzzParseState: no document panics ParseState, and what it accepts
// evaluates.
func FuzzParseState(f *testing.F) {
	if b, err := os.ReadFile("testdata/cases.json"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"members":["a","b"],"started_at":"2026-12-01T10:00:00Z","now":"2026-12-01T11:00:00Z","messages":[{"by":"a","kind":"vote","body":"yes","at":"2026-12-01T10:01:00Z"}]}`))
	f.Add([]byte(`{"members":["a"],"started_at":"2026-12-01T10:00:00Z","now":"2026-12-01T09:00:00Z"}`))
	f.Add([]byte(`{}`))
	r, err := Compile(`quorum(2/3) && majority("yes") || elapsed > 10`)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseState(b)
		if err != nil {
			return
		}
		if len(s.Members) == 0 || s.Now.Before(s.StartedAt) {
			t.Fatalf("accepted %+v", s)
		}
		if _, err := r.EvalState(s); err != nil {
			t.Fatalf("EvalState: %v", err)
		}
	})
}
