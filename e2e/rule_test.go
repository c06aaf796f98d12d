package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kith-project/kith/internal/kithtest"
)

type ruleCheck struct {
	OK     bool    `json:"ok"`
	Error  *string `json:"error"`
	Line   int     `json:"line"`
	Column int     `json:"column"`
}

// TestRuleCheck runs "kith rule check" on accepted and refused rules: no
// agent, no home folder, the document on stdout even when refused (exit 2),
// and the refusal's position.
func TestRuleCheck(t *testing.T) {
	t.Parallel()
	d := kithtest.NewDevice(t)
	for _, c := range []struct {
		name, rule   string
		ok           bool
		line, column int
		reason       string
	}{
		{"ok", `quorum(2/3) && majority("yes")`, true, 0, 0, ""},
		{"syntax", `tally("yes") >=`, false, 1, 15, "unexpected token"},
		{"syntax on line 2", "n > 0 &&\n  (tally(\"yes\") > ", false, 2, 18, "unexpected token"},
		{"clock", `now() > 0`, false, 1, 1, "now is not allowed: it reads the clock"},
		{"map order", `n > 0 && len(keys({"a": 1})) > 0`, false, 1, 14, "keys is not allowed: it depends on map iteration order"},
		{"oversized", `n > 0` + strings.Repeat(" ", 1100), false, 1, 1, "more than the 1024 allowed"},
	} {
		res := d.Run("", "--json", "rule", "check", c.rule)
		want := 0
		if !c.ok {
			want = 2
		}
		if res.Code != want {
			t.Errorf("%s: %s", c.name, res)
			continue
		}
		var got ruleCheck
		if err := json.Unmarshal([]byte(res.Stdout), &got); err != nil {
			t.Errorf("%s: stdout is not the document: %v\n%s", c.name, err, res)
			continue
		}
		switch {
		case got.OK != c.ok:
			t.Errorf("%s: ok = %v\n%s", c.name, got.OK, res)
		case c.ok && got.Error != nil:
			t.Errorf("%s: error %q on an accepted rule", c.name, *got.Error)
		case !c.ok && (got.Error == nil || !strings.Contains(*got.Error, c.reason) || got.Line != c.line || got.Column != c.column):
			t.Errorf("%s: want line %d column %d %q\n%s", c.name, c.line, c.column, c.reason, res)
		}
		// Text mode: one "kith: …" line and a hint on stderr, exit 2.
		text := d.Run("", "rule", "check", c.rule)
		if text.Code != want {
			t.Errorf("%s (text): %s", c.name, text)
		}
		if !c.ok {
			lines := strings.Split(strings.TrimSpace(text.Stderr), "\n")
			if len(lines) != 2 || !strings.HasPrefix(lines[0], "kith: rule refused: line ") || !strings.HasPrefix(lines[1], "kith: hint: ") {
				t.Errorf("%s (text): stderr is not an error and a hint:\n%s", c.name, text)
			}
		}
	}
	if _, err := os.Stat(d.Home); !os.IsNotExist(err) {
		t.Errorf("rule check touched the home folder: %v", err)
	}
}

// ruleCase is an entry of consensus/testdata/cases.json.
type ruleCase struct {
	Name     string            `json:"name"`
	Rule     string            `json:"rule"`
	Preset   string            `json:"preset"`
	Want     bool              `json:"want"`
	Result   string            `json:"result"`
	Members  json.RawMessage   `json:"members"`
	Started  json.RawMessage   `json:"started_at"`
	Now      json.RawMessage   `json:"now"`
	Messages []json.RawMessage `json:"messages"`
}

// TestRuleEval runs "kith rule eval --state FILE" over the table the
// consensus package tests, and refuses a malformed state with exit 2.
func TestRuleEval(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("..", "consensus", "testdata", "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []ruleCase
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) < 20 {
		t.Fatalf("%d cases", len(cases))
	}
	d := kithtest.NewDevice(t)
	dir := t.TempDir()
	for i, c := range cases {
		state, err := json.Marshal(map[string]any{"members": c.Members, "started_at": c.Started, "now": c.Now, "messages": c.Messages})
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "state.json")
		if err := os.WriteFile(path, state, 0o600); err != nil {
			t.Fatal(err)
		}
		args := []string{"rule", "eval", c.Rule, "--state", path}
		if c.Preset != "" {
			args = []string{"rule", "eval", "--preset", c.Preset, "--state", path}
		}
		var got struct {
			Result  bool   `json:"result"`
			Outcome string `json:"outcome"`
		}
		d.JSON(&got, "", args...)
		if got.Result != c.Want || got.Outcome != c.Result {
			t.Errorf("case %d %q: result %v outcome %q, want %v %q", i, c.Name, got.Result, got.Outcome, c.Want, c.Result)
		}
	}
	bad := filepath.Join(dir, "bad.json")
	for name, doc := range map[string]string{
		"not JSON":    `{"members": [`,
		"unknown key": `{"members":["a"],"started_at":"2026-12-01T10:00:00Z","now":"2026-12-01T11:00:00Z","votes":[]}`,
		"bad time":    `{"members":["a"],"started_at":"at ten","now":"2026-12-01T11:00:00Z"}`,
	} {
		if err := os.WriteFile(bad, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		res := d.Run("", "rule", "eval", `voted() > 0`, "--state", bad)
		if res.Code != 2 || !strings.HasPrefix(res.Stderr, "kith: reading the state ") || !strings.Contains(res.Stderr, "kith: hint: ") {
			t.Errorf("%s: %s", name, res)
		}
	}
	if res := d.Run("", "rule", "eval", `voted() > 0`, "--state", filepath.Join(dir, "missing.json")); res.Code != 2 {
		t.Errorf("missing state file: %s", res)
	}
	if res := d.Run("", "rule", "eval", `now() > 0`, "--state", bad); res.Code != 2 || !strings.Contains(res.Stderr, "rule refused") {
		t.Errorf("refused rule: %s", res)
	}
}
