package consensus

import (
	"sort"
	"time"
)

// Message is an accepted message as a rule sees it. By is the author's user
// ID (lowercase hex).
type Message struct {
	By   string    `json:"by"`
	Kind string    `json:"kind"`
	Body string    `json:"body"`
	At   time.Time `json:"at"`
}

// Vote kinds: a message of one of these kinds by a member is a vote whose
// choice is its body.
const (
	KindVote = "vote"
	KindRSVP = "rsvp"
)

// Tally keeps what the rule helpers read, incrementally: Add is O(1). A
// Tally is not safe for concurrent Add; Eval of one Tally from several
// goroutines is safe while nothing calls Add.
type Tally struct {
	members []string       // unique, in the order given
	member  map[string]int // user ID -> index in members

	votes  []envVote      // one per member with a vote, updated in place
	slot   map[string]int // user ID -> index in votes
	counts map[string]int // choice -> members whose latest vote it is

	messages []envMessage // every message added, in order

	helpers ruleEnv // the helper funcs, bound once to this Tally
}

// NewTally starts an empty tally for members (user IDs; duplicates count once).
func NewTally(members []string) *Tally {
	t := &Tally{
		member: make(map[string]int, len(members)),
		slot:   make(map[string]int),
		counts: make(map[string]int),
	}
	for _, m := range members {
		if _, dup := t.member[m]; dup {
			continue
		}
		t.member[m] = len(t.members)
		t.members = append(t.members, m)
	}
	t.helpers = ruleEnv{
		Voted:     t.Voted,
		Tally:     t.Count,
		Share:     t.share,
		Quorum:    t.quorum,
		Majority:  t.majority,
		Unanimous: t.unanimous,
	}
	return t
}

// Add records an accepted message, in order. A message of kind "vote" or
// "rsvp" by a member is a vote: the member's latest vote counts, replacing
// an earlier one. Votes by non-members are kept in messages but not counted.
func (t *Tally) Add(m Message) {
	at := unixSeconds(m.At)
	t.messages = append(t.messages, envMessage{By: m.By, Kind: m.Kind, Body: m.Body, At: at})
	if m.Kind != KindVote && m.Kind != KindRSVP {
		return
	}
	if _, ok := t.member[m.By]; !ok {
		return
	}
	if i, ok := t.slot[m.By]; ok {
		old := t.votes[i].Choice
		if t.counts[old]--; t.counts[old] == 0 {
			delete(t.counts, old)
		}
		t.votes[i] = envVote{By: m.By, Choice: m.Body, At: at}
	} else {
		t.slot[m.By] = len(t.votes)
		t.votes = append(t.votes, envVote{By: m.By, Choice: m.Body, At: at})
	}
	t.counts[m.Body]++
}

// Members returns the members, unique, in the order given to NewTally.
func (t *Tally) Members() []string { return append([]string(nil), t.members...) }

// Voted is the number of members with a vote.
func (t *Tally) Voted() int { return len(t.votes) }

// Count is the number of members whose latest vote is choice.
func (t *Tally) Count(choice string) int { return t.counts[choice] }

// Counts maps each choice with at least one vote to the members whose latest
// vote it is. The map is a copy.
func (t *Tally) Counts() map[string]int {
	out := make(map[string]int, len(t.counts))
	for c, n := range t.counts {
		out[c] = n
	}
	return out
}

// Result is the choice with the highest count, ties broken by name (the
// lexically smallest wins); "" when nobody voted.
func (t *Tally) Result() string {
	choices := make([]string, 0, len(t.counts))
	for c := range t.counts {
		choices = append(choices, c)
	}
	sort.Strings(choices)
	best, most := "", 0
	for _, c := range choices {
		if n := t.counts[c]; n > most {
			best, most = c, n
		}
	}
	return best
}

// Len is the number of messages added.
func (t *Tally) Len() int { return len(t.messages) }

func (t *Tally) share(c string) float64 {
	if len(t.votes) == 0 {
		return 0
	}
	return float64(t.counts[c]) / float64(len(t.votes))
}

func (t *Tally) quorum(f float64) bool {
	if len(t.members) == 0 {
		return false
	}
	return float64(len(t.votes))/float64(len(t.members)) >= f
}

func (t *Tally) majority(c string) bool { return t.share(c) > 0.5 }

func (t *Tally) unanimous(c string) bool {
	return len(t.members) > 0 && t.counts[c] == len(t.members)
}

// env is the environment of one Eval: the Tally's own slices (not copies)
// and its bound helpers.
func (t *Tally) env(elapsed time.Duration) *ruleEnv {
	e := t.helpers
	e.Members = t.members
	e.N = len(t.members)
	e.Votes = t.votes
	e.Messages = t.messages
	e.Elapsed = elapsed.Seconds()
	return &e
}
