package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/internal/kithtest"
)

// Conversations over the real binary (issue 12's "Must show").

// convPerson is newPerson with extra environment (a lock passphrase) for
// every command of the device, the agent's too.
func convPerson(t testing.TB, name, host string, env ...string) *person {
	t.Helper()
	d := kithtest.NewDevice(t)
	d.Env = env
	var id identity
	d.JSON(&id, "", "init", "--name", name)
	p := &person{Device: d, id: id}
	p.agent = d.Start(kithtest.FreeAddr(t, host), "--heartbeat", "300ms")
	return p
}

// restart starts p's agent again on the address it had.
func (p *person) restart(t testing.TB) {
	t.Helper()
	p.agent = p.Start(p.agent.Addr, "--heartbeat", "300ms")
}

// convWait is how long a conversation's delivery may take in these tests:
// generous, for a loaded machine; the tests log what it took.
const convWait = 90 * time.Second

func (p *person) convNew(t testing.TB, topic, pattern, rule string, with ...*person) string {
	t.Helper()
	var ids []string
	for _, w := range with {
		ids = append(ids, w.id.UserID)
	}
	var res struct {
		ConversationID string `json:"conversation_id"`
	}
	args := []string{"conv", "new", "--topic", topic, "--pattern", pattern, "--with", strings.Join(ids, ",")}
	if rule != "" {
		args = append(args, "--rule", rule)
	}
	p.JSON(&res, "", args...)
	if len(res.ConversationID) != 64 {
		t.Fatalf("conv new printed %+v", res)
	}
	return res.ConversationID
}

func (p *person) convShow(t testing.TB, id string) (control.ConvView, error) {
	t.Helper()
	res := p.Run("", "--json", "conv", "show", id)
	if res.Code != 0 {
		return control.ConvView{}, fmt.Errorf("conv show: %s", res)
	}
	var v control.ConvView
	if err := jsonDecode(res.Stdout, &v); err != nil {
		return v, err
	}
	return v, nil
}

func (p *person) convPost(t testing.TB, id, kind, body string) {
	t.Helper()
	var res control.ConvMessageResult
	p.JSON(&res, "", "conv", "post", id, body, "--kind", kind)
	if len(res.MessageID) != 64 {
		t.Fatalf("conv post printed %+v", res)
	}
}

func (p *person) convVote(t testing.TB, id, choice string) {
	t.Helper()
	var res control.ConvMessageResult
	p.JSON(&res, "", "conv", "vote", id, choice)
}

// waitConv waits until p's view of conversation id satisfies ok.
func (p *person) waitConv(t testing.TB, id, what string, ok func(v control.ConvView) error) control.ConvView {
	t.Helper()
	var v control.ConvView
	start := time.Now()
	kithtest.Eventually(t, convWait, p.id.Name+": "+what, func() error {
		var err error
		if v, err = p.convShow(t, id); err != nil {
			return err
		}
		return ok(v)
	})
	t.Logf("%s: %s after %v", p.id.Name, what, time.Since(start).Round(10*time.Millisecond))
	return v
}

func hasMessages(n int) func(control.ConvView) error {
	return func(v control.ConvView) error {
		if len(v.Messages) < n {
			return fmt.Errorf("%d messages, want %d", len(v.Messages), n)
		}
		return nil
	}
}

func isDecided(v control.ConvView) error {
	if v.Outcome == nil || v.Status != "decided" {
		return fmt.Errorf("status %s, outcome %+v", v.Status, v.Outcome)
	}
	return nil
}

// TestConvDebate is the debate of issue 12: alice is a friend of bob and
// of carol, who are not friends. Alice starts a debate with the rule
// quorum(2/3) && majority("yes"); bob posts a position and carol an
// argument; carol goes offline while alice and bob vote yes; alice and
// bob see it decided "yes"; back online, carol shows the same outcome,
// message set and tallies, and her late vote is refused. Every home has a
// lock passphrase, and at the end no file in any of them holds the topic
// or a body.
func TestConvDebate(t *testing.T) {
	t.Parallel()
	lock := []string{"KITH_PASSPHRASE=correct horse battery staple"}
	alice := convPerson(t, "alice", "127.0.0.2", lock...)
	bob := convPerson(t, "bob", "127.0.0.3", lock...)
	carol := convPerson(t, "carol", "127.0.0.4", lock...)
	pair(t, alice, bob)
	pair(t, alice, carol)

	const topic = "Zebra-topic: should the garden get a greenhouse"
	bodies := []string{"Quokka-position: yes, for winter tomatoes", "Narwhal-argument: the shade hurts the roses"}
	id := alice.convNew(t, topic, "debate", `quorum(2/3) && majority("yes")`, bob, carol)
	for _, p := range []*person{bob, carol} {
		p.waitConv(t, id, "has the debate", hasMessages(0))
	}
	bob.convPost(t, id, "position", bodies[0])
	carol.convPost(t, id, "argument", bodies[1])
	for _, p := range []*person{alice, bob, carol} {
		p.waitConv(t, id, "has the position and the argument", hasMessages(2))
	}

	// Carol goes offline; alice and bob vote.
	if err := carol.agent.Stop(); err != nil {
		t.Fatalf("stopping carol's agent: %v", err)
	}
	alice.convVote(t, id, "yes")
	bob.convVote(t, id, "yes")
	va := alice.waitConv(t, id, "sees the debate decided", isDecided)
	vb := bob.waitConv(t, id, "sees the debate decided", isDecided)
	for _, v := range []control.ConvView{va, vb} {
		if v.Outcome.Result != "yes" || v.Outcome.Tally["yes"] != 2 {
			t.Fatalf("outcome %+v, want yes with 2 votes", v.Outcome)
		}
	}
	if va.Outcome.MessageSet != vb.Outcome.MessageSet {
		t.Fatalf("alice and bob decided on different message sets: %+v and %+v", va.Outcome, vb.Outcome)
	}
	// Both may have decided at once: of two outcomes, the one with the
	// lowest (Lamport, ID) wins everywhere.
	waitOneOutcome(t, id, alice, bob)

	// Carol comes back: bob's messages reach her through alice.
	carol.restart(t)
	vc := carol.waitConv(t, id, "sees the debate decided", isDecided)
	if vc.Outcome.Result != va.Outcome.Result || vc.Outcome.MessageSet != va.Outcome.MessageSet ||
		!maps2equal(vc.Outcome.Tally, va.Outcome.Tally) {
		t.Fatalf("carol's outcome %+v, alice's %+v", vc.Outcome, va.Outcome)
	}
	// Carol may have decided too, on the same message set, before bob's
	// outcome reached her.
	waitOneOutcome(t, id, alice, bob, carol)
	if !maps2equal(vc.Tally, va.Tally) {
		t.Fatalf("carol's tally %v, alice's %v", vc.Tally, va.Tally)
	}
	// Her vote now is refused: exit 2, the conversation is decided (a
	// request that cannot be taken, as a refused kind is).
	res := carol.Run("", "conv", "vote", id[:12], "no")
	if res.Code != 2 || !strings.Contains(res.Stderr, "decided") {
		t.Fatalf("carol's late vote: %s", res)
	}
	// The text view reads like a thread.
	txt := carol.Run("", "conv", "show", id[:10])
	// Carol knows alice by name; bob, who is not her friend, by his ID.
	for _, want := range []string{topic, "position", bodies[0], "argument", "alice", bob.id.UserID[:12], "outcome: yes", "tally: yes 2"} {
		if !strings.Contains(txt.Stdout, want) {
			t.Fatalf("conv show lacks %q:\n%s", want, txt.Stdout)
		}
	}

	// At rest: no file in any home holds the topic or a body.
	for _, p := range []*person{alice, bob, carol} {
		p.agent.Stop()
		for _, s := range append([]string{"Zebra-topic", "greenhouse"}, "Quokka-position", "Narwhal-argument") {
			if f := findInHome(t, p.Home, s); f != "" {
				t.Errorf("%s's home: %s holds %q", p.id.Name, f, s)
			}
		}
	}
}

// waitOneOutcome waits until every one of ps holds the same outcome of
// conversation id.
func waitOneOutcome(t testing.TB, id string, ps ...*person) {
	t.Helper()
	kithtest.Eventually(t, convWait, "one outcome everywhere", func() error {
		var ids []string
		for _, p := range ps {
			v, err := p.convShow(t, id)
			if err != nil {
				return err
			}
			if err := isDecided(v); err != nil {
				return err
			}
			ids = append(ids, v.Outcome.ID)
		}
		for _, o := range ids[1:] {
			if o != ids[0] {
				return fmt.Errorf("outcomes %v", ids)
			}
		}
		return nil
	})
}

func maps2equal(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestConvOwnDevices: a member with two devices sees the conversation and
// its outcome on both.
func TestConvOwnDevices(t *testing.T) {
	t.Parallel()
	alice0 := convPerson(t, "alice-0", "127.0.0.5")
	bob := convPerson(t, "bob", "127.0.0.6")
	pair(t, bob, alice0)
	d1 := kithtest.NewDevice(t)
	var id1 identity
	d1.JSON(&id1, alice0.id.Mnemonic, "restore", "--device", "1", "--name", "alice-1")
	alice1 := &person{Device: d1, id: id1}
	alice1.agent = d1.Start(kithtest.FreeAddr(t, "127.0.0.7"), "--heartbeat", "300ms")
	_, a0PNG := alice0.show(t)
	_, a1PNG := alice1.show(t)
	var r1, r2 scanResult
	alice1.JSON(&r1, "", "pair", "scan", "--no-wait", a0PNG)
	alice0.JSON(&r2, "", "pair", "scan", a1PNG)
	if r2.Kind != "own" || r2.Status != "paired" {
		t.Fatalf("own-device pairing: %+v, %+v", r1, r2)
	}

	// Bob seals to the devices he knows of: he learns of alice-1 from
	// alice's signed roster.
	start := time.Now()
	kithtest.Eventually(t, convWait, "bob knows alice-1", func() error {
		if f, ok := findFriend(bob.friends(t), alice0.id.UserID); !ok || len(f.Devices) != 2 {
			return fmt.Errorf("bob's alice: %+v", f)
		}
		return nil
	})
	t.Logf("bob knows alice-1 after %v", time.Since(start).Round(10*time.Millisecond))
	id := bob.convNew(t, "Picnic on Sunday?", "discussion", `tally("yes") >= 2`, alice0)
	for _, p := range []*person{alice0, alice1} {
		p.waitConv(t, id, "has bob's discussion", hasMessages(0))
	}
	alice1.convVote(t, id, "yes")
	bob.convVote(t, id, "yes")
	for _, p := range []*person{alice0, alice1, bob} {
		v := p.waitConv(t, id, "sees it decided", isDecided)
		if v.Outcome.Result != "yes" {
			t.Fatalf("%s: outcome %+v", p.id.Name, v.Outcome)
		}
	}
	waitOneOutcome(t, id, alice0, alice1, bob)
}

// TestConvPatterns: an invitation closes at the second yes, RSVP changes
// counting once per member; in an announcement only the creator posts
// and others ack; conv new refuses bad rules with exit 2.
func TestConvPatterns(t *testing.T) {
	t.Parallel()
	alice := convPerson(t, "alice", "127.0.0.8")
	bob := convPerson(t, "bob", "127.0.0.9")
	pair(t, alice, bob)

	t.Run("invitation", func(t *testing.T) {
		id := alice.convNew(t, "Dinner on Friday", "invitation", `tally("yes") >= 2`, bob)
		bob.waitConv(t, id, "has the invitation", hasMessages(0))
		for _, c := range []string{"yes", "no", "yes"} {
			bob.convVote(t, id, c)
		}
		v := alice.waitConv(t, id, "has bob's three RSVPs", hasMessages(3))
		if v.Status != "open" || v.Tally["yes"] != 1 || v.Tally["no"] != 0 {
			t.Fatalf("after bob's yes, no, yes: status %s, tally %v", v.Status, v.Tally)
		}
		// Bob follows the invitation: the messages so far, then alice's
		// RSVP and the outcome arrive as JSON lines, and the command ends.
		follow := exec.Command(kithtest.Binary(t), "--home", bob.Home, "--json", "conv", "show", id[:8], "--follow")
		out, err := follow.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		follow.Stderr = &stderr
		if err := follow.Start(); err != nil {
			t.Fatal(err)
		}
		lines := bufio.NewScanner(out)
		var events []control.ConvEvent
		next := func() control.ConvEvent {
			t.Helper()
			if !lines.Scan() {
				t.Fatalf("conv show --follow ended after %d events: %v %s", len(events), lines.Err(), stderr.String())
			}
			var ev control.ConvEvent
			if err := json.Unmarshal(lines.Bytes(), &ev); err != nil {
				t.Fatalf("a line of conv show --follow: %v: %s", err, lines.Text())
			}
			events = append(events, ev)
			return ev
		}
		for range 3 {
			if ev := next(); ev.Type != control.ConvEventMessage || ev.Message.Kind != "rsvp" {
				t.Fatalf("follow: %+v", ev)
			}
		}
		alice.convVote(t, id, "yes")
		if ev := next(); ev.Type != control.ConvEventMessage || !strings.EqualFold(ev.Message.By.ID(), alice.id.UserID) {
			t.Fatalf("follow: %+v, want alice's rsvp", ev)
		}
		if ev := next(); ev.Type != control.ConvEventOutcome || ev.Outcome.Result != "yes" {
			t.Fatalf("follow: %+v, want the outcome", ev)
		}
		if err := follow.Wait(); err != nil {
			t.Fatalf("conv show --follow after the outcome: %v %s", err, stderr.String())
		}
		for _, p := range []*person{alice, bob} {
			v := p.waitConv(t, id, "sees the invitation closed", isDecided)
			if v.Outcome.Result != "yes" || v.Outcome.Tally["yes"] != 2 {
				t.Fatalf("%s: outcome %+v", p.id.Name, v.Outcome)
			}
		}
	})

	t.Run("announcement", func(t *testing.T) {
		id := alice.convNew(t, "The shed is locked", "announcement", "", bob)
		alice.convPost(t, id, "text", "the key is under the pot")
		bob.waitConv(t, id, "has the announcement", hasMessages(1))
		res := bob.Run("", "conv", "post", id, "no it is not", "--kind", "text")
		if res.Code != 2 || !strings.Contains(res.Stderr, "creator") {
			t.Fatalf("a non-creator's post: %s", res)
		}
		bob.convPost(t, id, "ack", "")
		v := alice.waitConv(t, id, "has bob's ack", hasMessages(2))
		if v.Messages[1].Kind != "ack" {
			t.Fatalf("messages %+v", v.Messages)
		}
	})

	t.Run("refused at creation", func(t *testing.T) {
		for _, tc := range []struct{ rule, want string }{
			{`tally("yes") >=`, "column"},
			{`now() > 0`, "now"},
			{`len(keys({"a": 1})) > 0`, "keys"},
			{strings.Repeat(`tally("yes") + `, 100) + `1 > 2`, "more than the"},
		} {
			res := alice.Run("", "conv", "new", "--topic", "x", "--pattern", "debate", "--with", bob.id.UserID, "--rule", tc.rule)
			if res.Code != 2 || !strings.Contains(res.Stderr, tc.want) || !strings.Contains(res.Stderr, "hint:") {
				t.Errorf("rule %.40q: %s", tc.rule, res)
			}
			t.Logf("rule %.40q: %s", tc.rule, strings.SplitN(res.Stderr, "\n", 2)[0])
		}
		res := alice.Run("", "conv", "new", "--topic", "x", "--pattern", "bazaar", "--with", bob.id.UserID, "--rule", "true")
		if res.Code != 2 || !strings.Contains(res.Stderr, "pattern") {
			t.Errorf("an unknown pattern: %s", res)
		}
		res = alice.Run("", "conv", "new", "--topic", "x", "--pattern", "chat", "--with", strings.Repeat("ab", 32))
		if res.Code != 2 || !strings.Contains(res.Stderr, "not your friend") {
			t.Errorf("a member who is not a friend: %s", res)
		}
	})
}

// findInHome returns the first file under home that holds s, or "".
func findInHome(t testing.TB, home, s string) string {
	t.Helper()
	found, err := grepTree(home, []byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func jsonDecode(s string, v any) error { return json.Unmarshal([]byte(s), v) }

// grepTree returns the first regular file under dir whose bytes hold s.
func grepTree(dir string, s []byte) (string, error) {
	found := ""
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || found != "" || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, s) {
			found = path
		}
		return nil
	})
	return found, err
}

// TestConvKill: no message is lost when a member's agent is killed with
// SIGKILL in the middle of a 200-message exchange: after its restart every
// member holds all 200, in the same order per author. Each seed picks who
// is killed and when; the seeds share one pair of agents, one conversation
// each.
func TestConvKill(t *testing.T) {
	t.Parallel()
	alice := convPerson(t, "alice", "127.0.0.10")
	bob := convPerson(t, "bob", "127.0.0.11")
	pair(t, alice, bob)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, seed := range []uint64{1, 2} {
		rng := rand.New(rand.NewPCG(seed, 12))
		id := alice.convNew(t, fmt.Sprintf("exchange %d", seed), "chat", "", bob)
		bob.waitConv(t, id, "has the chat", hasMessages(0))
		victim := []*person{alice, bob}[seed%2]
		killAt := 40 + rng.IntN(120)
		start := time.Now()
		for i := range 200 {
			if i == killAt {
				victim.agent.Kill()
				restart := time.Now()
				victim.restart(t)
				t.Logf("seed %d: %s's agent killed and started again in %v", seed, victim.id.Name, time.Since(restart).Round(10*time.Millisecond))
			}
			author := []*person{alice, bob}[i%2]
			body := fmt.Sprintf("%s-%03d", author.id.Name, i/2)
			if _, err := author.agent.Client().ConvPost(ctx, control.ConvPostRequest{ConversationID: id, Kind: "text", Body: body}); err != nil {
				t.Fatalf("seed %d: posting %s: %v", seed, body, err)
			}
		}
		for _, p := range []*person{alice, bob} {
			v := p.waitConv(t, id, fmt.Sprintf("seed %d: holds all 200 (%s killed at %d)", seed, victim.id.Name, killAt), hasMessages(200))
			last := map[string]int{}
			for _, m := range v.Messages {
				name, n, ok := strings.Cut(m.Body, "-")
				k, err := strconv.Atoi(n)
				if !ok || err != nil {
					t.Fatalf("a body %q", m.Body)
				}
				if prev, seen := last[name]; seen && k != prev+1 || !seen && k != 0 {
					t.Fatalf("seed %d: %s holds %s's messages out of order: %d after %d", seed, p.id.Name, name, k, prev)
				}
				last[name] = k
			}
			if len(v.Messages) != 200 || last["alice"] != 99 || last["bob"] != 99 {
				t.Fatalf("seed %d: %s holds %d messages, last %v", seed, p.id.Name, len(v.Messages), last)
			}
		}
		t.Logf("seed %d: 200 messages, %s killed at %d, all held by both after %v", seed, victim.id.Name, killAt, time.Since(start).Round(10*time.Millisecond))
	}
}
