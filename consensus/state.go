package consensus

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// Bounds of a State.
const (
	MaxStateBytes    = 8 << 20 // bytes of a state document
	MaxStateMembers  = 10_000
	MaxStateMessages = 100_000
)

// State is what `kith rule eval --state FILE` reads: a conversation's
// members, start, evaluation time and messages, times in RFC 3339.
//
//	{"members": ["ab…", …], "started_at": "2026-12-01T10:00:00Z",
//	 "now": "2026-12-01T11:00:00Z",
//	 "messages": [{"by": "ab…", "kind": "vote", "body": "yes", "at": "…"}]}
type State struct {
	Members   []string  `json:"members"`
	StartedAt time.Time `json:"started_at"`
	Now       time.Time `json:"now"`
	Messages  []Message `json:"messages"`
}

// ParseState decodes a state document strictly: no unknown keys, no
// trailing data, started_at and now present with now not before started_at,
// every message with by, kind and at, and within the Max* bounds.
func ParseState(b []byte) (State, error) {
	var s State
	if len(b) > MaxStateBytes {
		return s, fmt.Errorf("consensus: state is %d bytes, more than the %d allowed", len(b), MaxStateBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return State{}, fmt.Errorf("consensus: state: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return State{}, errors.New("consensus: state: trailing data after the document")
	}
	switch {
	case len(s.Members) == 0:
		return State{}, errors.New("consensus: state: members is empty")
	case len(s.Members) > MaxStateMembers:
		return State{}, fmt.Errorf("consensus: state: %d members, more than the %d allowed", len(s.Members), MaxStateMembers)
	case len(s.Messages) > MaxStateMessages:
		return State{}, fmt.Errorf("consensus: state: %d messages, more than the %d allowed", len(s.Messages), MaxStateMessages)
	case s.StartedAt.IsZero():
		return State{}, errors.New("consensus: state: started_at is missing")
	case s.Now.IsZero():
		return State{}, errors.New("consensus: state: now is missing")
	case s.Now.Before(s.StartedAt):
		return State{}, errors.New("consensus: state: now is before started_at")
	}
	for i, m := range s.Members {
		if m == "" {
			return State{}, fmt.Errorf("consensus: state: member %d is empty", i)
		}
	}
	for i, m := range s.Messages {
		if m.By == "" || m.Kind == "" || m.At.IsZero() {
			return State{}, fmt.Errorf("consensus: state: message %d lacks by, kind or at", i)
		}
	}
	return s, nil
}

// Elapsed is the time from the start to now.
func (s State) Elapsed() time.Duration { return s.Now.Sub(s.StartedAt) }

// Tally is a Tally of the state's members with its messages added in order.
func (s State) Tally() *Tally {
	t := NewTally(s.Members)
	for _, m := range s.Messages {
		t.Add(m)
	}
	return t
}

// EvalState evaluates the rule over s exactly as a live conversation does:
// a Tally of s.Members with s.Messages added in order, at s.Now - s.StartedAt.
func (r *Rule) EvalState(s State) (bool, error) {
	return r.Eval(s.Tally(), s.Elapsed())
}
