package web

import (
	"strings"
	"testing"

	"github.com/kith-project/kith/internal/control"
)

// A rule that fails at run time says why, on the terminal and in the
// console, instead of looking as if it were only not met yet: here the
// last message's body must be a number, and it is not. The console also
// drops a topic's bidirectional override and invisible characters.
func TestRuleErrorShown(t *testing.T) {
	t.Parallel()
	chromiumPath(t)
	alice, bob := newPerson(t, "alice", "127.0.0.31"), newPerson(t, "bob", "127.0.0.32")
	pair(t, alice, bob)
	var res control.ConvNewResult
	alice.dev.JSON(&res, "", "conv", "new", "--topic", "A number, please\u202e\u200b (reversed?)", "--pattern", "discussion",
		"--with", bob.id.UserID, "--rule", `int(messages[len(messages)-1].body) > 3`)
	alice.dev.JSON(new(control.ConvMessageResult), "", "conv", "post", res.ConversationID, "--kind", "text", "no number")

	var v control.ConvView
	alice.dev.JSON(&v, "", "conv", "show", res.ConversationID)
	if v.RuleError == "" || v.Outcome != nil {
		t.Fatalf("kith conv show --json: rule_error %q, outcome %+v", v.RuleError, v.Outcome)
	}
	out := alice.dev.Run("", "conv", "show", res.ConversationID)
	if out.Code != 0 || !strings.Contains(out.Stdout, "cannot be evaluated") || strings.Contains(out.Stdout, "not met yet") {
		t.Fatalf("kith conv show: %s", out)
	}

	b := newBrowser(t, "")
	b.login(alice, "#/conv/"+res.ConversationID)
	b.waitText("#conv-rule-error", "cannot be evaluated")
	// The topic's right-to-left override and zero-width space are not
	// shown: they cannot reorder the page.
	if got := b.text("#conv-topic"); got != "A number, please (reversed?)" {
		t.Fatalf("the topic reads %q", got)
	}
	if got := b.text("#conv-rule-error"); !strings.Contains(got, v.RuleError) {
		t.Fatalf("the console says %q, the agent %q", got, v.RuleError)
	}
}
