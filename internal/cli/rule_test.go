package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kith-project/kith/consensus"
)

func TestRuleUsage(t *testing.T) {
	for _, c := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"rule", "check"}, ExitUsage, "give a rule, or --preset NAME"},
		{[]string{"rule", "check", "n > 0", "--preset", "majority"}, ExitUsage, "not both"},
		{[]string{"rule", "check", "n", ">", "0"}, ExitUsage, "quote the rule"},
		{[]string{"rule", "check", "--preset", "nope"}, ExitUsage, "the presets are majority, supermajority"},
		{[]string{"rule", "eval", "n > 0"}, ExitUsage, "--state FILE is required"},
		{[]string{"rule", "check", "--preset", "majority"}, ExitOK, ""},
		{[]string{"rule", "check", "now() > 0"}, ExitUsage, "kith: rule refused: line 1, column 1: builtin now"},
	} {
		code, _, stderr := run(t, "", nil, c.args...)
		if code != c.code || !strings.Contains(stderr, c.stderr) {
			t.Errorf("%v: exit %d, stderr %q; want %d containing %q", c.args, code, stderr, c.code, c.stderr)
		}
	}
}

func TestRulePresetsAndEval(t *testing.T) {
	code, stdout, stderr := run(t, "", nil, "--json", "rule", "presets")
	var ps []consensus.PresetInfo
	if code != 0 || json.Unmarshal([]byte(stdout), &ps) != nil || len(ps) != len(consensus.Presets()) {
		t.Fatalf("presets: exit %d %s %s", code, stdout, stderr)
	}
	state := `{"members":["a","b","c"],"started_at":"2026-12-01T10:00:00Z","now":"2026-12-02T10:00:00Z",
		"messages":[{"by":"a","kind":"vote","body":"yes","at":"2026-12-01T10:05:00Z"},{"by":"b","kind":"vote","body":"yes","at":"2026-12-01T10:06:00Z"}]}`
	path := filepath.Join(t.TempDir(), "state.json")
	if err := os.WriteFile(path, []byte(state), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, preset := range []string{"quorum", "consent"} {
		code, stdout, stderr = run(t, "", nil, "--json", "rule", "eval", "--preset", preset, "--state", path)
		var res evalResult
		if code != 0 || json.Unmarshal([]byte(stdout), &res) != nil {
			t.Fatalf("eval %s: exit %d %s %s", preset, code, stdout, stderr)
		}
		if !res.Result || res.Outcome != "yes" || res.Tally["yes"] != 2 || res.Voted != 2 || res.Elapsed != 86400 {
			t.Errorf("eval %s: %+v", preset, res)
		}
	}
	// From standard input, in text.
	code, stdout, _ = run(t, state, nil, "rule", "eval", `tally("yes") > 2`, "--state", "-")
	if code != 0 || !strings.HasPrefix(stdout, "false\ntally: yes 2 (2 voted, 86400 s elapsed)\nnot decided") {
		t.Errorf("eval from stdin: exit %d %q", code, stdout)
	}
}
