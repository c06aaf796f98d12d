package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/seed"
)

// The thread view prints what peers wrote without their control
// characters: a topic, a name, a kind or a body cannot move the cursor or
// recolour the terminal.
func TestPrintThreadSanitizes(t *testing.T) {
	self, bob := seed.UserPublic{1}, seed.UserPublic{2}
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	v := control.ConvView{
		ConversationID: strings.Repeat("ab", 32), Topic: "Dinner\x1b[2J?", Pattern: "invitation", Status: "decided",
		Rule: `tally("yes") >= 2`, Members: []seed.UserPublic{self, bob}, Creator: bob, CreatedAt: at,
		Names:    map[string]string{bob.ID(): "bo\u202eb\x07"},
		Self:     self,
		Choices:  []string{"yes", "no", "maybe"},
		Tally:    map[string]int{"yes": 2},
		Messages: []control.ConvMessage{{By: bob, Kind: "rsvp", Body: "yes\x1b]0;pwned\x07", At: at}, {By: self, Kind: "text", Body: "two\nlines", At: at}},
		Outcome:  &control.ConvOutcome{Result: "yes", Tally: map[string]int{"yes": 2}, EvaluatedAt: at, MessageSet: strings.Repeat("cd", 32), DecidedBy: bob},
	}
	var b bytes.Buffer
	printThread(&b, v, at.Add(time.Minute))
	out := b.String()
	for _, r := range out {
		if r != '\n' && (r < 0x20 || r == 0x7f || r == '\u202e') {
			t.Fatalf("a control character %U in:\n%s", r, out)
		}
	}
	for _, want := range []string{"Dinner[2J?", "bob", "you", "rsvp", "tally: yes 2, no 0, maybe 0 · 2 of 2 members voted", "outcome: yes (yes 2), decided by bob", "lines"} {
		if !strings.Contains(out, want) {
			t.Errorf("the thread lacks %q:\n%s", want, out)
		}
	}
}

// A rule that cannot be evaluated says why, sanitized, instead of "not met
// yet".
func TestPrintThreadRuleError(t *testing.T) {
	self := seed.UserPublic{1}
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	v := control.ConvView{
		ConversationID: strings.Repeat("ab", 32), Topic: "numbers", Pattern: "discussion", Status: "open",
		Rule: `int(messages[0].body) > 3`, Members: []seed.UserPublic{self}, Creator: self, CreatedAt: at, Self: self,
		RuleError: "strconv.Atoi: parsing \"x\x1b[2J\": invalid syntax",
	}
	var b bytes.Buffer
	printThread(&b, v, at)
	out := b.String()
	if strings.Contains(out, "not met yet") || !strings.Contains(out, "cannot be evaluated: strconv.Atoi") || strings.Contains(out, "\x1b") {
		t.Fatalf("the thread of a failing rule:\n%q", out)
	}
}
