package web

import (
	"strings"
	"testing"
	"time"

	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/seed"
)

func user(b byte) seed.UserPublic {
	var u seed.UserPublic
	for i := range u {
		u[i] = b
	}
	return u
}

// debate is a debate of three members with the given votes, started an
// hour before now.
func debate(rule string, now time.Time, votes ...string) control.ConvView {
	v := control.ConvView{
		Pattern: "debate", Rule: rule, Status: "open",
		Members:   []seed.UserPublic{user(1), user(2), user(3)},
		CreatedAt: now.Add(-time.Hour),
		Choices:   []string{"yes", "no", "abstain"},
	}
	for i, c := range votes {
		v.Messages = append(v.Messages, control.ConvMessage{By: user(byte(i + 1)), Kind: "vote", Body: c, At: now.Add(-time.Minute)})
	}
	return v
}

func reach(p *progress) map[string]int {
	m := map[string]int{}
	for _, c := range p.Choices {
		m[c.Choice] = c.More
	}
	return m
}

func TestProgress(t *testing.T) {
	now := time.Now()
	const quorumYes = `quorum(2/3) && majority("yes")`
	for _, tc := range []struct {
		name  string
		v     control.ConvView
		holds bool
		want  map[string]int
	}{
		{"no votes", debate(quorumYes, now), false, map[string]int{"yes": 2, "no": -1, "abstain": -1}},
		{"one yes", debate(quorumYes, now, "yes"), false, map[string]int{"yes": 1, "no": -1, "abstain": -1}},
		// yes and no: a third yes makes 2 of 3; changing the no vote to yes too.
		{"yes and no", debate(quorumYes, now, "yes", "no"), false, map[string]int{"yes": 1, "no": -1, "abstain": -1}},
		{"holds", debate(quorumYes, now, "yes", "yes"), true, map[string]int{"yes": 0, "no": 0, "abstain": 0}},
		{"unanimity", debate(`unanimous("yes") || unanimous("no")`, now, "no"), false, map[string]int{"yes": 3, "no": 2, "abstain": -1}},
		// consent needs a day: no votes reach it an hour in.
		{"consent", debate(`elapsed >= 86400 && tally("no") == 0`, now), false, map[string]int{"yes": -1, "no": -1, "abstain": -1}},
	} {
		p := progressOf(tc.v, now)
		if p == nil {
			t.Fatalf("%s: no progress", tc.name)
		}
		if p.Holds != tc.holds {
			t.Errorf("%s: holds %v, want %v", tc.name, p.Holds, tc.holds)
		}
		got := reach(p)
		for c, n := range tc.want {
			if got[c] != n {
				t.Errorf("%s: %s needs %d more, want %d (%+v)", tc.name, c, got[c], n, p)
			}
		}
	}
	if p := progressOf(debate(`elapsed >= 86400 && tally("no") == 0`, now), now); !p.Elapsed || !strings.Contains(p.Note, "time") {
		t.Errorf("a rule reading elapsed: %+v", p)
	}
	v := debate(quorumYes, now, "yes", "yes")
	v.Outcome = &control.ConvOutcome{Result: "yes"}
	if p := progressOf(v, now); p != nil {
		t.Errorf("a decided conversation has progress %+v", p)
	}
	v = debate("", now)
	v.Pattern, v.Choices = "chat", nil
	if p := progressOf(v, now); p != nil {
		t.Errorf("a chat has progress %+v", p)
	}
}

func TestCheckRule(t *testing.T) {
	if rc := checkRule(`quorum(2/3) && majority("yes")`); !rc.OK || rc.Error != "" {
		t.Fatalf("a good rule: %+v", rc)
	}
	rc := checkRule("voted() >= 2 &&\n  tally(\"yes\") >")
	if rc.OK || rc.Line != 2 || rc.Column < 1 || !strings.Contains(rc.Error, "line 2") {
		t.Fatalf("a broken rule: %+v, want an error on line 2 with a column", rc)
	}
	if rc := checkRule(`now() > 0`); rc.OK || rc.Reason == "" {
		t.Fatalf("a rule reading the clock: %+v", rc)
	}
}

// FuzzProgress feeds progressOf rules and message bodies and kinds, which
// peers write: it must never panic, and what it says must be coherent.
func FuzzProgress(f *testing.F) {
	f.Add(`quorum(2/3) && majority("yes")`, "yes", "vote", "no", "vote")
	f.Add(`count(messages, .kind == "position") >= 1`, "hi", "position", "yes", "vote")
	f.Add(`tally("\x00") > 0`, "\x00", "vote", "\xff", "rsvp")
	f.Add(`elapsed > 1`, "", "", "", "")
	f.Fuzz(func(t *testing.T, rule, b1, k1, b2, k2 string) {
		now := time.Unix(1_800_000_000, 0)
		v := debate(rule, now)
		v.Messages = []control.ConvMessage{
			{By: user(1), Kind: k1, Body: b1, At: now.Add(-time.Minute)},
			{By: user(2), Kind: k2, Body: b2, At: now},
		}
		p := progressOf(v, now)
		if rule == "" {
			if p != nil {
				t.Fatalf("no rule, progress %+v", p)
			}
			return
		}
		if p == nil {
			t.Fatal("a rule, no progress")
		}
		for _, c := range p.Choices {
			if c.More < -1 || c.More > len(v.Members) || (p.Holds && c.More != 0) {
				t.Fatalf("incoherent progress %+v", p)
			}
		}
	})
}
