package conversation

import (
	"fmt"
	"maps"
	"slices"
	"testing"
)

// checkConverged asserts that every device of the lab shows conversation
// id alike: the same messages in the same order, status, tally and
// outcome. It returns the view.
func checkConverged(t *testing.T, l *lab, id ID) View {
	t.Helper()
	want := l.show(l.devs[0], id)
	for _, d := range l.devs[1:] {
		v := l.show(d, id)
		if !slices.Equal(msgIDs(v), msgIDs(want)) {
			t.Fatalf("%s shows %d messages, %s %d, or in another order", d.name, len(v.Messages), l.devs[0].name, len(want.Messages))
		}
		if v.Status != want.Status || !maps.Equal(v.Tally, want.Tally) {
			t.Fatalf("%s: status %s tally %v; %s: %s %v", d.name, v.Status, v.Tally, l.devs[0].name, want.Status, want.Tally)
		}
		switch {
		case (v.Outcome == nil) != (want.Outcome == nil):
			t.Fatalf("%s outcome %v, %s %v", d.name, v.Outcome, l.devs[0].name, want.Outcome)
		case v.Outcome != nil && (v.Outcome.ID != want.Outcome.ID || v.Outcome.MessageSet != want.Outcome.MessageSet ||
			v.Outcome.Result != want.Outcome.Result || !maps.Equal(v.Outcome.Tally, want.Outcome.Tally)):
			t.Fatalf("%s outcome %+v, %s %+v", d.name, *v.Outcome, l.devs[0].name, *want.Outcome)
		}
		if v.Topic != want.Topic || v.Rule != want.Rule || v.Creator != want.Creator {
			t.Fatalf("%s: topic, rule or creator differ", d.name)
		}
	}
	// Per author device, the messages are in chain order.
	last := map[string]uint64{}
	for _, m := range want.Messages {
		k := m.Device.ID()
		if m.Lamport <= last[k] {
			t.Fatalf("the messages of %s are out of their chain's order", m.Device.Short())
		}
		last[k] = m.Lamport
	}
	return want
}

// TestConvergence: four devices of three users post and vote while the
// network drops, duplicates and reorders; every device ends with the same
// messages, the same outcome, message set and tallies.
func TestConvergence(t *testing.T) {
	for s := uint64(1); s <= 4; s++ {
		t.Run(fmt.Sprint("seed", s), func(t *testing.T) {
			t.Parallel()
			l := newLab(t)
			alice, bob, carol := l.addUser("alice", 2), l.addUser("bob", 1), l.addUser("carol", 1)
			id := l.create(alice, Discussion, `unanimous("yes")`, "lunch on friday?", bob, carol)
			n := l.net(s, 0.3, 0.2)
			posts := 0
			for step := range 12 {
				d := l.devs[n.rng.IntN(len(l.devs))]
				if _, ok := d.book.convs[id]; ok {
					if _, err := d.book.Post(id, "text", fmt.Sprintf("%s says %d", d.name, step)); err == nil {
						posts++
					} else if !IsBadInput(err) {
						t.Fatal(err)
					}
				}
				n.round()
			}
			n.settle()
			// Everyone votes yes (bob first says no, then changes his mind).
			for _, v := range []struct {
				d      *device
				choice string
			}{{bob.devs[0], "no"}, {alice.devs[1], "yes"}, {carol.devs[0], "yes"}, {bob.devs[0], "yes"}} {
				if _, err := v.d.book.Vote(id, v.choice); err != nil {
					t.Fatal(err)
				}
				n.round()
			}
			n.settle()
			v := checkConverged(t, l, id)
			if v.Outcome == nil || v.Outcome.Result != "yes" || v.Outcome.Tally["yes"] != 3 || len(v.Outcome.Tally) != 1 {
				t.Fatalf("outcome %+v, want yes with 3 votes", v.Outcome)
			}
			if len(v.Messages) != posts+4 {
				t.Fatalf("%d messages, want %d posts and 4 votes", len(v.Messages), posts)
			}
			for _, d := range l.devs {
				if r := d.book.Recipients(); len(r) != 0 {
					t.Fatalf("%s still has pending items for %d devices", d.name, len(r))
				}
			}
		})
	}
}
