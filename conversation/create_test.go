package conversation

import (
	"errors"
	"strings"
	"testing"

	"github.com/kith-project/kith/consensus"
	"github.com/kith-project/kith/roster"
	"github.com/kith-project/kith/seed"
)

func TestCreateBadInput(t *testing.T) {
	l := newLab(t)
	alice, bob := l.addUser("alice", 1), l.addUser("bob", 1)
	bk := alice.devs[0].book
	eve := l.addUser("eve", 1)
	others := []seed.UserPublic{bob.key.Public()}
	for name, nc := range map[string]NewConversation{
		"unknown pattern": {Topic: "x", Pattern: "poll", Members: others},
		"chat with rule":  {Topic: "x", Pattern: Chat, Rule: `tally("yes") > 1`, Members: others},
		"no one else":     {Topic: "x", Pattern: Chat},
		"control char":    {Topic: "x\x1b[2J", Pattern: Chat, Members: others},
		"long topic":      {Topic: strings.Repeat("x", MaxTopicBytes+1), Pattern: Chat, Members: others},
		"foreign roster":  {Topic: "x", Pattern: Chat, Members: others, Rosters: []roster.Signed{eve.roster(t)}},
	} {
		if _, err := bk.Create(nc); !IsBadInput(err) {
			t.Errorf("%s: %v, want bad input", name, err)
		}
	}
	_, err := bk.Create(NewConversation{Topic: "x", Pattern: Discussion, Rule: `tally("yes") >`, Members: others})
	var ce *consensus.Error
	if !IsBadInput(err) || !errors.As(err, &ce) || ce.Line != 1 {
		t.Fatalf("a rule that does not compile: %v, want bad input wrapping a *consensus.Error with its position", err)
	}
	if _, err := bk.Post(ID{1}, "text", "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("posting to an unknown conversation: %v", err)
	}
	if _, err := ParsePattern("debate"); err != nil {
		t.Fatal(err)
	}
	if Debate.VoteKind() != "vote" || Invitation.VoteKind() != "rsvp" || Announcement.VoteKind() != "" || Chat.HasRule() {
		t.Fatal("the patterns table")
	}
}
