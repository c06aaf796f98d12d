package consensus

import (
	"encoding/json"
	"os"
	"testing"
)

// Case is one entry of testdata/cases.json: a conversation's state, a rule
// (or a preset's name) and what evaluating it must give. The agent's tests
// read the same file to show that a live conversation agrees.
type Case struct {
	Name    string `json:"name"`
	Pattern string `json:"pattern"`
	Rule    string `json:"rule,omitempty"`
	Preset  string `json:"preset,omitempty"`
	State
	Want   bool   `json:"want"`
	Result string `json:"result"`
}

func loadCases(t *testing.T) []Case {
	t.Helper()
	b, err := os.ReadFile("testdata/cases.json")
	if err != nil {
		t.Fatal(err)
	}
	var cs []Case
	if err := json.Unmarshal(b, &cs); err != nil {
		t.Fatal(err)
	}
	if len(cs) < 20 {
		t.Fatalf("%d cases, want at least 20", len(cs))
	}
	return cs
}

func (c Case) source(t *testing.T) string {
	if c.Preset == "" {
		return c.Rule
	}
	src, ok := Preset(c.Preset)
	if !ok {
		t.Fatalf("%s: no preset %q", c.Name, c.Preset)
	}
	return src
}

// TestCases evaluates every case through the same path as "kith rule
// eval": the state as a JSON document, ParseState, EvalState.
func TestCases(t *testing.T) {
	for _, c := range loadCases(t) {
		t.Run(c.Name, func(t *testing.T) {
			r, err := Compile(c.source(t))
			if err != nil {
				t.Fatal(err)
			}
			doc, err := json.Marshal(c.State)
			if err != nil {
				t.Fatal(err)
			}
			s, err := ParseState(doc)
			if err != nil {
				t.Fatal(err)
			}
			got, err := r.EvalState(s)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.Want {
				t.Errorf("rule %q = %v, want %v", r.Source(), got, c.Want)
			}
			if res := s.Tally().Result(); res != c.Result {
				t.Errorf("result %q, want %q", res, c.Result)
			}
		})
	}
}
