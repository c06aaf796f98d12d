package consensus

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func vote(by, choice string) Message { return Message{By: by, Kind: KindVote, Body: choice, At: t0} }

func eval(t *testing.T, src string, tl *Tally, elapsed time.Duration) bool {
	t.Helper()
	r, err := Compile(src)
	if err != nil {
		t.Fatalf("Compile(%q): %v", src, err)
	}
	ok, err := r.Eval(tl, elapsed)
	if err != nil {
		t.Fatalf("Eval(%q): %v", src, err)
	}
	return ok
}

func TestHelpers(t *testing.T) {
	tl := NewTally([]string{"a", "b", "c", "d", "a"}) // a twice: four members
	tl.Add(vote("a", "yes"))
	tl.Add(vote("b", "yes"))
	tl.Add(vote("c", "no"))
	tl.Add(Message{By: "d", Kind: "text", Body: "yes", At: t0})    // not a vote
	tl.Add(Message{By: "zed", Kind: KindVote, Body: "no", At: t0}) // not a member
	for src, want := range map[string]bool{
		`n == 4`:                     true,
		`len(members) == 4`:          true,
		`members[0] == "a"`:          true,
		`voted() == 3`:               true,
		`tally("yes") == 2`:          true,
		`tally("no") == 1`:           true,
		`tally("maybe") == 0`:        true,
		`share("yes") == 2/3`:        true,
		`share("no") == 1/3`:         true,
		`quorum(0.75)`:               true,
		`quorum(0.76)`:               false,
		`majority("yes")`:            true,
		`majority("no")`:             false,
		`unanimous("yes")`:           false,
		`len(votes) == 3`:            true,
		`votes[2].choice == "no"`:    true,
		`votes[0].by == "a"`:         true,
		`len(messages) == 5`:         true,
		`messages[3].kind == "text"`: true,
		`messages[4].by == "zed"`:    true,
		`messages[0].at == votes[0].at && votes[0].at == 1796119200`: true,
		`elapsed == 90.5`: true,
	} {
		if got := eval(t, src, tl, 90500*time.Millisecond); got != want {
			t.Errorf("%s = %v, want %v", src, got, want)
		}
	}
	if tl.Voted() != 3 || tl.Count("yes") != 2 || tl.Len() != 5 || tl.Result() != "yes" {
		t.Errorf("Voted %d Count(yes) %d Len %d Result %q", tl.Voted(), tl.Count("yes"), tl.Len(), tl.Result())
	}
	if got, want := tl.Counts(), map[string]int{"yes": 2, "no": 1}; !maps.Equal(got, want) {
		t.Errorf("Counts = %v, want %v", got, want)
	}
	if got := tl.Members(); !reflect.DeepEqual(got, []string{"a", "b", "c", "d"}) {
		t.Errorf("Members = %v", got)
	}
}

func TestHelpersWithNobody(t *testing.T) {
	empty := NewTally(nil)
	none := NewTally([]string{"a", "b"})
	for _, tl := range []*Tally{empty, none} {
		for src, want := range map[string]bool{
			`voted() == 0`:      true,
			`share("yes") == 0`: true,
			`quorum(0)`:         len(tl.members) > 0,
			`majority("yes")`:   false,
			`unanimous("yes")`:  false,
		} {
			if got := eval(t, src, tl, 0); got != want {
				t.Errorf("%d members: %s = %v, want %v", len(tl.members), src, got, want)
			}
		}
		if tl.Result() != "" {
			t.Errorf("Result with nobody voting = %q", tl.Result())
		}
	}
	all := NewTally([]string{"a", "b"})
	all.Add(vote("a", "yes"))
	if eval(t, `unanimous("yes")`, all, 0) {
		t.Error("unanimous with one of two voting")
	}
	all.Add(vote("b", "yes"))
	if !eval(t, `unanimous("yes")`, all, 0) {
		t.Error("not unanimous with both voting yes")
	}
}

func TestLatestVoteCounts(t *testing.T) {
	tl := NewTally([]string{"a", "b"})
	tl.Add(vote("a", "yes"))
	tl.Add(Message{By: "a", Kind: KindRSVP, Body: "maybe", At: t0})
	tl.Add(vote("b", "no"))
	if tl.Voted() != 2 || tl.Count("yes") != 0 || tl.Count("maybe") != 1 || tl.Count("no") != 1 {
		t.Fatalf("counts %v voted %d", tl.Counts(), tl.Voted())
	}
	if tl.Result() != "maybe" { // tie of maybe and no: the smaller name
		t.Errorf("Result = %q, want maybe", tl.Result())
	}
	if _, ok := tl.Counts()["yes"]; ok {
		t.Error("Counts keeps a choice with no votes")
	}
}

func TestPresets(t *testing.T) {
	names := map[string]bool{}
	for _, p := range Presets() {
		names[p.Name] = true
		if p.About == "" {
			t.Errorf("preset %s has no About", p.Name)
		}
		r, err := Compile(p.Rule)
		if err != nil {
			t.Errorf("preset %s: %v", p.Name, err)
			continue
		}
		if src, ok := Preset(p.Name); !ok || src != p.Rule {
			t.Errorf("Preset(%q) = %q, %v", p.Name, src, ok)
		}
		if r.UsesElapsed() != (p.Name == "consent") {
			t.Errorf("preset %s: UsesElapsed = %v", p.Name, r.UsesElapsed())
		}
	}
	for _, n := range []string{"majority", "supermajority", "unanimity", "consent", "quorum", "everyone"} {
		if !names[n] {
			t.Errorf("no preset %s", n)
		}
	}
	if _, ok := Preset("nope"); ok {
		t.Error("Preset(nope) found")
	}
}

// TestPresetResults checks each preset's documented result on a few
// tallies, including that the result is the choice the rule decided on.
func TestPresetResults(t *testing.T) {
	type step struct {
		votes   []string // choice per member in order; "" for no vote
		elapsed time.Duration
		want    bool
		result  string
	}
	members := func(k int) []string {
		var m []string
		for i := range k {
			m = append(m, fmt.Sprintf("m%02d", i))
		}
		return m
	}
	for name, steps := range map[string][]step{
		"majority": {
			{[]string{"yes", "yes", "", "", ""}, 0, false, "yes"},
			{[]string{"yes", "yes", "yes", "", ""}, 0, true, "yes"},
			{[]string{"no", "no", "no", "yes", ""}, 0, true, "no"},
		},
		"supermajority": {
			{[]string{"yes", "yes", "yes", "no", "no", ""}, 0, false, "yes"},
			{[]string{"yes", "yes", "yes", "yes", "no", ""}, 0, true, "yes"},
			{[]string{"no", "no", "no", "no", "", ""}, 0, true, "no"},
		},
		"unanimity": {
			{[]string{"yes", "yes", ""}, 0, false, "yes"},
			{[]string{"no", "no", "no"}, 0, true, "no"},
		},
		"consent": {
			{[]string{"", "", ""}, 24*time.Hour - time.Second, false, ""},
			{[]string{"", "", ""}, 24 * time.Hour, true, ""},
			{[]string{"yes", "", ""}, 48 * time.Hour, true, "yes"},
			{[]string{"yes", "no", ""}, 48 * time.Hour, false, "no"},
		},
		"quorum": {
			{[]string{"yes", "", ""}, 0, false, "yes"},
			{[]string{"yes", "yes", ""}, 0, true, "yes"},
			{[]string{"yes", "no", ""}, 0, false, "no"},
		},
		"everyone": {
			{[]string{"yes", "maybe", ""}, 0, false, "maybe"},
			{[]string{"yes", "maybe", "yes"}, 0, true, "yes"},
		},
	} {
		src, _ := Preset(name)
		for i, s := range steps {
			m := members(len(s.votes))
			tl := NewTally(m)
			for j, c := range s.votes {
				if c != "" {
					tl.Add(vote(m[j], c))
				}
			}
			if got := eval(t, src, tl, s.elapsed); got != s.want {
				t.Errorf("%s step %d %v: %v, want %v", name, i, s.votes, got, s.want)
			}
			if tl.Result() != s.result {
				t.Errorf("%s step %d: result %q, want %q", name, i, tl.Result(), s.result)
			}
		}
	}
}

func TestRefusals(t *testing.T) {
	long := `n > 0` + strings.Repeat(" ", MaxSourceBytes)
	many := `n > 0` + strings.Repeat(` && n > 0`, MaxNodes/3)
	for _, c := range []struct {
		src        string
		line, col  int
		reasonPart string
	}{
		{`now() > 0`, 1, 1, "now is not allowed: it reads the clock"},
		{`"é€" != "" && now() > 0`, 1, 15, "now"}, // columns count characters, not bytes
		{`n > 0 && date("2026-01-01") != nil`, 1, 10, "date is not allowed"},
		{`timezone("UTC") != nil`, 1, 1, "timezone"},
		{`duration("1h") > 0`, 1, 1, "duration"},
		{`len(keys({"a": 1})) > 0`, 1, 5, "keys is not allowed: it depends on map iteration order"},
		{`len(values({"a": 1})) > 0`, 1, 5, "map iteration order"},
		{`len(toPairs({"a": 1})) > 0`, 1, 5, "map iteration order"},
		{"n > 0 &&\n  len(groupBy(votes, .choice)) > 0", 2, 7, "groupBy"},
		{`toJSON(votes) != ""`, 1, 1, "toJSON"},
		{`len(repeat("x", 100)) > 0`, 1, 5, "repeat"},
		{`reduce(votes, #acc + 1, 0) > 0`, 1, 1, "reduce"},
		{`len(sort(members)) > 0`, 1, 5, "sort"},
		{`bitnot(1) > 0`, 1, 1, "bitnot is not allowed"},
		{`votes[0].choice.String() == ""`, 1, 17, "method calls are not allowed"},
		{`$env.n > 0`, 1, 1, "$env"},
		{`let x = n; x > 0`, 1, 5, "let"},
		{`{"a": 1}.a == 1`, 1, 1, "map literals"},
		{`len(1..10) > 0`, 1, 6, "ranges"},
		{`count(votes, count(votes, true) > 0) > 0`, 1, 27, "nested 2 deep, more than the 1 allowed"},
		{`all(messages, len(map(messages, .body)) > 0)`, 1, 33, "nested 2 deep"},
		{many, 1, 401, "nodes"},
		{long, 1, 1, "bytes"},
		{`tally("yes") >=`, 1, 15, "unexpected token"},
		{`n +`, 1, 3, "unexpected token"},
		{"n > 0 &&\n\tfoo(1)", 2, 2, "unknown"},
		{`n`, 1, 1, "expected bool"},
		{`tally(1) > 0`, 1, 7, "cannot use int as argument"},
		{`votes[0].at.Unix() > 0`, 1, 13, "method calls are not allowed"},
	} {
		_, err := Compile(c.src)
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("Compile(%q) = %v, want an *Error", c.src, err)
			continue
		}
		if e.Line != c.line || e.Column != c.col || !strings.Contains(e.Reason, c.reasonPart) {
			t.Errorf("Compile(%q) = line %d col %d %q, want line %d col %d containing %q", c.src, e.Line, e.Column, e.Reason, c.line, c.col, c.reasonPart)
		}
		if want := fmt.Sprintf("line %d, column %d: ", e.Line, e.Column); !strings.HasPrefix(e.Error(), want) {
			t.Errorf("Error() = %q", e.Error())
		}
		if strings.Contains(e.Reason, "consensus.") || strings.Contains(e.Reason, "envVote") {
			t.Errorf("reason names Go types: %q", e.Reason)
		}
	}
}

func TestAccepted(t *testing.T) {
	for _, src := range []string{
		`quorum(2/3) && majority("yes")`,
		`elapsed >= 86400 && tally("no") == 0`,
		`tally("yes") >= 5`,
		`count(votes, .choice == "yes") >= 2 && any(messages, .kind == "position")`,
		`all(votes, .choice in ["yes", "no"])`,
		`any(members, # == "alice")`,
		`len(filter(messages, hasPrefix(lower(.body), "agree"))) > 1`,
		`max(tally("yes"), tally("no")) > n / 2`,
		`"alice" in members ? tally("yes") > 0 : false`,
		`messages[0].body matches "^go"`,
		strings.Repeat(" ", MaxSourceBytes-5) + `n > 0`,
	} {
		if _, err := Compile(src); err != nil {
			t.Errorf("Compile(%q): %v", src, err)
		}
	}
}

// TestEnvironmentHasNoMethods: expr makes the methods of environment
// values callable, so none of the types a rule reaches may have one.
func TestEnvironmentHasNoMethods(t *testing.T) {
	var walk func(reflect.Type, string)
	seen := map[reflect.Type]bool{}
	walk = func(ty reflect.Type, path string) {
		if seen[ty] {
			return
		}
		seen[ty] = true
		if ty.NumMethod() > 0 || (ty.Kind() != reflect.Pointer && reflect.PointerTo(ty).NumMethod() > 0) {
			t.Errorf("%s (%s) has methods", path, ty)
		}
		switch ty.Kind() {
		case reflect.Struct:
			for i := range ty.NumField() {
				walk(ty.Field(i).Type, path+"."+ty.Field(i).Name)
			}
		case reflect.Slice, reflect.Pointer:
			walk(ty.Elem(), path+"[]")
		case reflect.Func:
			for i := range ty.NumIn() {
				walk(ty.In(i), path+" arg")
			}
			for i := range ty.NumOut() {
				walk(ty.Out(i), path+" result")
			}
		}
	}
	walk(reflect.TypeOf(ruleEnv{}), "env")
	if !seen[reflect.TypeOf(envVote{})] || !seen[reflect.TypeOf(envMessage{})] {
		t.Fatal("walk missed the vote and message types")
	}
}

func TestMemoryBudget(t *testing.T) {
	r, err := Compile(`len(map(messages, .body)) > 0`)
	if err != nil {
		t.Fatal(err)
	}
	tl := NewTally([]string{"a"})
	for range MemoryBudget / 2 {
		tl.Add(Message{By: "a", Kind: "text", Body: "x", At: t0})
	}
	if ok, err := r.Eval(tl, 0); err != nil || !ok {
		t.Fatalf("half the budget: %v, %v", ok, err)
	}
	for range MemoryBudget / 2 {
		tl.Add(Message{By: "a", Kind: "text", Body: "x", At: t0})
	}
	if _, err := r.Eval(tl, 0); !errors.Is(err, ErrBudget) {
		t.Fatalf("the whole budget: %v, want ErrBudget", err)
	}
	// Arrays a rule builds add up within one Eval.
	r2, err := Compile(`len(map(messages, .body)) + len(map(messages, .kind)) > 0`)
	if err != nil {
		t.Fatal(err)
	}
	small := NewTally([]string{"a"})
	for range MemoryBudget * 3 / 5 {
		small.Add(Message{By: "a", Kind: "text", Body: "x", At: t0})
	}
	if _, err := r.Eval(small, 0); err != nil {
		t.Fatalf("one map within the budget: %v", err)
	}
	if _, err := r2.Eval(small, 0); !errors.Is(err, ErrBudget) {
		t.Fatalf("two maps: %v, want ErrBudget", err)
	}
	// The budget is per Eval: the VM reused from the pool starts afresh.
	ok, err := r.Eval(NewTally([]string{"a"}), 0)
	if err != nil || ok {
		t.Fatalf("after a refusal: %v, %v", ok, err)
	}
}

func TestRuntimeError(t *testing.T) {
	r, err := Compile(`votes[0].choice == "yes"`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Eval(NewTally([]string{"a"}), 0); err == nil || errors.Is(err, ErrBudget) {
		t.Fatalf("index out of range: %v", err)
	}
}

func TestUsesElapsed(t *testing.T) {
	for src, want := range map[string]bool{
		`elapsed > 1`:                            true,
		`n > 0 || count(votes, elapsed > 1) > 0`: true,
		`tally("yes") > 1`:                       false,
	} {
		r, err := Compile(src)
		if err != nil {
			t.Fatal(err)
		}
		if r.UsesElapsed() != want {
			t.Errorf("%s: UsesElapsed = %v", src, r.UsesElapsed())
		}
	}
}

// recount is the tally from scratch, the definition Add must agree with.
func recount(members []string, msgs []Message) (votes map[string]string, counts map[string]int) {
	isMember := map[string]bool{}
	for _, m := range members {
		isMember[m] = true
	}
	votes = map[string]string{}
	for _, m := range msgs {
		if (m.Kind == KindVote || m.Kind == KindRSVP) && isMember[m.By] {
			votes[m.By] = m.Body
		}
	}
	counts = map[string]int{}
	for _, c := range votes {
		counts[c]++
	}
	return votes, counts
}

// TestTallyMatchesRecount: after every Add of a random sequence, the
// incremental Tally and the rule environment equal a recount from scratch.
func TestTallyMatchesRecount(t *testing.T) {
	kinds := []string{KindVote, KindRSVP, "text", "position"}
	choices := []string{"yes", "no", "abstain", "maybe"}
	r, err := Compile(`voted() == len(votes) && len(messages) >= 0`)
	if err != nil {
		t.Fatal(err)
	}
	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, 12))
		members := make([]string, 1+rng.IntN(8))
		for i := range members {
			members[i] = fmt.Sprintf("u%d", rng.IntN(10)) // duplicates happen
		}
		tl := NewTally(members)
		var msgs []Message
		for i := range rng.IntN(60) {
			m := Message{
				By:   fmt.Sprintf("u%d", rng.IntN(12)), // some are not members
				Kind: kinds[rng.IntN(len(kinds))],
				Body: choices[rng.IntN(len(choices))],
				At:   t0.Add(time.Duration(i) * time.Second),
			}
			msgs = append(msgs, m)
			tl.Add(m)
			votes, counts := recount(members, msgs)
			if !maps.Equal(tl.Counts(), counts) || tl.Voted() != len(votes) || tl.Len() != len(msgs) {
				t.Fatalf("seed %d after %d: counts %v voted %d, recount %v voted %d", seed, i, tl.Counts(), tl.Voted(), counts, len(votes))
			}
			for c := range counts {
				if tl.Count(c) != counts[c] {
					t.Fatalf("seed %d: Count(%s)", seed, c)
				}
			}
			env := tl.env(0)
			if len(env.Votes) != len(votes) {
				t.Fatalf("seed %d: env has %d votes, recount %d", seed, len(env.Votes), len(votes))
			}
			for _, v := range env.Votes {
				if votes[v.By] != v.Choice {
					t.Fatalf("seed %d: env vote %s=%s, recount %s", seed, v.By, v.Choice, votes[v.By])
				}
			}
			if len(env.Messages) != len(msgs) || env.Messages[i].Body != m.Body {
				t.Fatalf("seed %d: env messages differ", seed)
			}
			if ok, err := r.Eval(tl, 0); err != nil || !ok {
				t.Fatalf("seed %d: %v %v", seed, ok, err)
			}
		}
		// Result: highest count, ties to the smallest name.
		_, counts := recount(members, msgs)
		want, most := "", 0
		for _, c := range []string{"abstain", "maybe", "no", "yes"} {
			if counts[c] > most {
				want, most = c, counts[c]
			}
		}
		if tl.Result() != want {
			t.Fatalf("seed %d: Result %q, want %q", seed, tl.Result(), want)
		}
	}
}

// TestConcurrentEval: one Rule over many Tallies at once (run with -race).
func TestConcurrentEval(t *testing.T) {
	r, err := Compile(`quorum(2/3) && majority("yes")`)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	for g := range 8 {
		go func() {
			tl := NewTally([]string{"a", "b", "c"})
			var err error
			for i := range 200 {
				tl.Add(vote([]string{"a", "b", "c"}[i%3], []string{"yes", "no"}[(g+i)%2]))
				if _, e := r.Eval(tl, 0); e != nil {
					err = e
				}
			}
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func TestParseState(t *testing.T) {
	good := `{"members":["a","b"],"started_at":"2026-12-01T10:00:00Z","now":"2026-12-01T11:00:00Z","messages":[{"by":"a","kind":"vote","body":"yes","at":"2026-12-01T10:01:00Z"}]}`
	s, err := ParseState([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if s.Elapsed() != time.Hour || len(s.Messages) != 1 || s.Messages[0].Body != "yes" {
		t.Fatalf("parsed %+v", s)
	}
	r, _ := Compile(`tally("yes") == 1 && elapsed == 3600`)
	if ok, err := r.EvalState(s); err != nil || !ok {
		t.Fatalf("EvalState: %v %v", ok, err)
	}
	for name, doc := range map[string]string{
		"not json":       `{`,
		"unknown key":    `{"members":["a"],"started_at":"2026-12-01T10:00:00Z","now":"2026-12-01T11:00:00Z","extra":1}`,
		"trailing":       good + `{}`,
		"no members":     `{"members":[],"started_at":"2026-12-01T10:00:00Z","now":"2026-12-01T11:00:00Z"}`,
		"empty member":   `{"members":[""],"started_at":"2026-12-01T10:00:00Z","now":"2026-12-01T11:00:00Z"}`,
		"no start":       `{"members":["a"],"now":"2026-12-01T11:00:00Z"}`,
		"no now":         `{"members":["a"],"started_at":"2026-12-01T10:00:00Z"}`,
		"now before":     `{"members":["a"],"started_at":"2026-12-01T10:00:00Z","now":"2026-12-01T09:00:00Z"}`,
		"bad time":       `{"members":["a"],"started_at":"yesterday","now":"2026-12-01T09:00:00Z"}`,
		"message no at":  `{"members":["a"],"started_at":"2026-12-01T10:00:00Z","now":"2026-12-01T11:00:00Z","messages":[{"by":"a","kind":"vote","body":"yes"}]}`,
		"message no by":  `{"members":["a"],"started_at":"2026-12-01T10:00:00Z","now":"2026-12-01T11:00:00Z","messages":[{"kind":"vote","body":"yes","at":"2026-12-01T10:01:00Z"}]}`,
		"members object": `{"members":{"a":1},"started_at":"2026-12-01T10:00:00Z","now":"2026-12-01T11:00:00Z"}`,
		"too big":        `{"members":["` + strings.Repeat("a", MaxStateBytes) + `"]}`,
	} {
		if _, err := ParseState([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
