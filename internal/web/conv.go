package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/kith-project/kith/consensus"
	"github.com/kith-project/kith/conversation"
	"github.com/kith-project/kith/internal/control"
)

// convBackend is the backend's conversation part, or nil.
func (s *Server) convBackend() control.ConvBackend {
	cb, _ := s.b.(control.ConvBackend)
	return cb
}

// errNoConv answers the conversation routes of a backend without them.
var errNoConv = &control.Error{Kind: control.KindFailed, Message: "this agent keeps no conversations"}

// convRoutes registers the conversation API: the same requests as "kith
// conv", plus what the pages need to lay a thread out (convPage) and to
// check a rule as it is typed.
func (s *Server) convRoutes() {
	m := s.mux
	cb := s.convBackend()
	m.Handle("GET /api/conv", api(func(ctx context.Context, _ *none) ([]control.ConvSummary, error) {
		if cb == nil {
			return nil, errNoConv
		}
		return cb.ConvList(ctx)
	}))
	m.Handle("GET /api/conv/meta", api(func(context.Context, *none) (convMeta, error) { return meta(), nil }))
	m.HandleFunc("GET /api/conv/{id}", func(w http.ResponseWriter, r *http.Request) {
		if cb == nil {
			writeError(w, errNoConv)
			return
		}
		v, err := cb.ConvShow(r.Context(), r.PathValue("id"))
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, convPage{ConvView: v, Progress: progressOf(v, s.now())})
	})
	m.HandleFunc("GET /api/conv/{id}/open", s.serveOpen) // restore.go
	m.Handle("POST /api/conv/new", api(func(ctx context.Context, in *control.ConvNewRequest) (control.ConvNewResult, error) {
		if cb == nil {
			return control.ConvNewResult{}, errNoConv
		}
		res, err := cb.ConvNew(ctx, *in)
		if err == nil {
			s.Notify(TopicConv)
		}
		return res, err
	}))
	m.Handle("POST /api/conv/post", api(func(ctx context.Context, in *control.ConvPostRequest) (control.ConvMessageResult, error) {
		if cb == nil {
			return control.ConvMessageResult{}, errNoConv
		}
		return cb.ConvPost(ctx, *in)
	}))
	m.Handle("POST /api/conv/vote", api(func(ctx context.Context, in *control.ConvVoteRequest) (control.ConvMessageResult, error) {
		if cb == nil {
			return control.ConvMessageResult{}, errNoConv
		}
		return cb.ConvVote(ctx, *in)
	}))
	m.Handle("POST /api/rule/check", api(func(_ context.Context, in *ruleCheckRequest) (ruleCheck, error) {
		return checkRule(in.Rule), nil
	}))
}

// convMeta is what the new-conversation form offers: the patterns with
// their kinds and choices, and the rule presets.
type convMeta struct {
	Patterns []patternInfo          `json:"patterns"`
	Presets  []consensus.PresetInfo `json:"presets"`
}

type patternInfo struct {
	Name     string   `json:"name"`
	Kinds    []string `json:"kinds"`
	Choices  []string `json:"choices"`
	HasRule  bool     `json:"has_rule"`
	VoteKind string   `json:"vote_kind"`
}

func meta() convMeta {
	m := convMeta{Presets: consensus.Presets()}
	for _, p := range conversation.Patterns() {
		m.Patterns = append(m.Patterns, patternInfo{Name: string(p), Kinds: p.Kinds(), Choices: p.Choices(), HasRule: p.HasRule(), VoteKind: p.VoteKind()})
	}
	return m
}

// ruleCheckRequest is POST /api/rule/check.
type ruleCheckRequest struct {
	Rule string `json:"rule"`
}

// ruleCheck is "kith rule check" for the page: ok, or the error with its
// 1-based line and column.
type ruleCheck struct {
	OK     bool   `json:"ok"`
	Error  string `json:"error,omitempty"`
	Line   int    `json:"line,omitempty"`
	Column int    `json:"column,omitempty"`
	Reason string `json:"reason,omitempty"`
	// UsesElapsed says the rule reads the time since the start.
	UsesElapsed bool `json:"uses_elapsed,omitempty"`
}

func checkRule(src string) ruleCheck {
	r, err := consensus.Compile(src)
	if err == nil {
		return ruleCheck{OK: true, UsesElapsed: r.UsesElapsed()}
	}
	rc := ruleCheck{Error: err.Error()}
	var ce *consensus.Error
	if errors.As(err, &ce) {
		rc.Line, rc.Column, rc.Reason = ce.Line, ce.Column, ce.Reason
	}
	return rc
}

// convPage is GET /api/conv/{id}: the conversation as "kith conv show"
// gives it, and how far its rule is from true.
type convPage struct {
	control.ConvView
	Progress *progress `json:"progress"`
}

// progress says how far a conversation's rule is from true: whether it
// holds now and, for each choice, how many more votes for it would make it
// hold, if votes alone can.
type progress struct {
	Holds   bool           `json:"holds"`
	Choices []choiceReach  `json:"choices"`
	Elapsed bool           `json:"uses_elapsed"`
	Note    string         `json:"note,omitempty"`
	Voted   int            `json:"voted"`
	Members int            `json:"members"`
	Tally   map[string]int `json:"tally"`
}

// choiceReach is one choice: More is the fewest further votes for it that
// make the rule true now, or -1 when no number of them would.
type choiceReach struct {
	Choice string `json:"choice"`
	More   int    `json:"more"`
}

// progressOf evaluates the rule of an open conversation with votes added:
// for each choice, members who have not voted it yet (those who have not
// voted first) vote it one by one until the rule holds. It says nothing
// for a conversation without a rule, or a decided one (the outcome says
// it all).
func progressOf(v control.ConvView, now time.Time) *progress {
	if v.Rule == "" || v.Outcome != nil || len(v.Choices) == 0 {
		return nil
	}
	r, err := consensus.Compile(v.Rule)
	if err != nil {
		return &progress{Note: "the rule does not compile here: " + err.Error()}
	}
	members := make([]string, len(v.Members))
	for i, m := range v.Members {
		members[i] = m.String()
	}
	elapsed := now.Sub(v.CreatedAt)
	if elapsed < 0 {
		elapsed = 0
	}
	base := func() *consensus.Tally {
		t := consensus.NewTally(members)
		for _, m := range v.Messages {
			t.Add(consensus.Message{By: m.By.String(), Kind: m.Kind, Body: m.Body, At: m.At})
		}
		return t
	}
	t := base()
	p := &progress{Elapsed: r.UsesElapsed(), Voted: t.Voted(), Members: len(members), Tally: t.Counts()}
	p.Holds, err = r.Eval(t, elapsed)
	if err != nil {
		p.Note = "the rule failed here: " + err.Error()
		return p
	}
	kind := conversation.Pattern(v.Pattern).VoteKind()
	if kind == "" {
		kind = consensus.KindVote
	}
	latest := map[string]string{}
	for _, m := range v.Messages {
		if m.Kind == consensus.KindVote || m.Kind == consensus.KindRSVP {
			latest[m.By.String()] = m.Body
		}
	}
	for _, c := range v.Choices {
		var order []string
		for _, m := range members {
			if _, ok := latest[m]; !ok {
				order = append(order, m)
			}
		}
		for _, m := range members {
			if b, ok := latest[m]; ok && b != c {
				order = append(order, m)
			}
		}
		reach := choiceReach{Choice: c, More: -1}
		if !p.Holds {
			t := base()
			for i, m := range order {
				t.Add(consensus.Message{By: m, Kind: kind, Body: c, At: now})
				if ok, err := r.Eval(t, elapsed); err == nil && ok {
					reach.More = i + 1
					break
				}
			}
		} else {
			reach.More = 0
		}
		p.Choices = append(p.Choices, reach)
	}
	switch {
	case p.Holds:
		p.Note = "the rule holds: the outcome is on its way"
	case p.Elapsed:
		p.Note = fmt.Sprintf("the rule also reads the time since the start (%s so far): it is checked again as time passes", elapsed.Round(time.Second))
	}
	return p
}
