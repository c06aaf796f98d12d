package consensus

import (
	"errors"
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
