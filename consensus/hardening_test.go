package consensus

import (
	"errors"
	"strings"
	"testing"
)

// TestNoFuncValues: a rule that reads a helper as a value (not calling it)
// would format or compare a code address, which differs between builds and
// runs, so devices would disagree (review finding 2).
func TestNoFuncValues(t *testing.T) {
	for _, src := range []string{
		`string(tally) < "0x5600"`,
		`string(voted) != ""`,
		`len(string(tally)) > 0 && string(tally) < string(share)`,
		`indexOf(string(quorum), "0xc") >= 0`,
		`string([tally, share]) != ""`,
		`tally == tally`,
		`[majority][0]("yes")`,
		`string(votes) != ""`,
		`string(messages[0]) != ""`,
		`string(members) != ""`,
	} {
		_, err := Compile(src)
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("Compile(%q) = %v, want an *Error", src, err)
		}
	}
	for _, src := range []string{
		`string(n) == "2"`,
		`string(tally("yes")) == "0"`,
		`string(votes[0].at) != "" || true`,
		`string(majority("yes")) == "false"`,
		`string(messages[0].body) != ""`,
	} {
		if _, err := Compile(src); err != nil {
			t.Errorf("Compile(%q): %v", src, err)
		}
	}
}

// TestLinearCost: what costs more than linear in the messages is refused
// (review finding 4): a regexp that is not a constant (each evaluation
// compiles one per message), string() of a list (every body at once,
// uncounted by the memory budget), and reading messages or votes inside a
// predicate over them.
func TestLinearCost(t *testing.T) {
	for _, src := range []string{
		`count(messages, len(string(messages)) > 0) == 7`,
		`count(messages, #.body matches #.body) == 7`,
		`any(messages, #.body contains string(messages[:50]))`,
		`len(string(messages)) > 0`,
		`count(messages, # in messages) == 7`,
		`count(votes, len(votes) > 1) > 0`,
		`any(members, len(messages) > 0)`,
		`messages[0].body matches messages[1].body`,
		`messages[0].body matches ("a" + "b")`,
	} {
		_, err := Compile(src)
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("Compile(%q) = %v, want an *Error", src, err)
		}
	}
	for _, src := range []string{
		`messages[0].body matches "^go"`,
		`count(messages, #.body matches "^agree") > 1`,
		`count(votes, #.by in members) > 1`,
		`count(messages, hasPrefix(#.body, members[0])) > 0`,
		`count(messages, #.body contains "x") > len(messages) / 2`,
	} {
		if _, err := Compile(src); err != nil {
			t.Errorf("Compile(%q): %v", src, err)
		}
	}
	if _, err := Compile(`count(messages, # in messages) > 0`); err != nil && !strings.Contains(err.Error(), "inside a predicate") {
		t.Errorf("reason %q does not say why", err)
	}
}
