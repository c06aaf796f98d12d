package conversation

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kith-project/kith/consensus"
)

// The table of consensus/testdata/cases.json played as live conversations
// (issue 12: "rule eval matches the live conversation"). e2e's
// TestConvRuleEval plays the cases of at most three members that do not
// read the clock through the real binary; this test plays every case, on
// Books with a clock it sets, so that the cases of four and five members
// and those of elapsed (the consent preset, "an hour passed") are played
// too.

// liveCase is an entry of consensus/testdata/cases.json (consensus.Case,
// which lives in a test file).
type liveCase struct {
	Name    string `json:"name"`
	Pattern string `json:"pattern"`
	Rule    string `json:"rule"`
	Preset  string `json:"preset"`
	consensus.State
	Want   bool   `json:"want"`
	Result string `json:"result"`
}

func loadLiveCases(t *testing.T) []liveCase {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "consensus", "testdata", "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cs []liveCase
	if err := json.Unmarshal(b, &cs); err != nil {
		t.Fatal(err)
	}
	if len(cs) < 20 {
		t.Fatalf("%d cases, want at least 20", len(cs))
	}
	return cs
}

// set moves the clock to t (forwards or back).
func (c *clock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// ruleEval evaluates rule r over s as "kith rule eval" does
// (internal/cli/rule.go: the state's JSON read back with ParseState,
// EvalState, the tally's Result as "outcome"), returning the rule's value,
// the outcome and the tally.
func ruleEval(t *testing.T, r *consensus.Rule, s consensus.State) (bool, string, map[string]int) {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	st, err := consensus.ParseState(b)
	if err != nil {
		t.Fatal(err)
	}
	ok, err := r.EvalState(st)
	if err != nil {
		t.Fatal(err)
	}
	tl := st.Tally()
	return ok, tl.Result(), tl.Counts()
}

// deliverEverything hands every pending item of every device to its
// device, and the acks back, until nothing is pending. It does not move
// the clock: every device evaluates at the time the test set. Any error of
// Receive fails the test (in order delivery nothing is held or refused).
func deliverEverything(t *testing.T, l *lab) {
	t.Helper()
	for range 100 {
		moved := false
		for _, d := range l.devs {
			for _, to := range d.book.Recipients() {
				td := l.byDevice(to)
				if td == nil {
					t.Fatalf("%s has items for an unknown device", d.name)
				}
				for _, o := range d.book.Pending(to, 1000) {
					moved = true
					ack, err := td.book.Receive(o.Envelope)
					if err != nil {
						t.Fatalf("%s receiving from %s: %v", td.name, d.name, err)
					}
					if ack != nil {
						if _, err := d.book.Receive(ack); err != nil {
							t.Fatalf("%s receiving %s's ack: %v", d.name, td.name, err)
						}
					}
				}
			}
		}
		if !moved {
			return
		}
	}
	t.Fatal("still pending after 100 rounds")
}

// played is what a live conversation has accepted: the case's messages of
// members, in order.
type played struct {
	by         []*user
	kind, body []string
}

// TestCasesLive plays every case of the table as a live conversation: a
// user with one device (a Book on its own bbolt file) per member name, the
// first member creating it with the case's pattern and rule (a preset
// expanded) at started_at, each message posted by its author with the
// clock at its at and delivered to every member, then every Book ticked
// with the clock at now. After each message, and after the tick, every
// member's view must agree with "kith rule eval" over the same prefix of
// the state at that time: open with the prefix's tally while it is false;
// decided exactly when it first holds, by an outcome whose result is rule
// eval's "outcome", whose tally is its tally, evaluated at that time over
// exactly the messages so far; and every message after the decision is
// refused as decided.
//
// What differs between a live conversation and a state document, asserted
// here rather than skipped:
//   - a state's "by" is a name, a live message's the author's user ID; no
//     rule of the table reads .by, so the mapping does not change a value;
//   - a message by a non-member ("a non-member's vote is not counted":
//     mallory) cannot be posted live: her Book has no such conversation
//     (ErrNotFound), and an envelope she signs for it is refused by every
//     member ("not a member") and stores nothing, where the state's tally
//     ignores her; the live prefix is then the members' messages, and
//     rule eval's prefix has hers too, and the two must agree;
//   - a live conversation ends at the first prefix where the rule holds,
//     so a case whose rule holds earlier than at its end (the table's
//     want is about the whole state) is decided there, and its later
//     messages are refused ("latest vote counts: bob changes to no" is
//     decided yes after bob's first vote, his change refused);
//   - for a case decided by its last message or the final tick there is
//     no message left, so its last member's message is posted once more
//     to show the refusal.
func TestCasesLive(t *testing.T) {
	cases := loadLiveCases(t)
	names := map[string]bool{}
	for _, c := range cases {
		if names[c.Name] {
			t.Fatalf("two cases named %q", c.Name)
		}
		names[c.Name] = true
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			playCase(t, c)
		})
	}
}

func playCase(t *testing.T, c liveCase) {
	src := c.Rule
	if c.Preset != "" {
		var ok bool
		if src, ok = consensus.Preset(c.Preset); !ok {
			t.Fatalf("no preset %q", c.Preset)
		}
	}
	r, err := consensus.Compile(src)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParsePattern(c.Pattern)
	if err != nil {
		t.Fatal(err)
	}
	l := newLab(t)
	l.clock.set(c.StartedAt)
	users := map[string]*user{}
	var members []*user
	for _, name := range c.Members {
		u := l.addUser(name, 1)
		users[name] = u
		members = append(members, u)
	}
	for _, m := range c.Messages {
		if users[m.By] == nil {
			users[m.By] = l.addUser(m.By, 1) // an outsider, with a Book of her own
		}
	}
	isMember := func(u *user) bool { return slices.Contains(members, u) }
	id := l.create(members[0], p, src, c.Name, members[1:]...)
	deliverEverything(t, l)

	var live played
	decidedAt := "" // where the live conversation was decided
	refused := 0    // messages refused after the decision

	// check asserts every member's view against rule eval over s, the
	// state so far; it reports whether the conversation is decided.
	check := func(s consensus.State, where string) bool {
		t.Helper()
		holds, outcome, counts := ruleEval(t, r, s)
		var first *Outcome
		for _, u := range members {
			d := u.devs[0]
			v := l.show(d, id)
			if len(v.Messages) != len(live.kind) {
				t.Fatalf("%s: %s shows %d messages, %d were accepted", where, d.name, len(v.Messages), len(live.kind))
			}
			for i, m := range v.Messages {
				if m.By != live.by[i].key.Public() || m.Kind != live.kind[i] || m.Body != live.body[i] {
					t.Fatalf("%s: %s's message %d is %s %q by %s, posted %s %q by %s", where, d.name, i,
						m.Kind, m.Body, m.By.Short(), live.kind[i], live.body[i], live.by[i].name)
				}
			}
			if !maps.Equal(v.Tally, counts) {
				t.Fatalf("%s: %s's tally %v, rule eval's %v", where, d.name, v.Tally, counts)
			}
			if !holds {
				if v.Status != StatusOpen || v.Outcome != nil {
					t.Fatalf("%s: rule eval says false, %s's conversation is %s (outcome %+v)", where, d.name, v.Status, v.Outcome)
				}
				continue
			}
			o := v.Outcome
			if v.Status != StatusDecided || o == nil {
				t.Fatalf("%s: rule eval says true, %s's conversation is %s", where, d.name, v.Status)
			}
			if o.Result != outcome || !maps.Equal(o.Tally, counts) {
				t.Fatalf("%s: %s's outcome %q %v, rule eval's %q %v", where, d.name, o.Result, o.Tally, outcome, counts)
			}
			if !o.EvaluatedAt.Equal(s.Now) || len(o.Messages) != len(live.kind) {
				t.Fatalf("%s: %s's outcome evaluated at %s over %d messages, want %s and %d", where, d.name,
					o.EvaluatedAt.Format(time.RFC3339), len(o.Messages), s.Now.Format(time.RFC3339), len(live.kind))
			}
			if first == nil {
				first = o
			} else if o.ID != first.ID {
				t.Fatalf("%s: %s shows outcome %s, %s %s", where, d.name, o.ID, members[0].devs[0].name, first.ID)
			}
		}
		return holds
	}

	// refuseAfter posts m after the decision and asserts it is refused
	// and changes nothing.
	refuseAfter := func(k int, m consensus.Message) {
		t.Helper()
		d := users[m.By].devs[0]
		before := countStored(t, d)
		_, err := d.book.Post(id, m.Kind, m.Body)
		if !IsBadInput(err) || !strings.Contains(err.Error(), "decided") {
			t.Fatalf("message %d after the decision: Post = %v, want refused as decided", k, err)
		}
		if after := countStored(t, d); after != before {
			t.Fatalf("message %d after the decision stored %d envelopes", k, after-before)
		}
		refused++
	}

	decided := false
	for k, m := range c.Messages {
		l.clock.set(m.At)
		u := users[m.By]
		switch {
		case decided && isMember(u):
			refuseAfter(k, m)
			continue
		case !isMember(u):
			postOutsider(t, l, id, u, members, m)
		default:
			if _, err := u.devs[0].book.Post(id, m.Kind, m.Body); err != nil {
				t.Fatalf("message %d: %v", k, err)
			}
			live.by, live.kind, live.body = append(live.by, u), append(live.kind, m.Kind), append(live.body, m.Body)
		}
		if decided {
			continue // an outsider's envelope after the decision: refused above, as before it
		}
		deliverEverything(t, l)
		prefix := c.State
		prefix.Messages, prefix.Now = c.Messages[:k+1], m.At
		if decided = check(prefix, fmt.Sprintf("after message %d", k)); decided {
			decidedAt = fmt.Sprintf("message %d of %d", k, len(c.Messages))
		}
	}
	if !decided {
		l.clock.set(c.Now)
		for _, u := range members {
			u.devs[0].book.Tick()
		}
		deliverEverything(t, l)
		if decided = check(c.State, "at now, after Tick"); decided {
			decidedAt = "the tick at now"
		}
		if decided != c.Want {
			t.Fatalf("live conversation decided %v at the end, the table wants %v", decided, c.Want)
		}
	}
	if decided && refused == 0 {
		// Nothing was left to post: post the last member's message again.
		for k := len(c.Messages) - 1; k >= 0; k-- {
			if m := c.Messages[k]; isMember(users[m.By]) {
				refuseAfter(len(c.Messages), m)
				break
			}
		}
		if refused == 0 {
			t.Fatal("decided with no member's message to show the refusal")
		}
	}
	if decidedAt == "" {
		decidedAt = "not decided"
	}
	t.Logf("%d members, decided: %s, %d refused after; table: want %v result %q", len(members), decidedAt, refused, c.Want, c.Result)
}

// postOutsider plays a message by u, who is not a member: her own Book has
// no such conversation, and an envelope she signs for it is refused by
// every member and stores nothing.
func postOutsider(t *testing.T, l *lab, id ID, u *user, members []*user, m consensus.Message) {
	t.Helper()
	d := u.devs[0]
	if _, err := d.book.Post(id, m.Kind, m.Body); !errors.Is(err, ErrNotFound) {
		t.Fatalf("%s, not a member, posted: %v, want ErrNotFound", u.name, err)
	}
	// The membership check comes before the chain's: seq 1 with no prev
	// is refused for the author alone, whatever she sent before.
	lamport := uint64(1)
	if v := l.show(members[0].devs[0], id); len(v.Messages) > 0 {
		lamport = v.Messages[len(v.Messages)-1].Lamport + 1
	}
	env := l.craftMsg(d, id, 1, MessageID{}, lamport, m.Kind, m.Body)
	for _, mu := range members {
		mustRefuse(t, mu.devs[0], env, "not a member")
	}
}
