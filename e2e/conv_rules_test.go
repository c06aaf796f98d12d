package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kith-project/kith/consensus"
	"github.com/kith-project/kith/internal/kithtest"
)

// liveCase is an entry of consensus/testdata/cases.json.
type liveCase struct {
	Name    string `json:"name"`
	Pattern string `json:"pattern"`
	Rule    string `json:"rule"`
	Preset  string `json:"preset"`
	consensus.State
	Want   bool   `json:"want"`
	Result string `json:"result"`
}

// TestConvRuleEval: "kith rule eval" agrees with a live conversation over
// the cases of consensus/testdata. Each case of at most three members
// whose rule does not read the clock (elapsed, times) is played in a live
// conversation among alice, bob and carol, one message at a time; after
// each, "kith rule eval" of the case's state so far says whether the rule
// holds, and the live conversation must then be decided (with the same
// result as the tally of that state) or still open, and a message after
// the decision is refused.
func TestConvRuleEval(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("..", "consensus", "testdata", "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []liveCase
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	alice := convPerson(t, "alice", "127.0.0.12")
	bob := convPerson(t, "bob", "127.0.0.13")
	carol := convPerson(t, "carol", "127.0.0.14")
	pair(t, alice, bob)
	pair(t, alice, carol)
	people := []*person{alice, bob, carol}
	played := 0
	for _, c := range cases {
		src := c.Rule
		if c.Preset != "" {
			src, _ = consensus.Preset(c.Preset)
		}
		r, err := consensus.Compile(src)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		authors := true
		for _, m := range c.Messages {
			authors = authors && slices.Contains(c.Members, m.By)
		}
		if len(c.Members) > len(people) || r.UsesElapsed() || strings.Contains(src, ".at") || !authors || c.Pattern == "chat" {
			t.Logf("%s: not played live (%d members, reads the clock %v, non-member authors %v)", c.Name, len(c.Members), r.UsesElapsed(), !authors)
			continue
		}
		played++
		who := map[string]*person{}
		for i, m := range c.Members {
			who[m] = people[i]
		}
		with := people[1:len(c.Members)]
		members := people[:len(c.Members)]
		id := alice.convNew(t, c.Name, c.Pattern, src, with...)
		for _, p := range members[1:] {
			p.waitConv(t, id, c.Name+": has it", hasMessages(0))
		}
		decidedAt := -1
		for k, m := range c.Messages {
			p := who[m.By]
			if decidedAt >= 0 {
				res := p.Run("", "conv", "post", id, m.Body, "--kind", m.Kind)
				if res.Code != 2 || !strings.Contains(res.Stderr, "decided") {
					t.Fatalf("%s: message %d after the decision: %s", c.Name, k, res)
				}
				continue
			}
			p.convPost(t, id, m.Kind, m.Body)
			for _, q := range members {
				q.waitConv(t, id, fmt.Sprintf("%s: holds message %d", c.Name, k), hasMessages(k+1))
			}
			prefix := c.State
			prefix.Messages = c.Messages[:k+1]
			holds, result := ruleEval(t, alice.Device, src, prefix)
			if !holds {
				for _, q := range members {
					if v, err := q.convShow(t, id); err != nil || v.Outcome != nil {
						t.Fatalf("%s: after message %d rule eval says false, %s's conversation: %+v %v", c.Name, k, q.id.Name, v.Outcome, err)
					}
				}
				continue
			}
			decidedAt = k
			want := result
			if tr := prefix.Tally().Result(); tr != want {
				t.Fatalf("%s: rule eval's outcome %q, the tally's %q", c.Name, want, tr)
			}
			for _, q := range members {
				v := q.waitConv(t, id, fmt.Sprintf("%s: decided after message %d", c.Name, k), isDecided)
				if v.Outcome.Result != want {
					t.Fatalf("%s: %s's outcome %+v, the tally of the state says %q", c.Name, q.id.Name, v.Outcome, want)
				}
			}
		}
		// The rule held for the whole state: live, it held at some
		// prefix (the first one ended the conversation).
		if c.Want && decidedAt < 0 {
			t.Fatalf("%s: the case holds, the live conversation stayed open", c.Name)
		}
		t.Logf("%s: live and rule eval agree (decided after message %d of %d)", c.Name, decidedAt, len(c.Messages))
	}
	t.Logf("%d of %d cases played live", played, len(cases))
	if played < 10 {
		t.Fatalf("only %d cases could be played live", played)
	}
}

// ruleEval runs "kith rule eval SRC --state FILE" and returns its result
// and outcome.
func ruleEval(t *testing.T, d *kithtest.Device, src string, s consensus.State) (bool, string) {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	f := kithtest.WriteFile(t, "state.json", b)
	var out struct {
		Result  bool   `json:"result"`
		Outcome string `json:"outcome"`
	}
	d.JSON(&out, "", "rule", "eval", src, "--state", f)
	return out.Result, out.Outcome
}
