package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/kith-project/kith/consensus"
	"github.com/kith-project/kith/conversation"
	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/roster"
	"github.com/kith-project/kith/seed"
)

// The local API of conversations ("kith conv", control.ConvBackend).

var _ control.ConvBackend = controlAPI{}

// Reasons of refused conversation requests (control.Error.Reason); the
// CLI adds a hint for each.
const (
	reasonRule      = "rule"
	reasonPattern   = "pattern"
	reasonKind      = "kind"
	reasonNotFriend = "not_friend"
	reasonDecided   = "decided"
	reasonAmbiguous = "ambiguous"
)

func badConv(reason, format string, args ...any) error {
	return &control.Error{Kind: control.KindBadInput, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

func (c controlAPI) ConvNew(_ context.Context, req control.ConvNewRequest) (control.ConvNewResult, error) {
	a := c.a
	pat, err := conversation.ParsePattern(req.Pattern)
	if err != nil {
		names := []string{}
		for _, p := range conversation.Patterns() {
			names = append(names, string(p))
		}
		return control.ConvNewResult{}, badConv(reasonPattern, "unknown pattern %q: one of %s", clipString(req.Pattern, 40), strings.Join(names, ", "))
	}
	rule := req.Rule
	if req.Preset != "" {
		if req.Rule != "" {
			return control.ConvNewResult{}, badConv(reasonRule, "a rule and a preset are exclusive")
		}
		r, ok := consensus.Preset(req.Preset)
		if !ok {
			var names []string
			for _, p := range consensus.Presets() {
				names = append(names, p.Name)
			}
			return control.ConvNewResult{}, badConv(reasonRule, "unknown preset %q: one of %s", clipString(req.Preset, 40), strings.Join(names, ", "))
		}
		rule = r
	}
	r := a.book.rosterNow()
	self := a.dev.Cert.User
	own, err := r.SignedOf(self, a.dev.Identity.Cert)
	if err != nil {
		return control.ConvNewResult{}, fmt.Errorf("signing this user's roster: %w", err)
	}
	nc := conversation.NewConversation{Topic: req.Topic, Pattern: pat, Rule: rule, Rosters: []roster.Signed{own}}
	for _, s := range req.With {
		u, err := seed.ParseUserPublic(strings.TrimSpace(s))
		if err != nil {
			return control.ConvNewResult{}, badConv(reasonNotFriend, "%q is not a user ID (64 hexadecimal characters)", clipString(s, 80))
		}
		if u.Equal(self) {
			continue // the creator is a member anyway
		}
		f, ok := r.Friend(u)
		if !ok || f.Status != roster.StatusFriend || !f.Met() {
			return control.ConvNewResult{}, badConv(reasonNotFriend,
				"user %s is not your friend: members who are not friends of each other reach each other through you, so every member must be a friend you paired with", u.Short())
		}
		sr, err := r.SignedOf(u, nil)
		if err != nil || len(sr.Certs) == 0 {
			return control.ConvNewResult{}, &control.Error{Kind: control.KindFailed,
				Message: fmt.Sprintf("no signed roster of %s yet: wait until their device has been online with this one", u.Short())}
		}
		nc.Members = append(nc.Members, u)
		nc.Rosters = append(nc.Rosters, sr)
	}
	if len(nc.Members) == 0 {
		return control.ConvNewResult{}, badConv(reasonNotFriend, "a conversation needs at least one other member")
	}
	id, err := a.convs.book.Create(nc)
	if err != nil {
		return control.ConvNewResult{}, convErr(err)
	}
	a.proposeConvIndex(id, conversation.StatusOpen)
	return control.ConvNewResult{ConversationID: id.String()}, nil
}

// convErr turns a Book error into the API's: the user's mistakes are bad
// input (a rule's position and reason kept in the message).
func convErr(err error) error {
	switch {
	case errors.Is(err, conversation.ErrNotFound):
		return &control.Error{Kind: control.KindNotFound, Message: "no such conversation on this device"}
	case conversation.IsBadInput(err):
		var ce *consensus.Error
		reason := reasonKind
		if errors.As(err, &ce) {
			reason = reasonRule
		}
		return &control.Error{Kind: control.KindBadInput, Reason: reason, Message: err.Error()}
	}
	return err
}

// resolveConv finds the conversation whose ID is s or starts with it.
func (a *Agent) resolveConv(s string) (conversation.ID, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) == 64 {
		id, err := conversation.ParseID(s)
		if err != nil {
			return conversation.ID{}, badConv(reasonAmbiguous, "%q is not a conversation ID", clipString(s, 80))
		}
		return id, nil
	}
	if s == "" || strings.Trim(s, "0123456789abcdef") != "" {
		return conversation.ID{}, badConv(reasonAmbiguous, "%q is not (the start of) a conversation ID: hexadecimal characters", clipString(s, 80))
	}
	list, err := a.convs.book.List()
	if err != nil {
		return conversation.ID{}, err
	}
	var found []conversation.ID
	for _, c := range list {
		if strings.HasPrefix(c.ID.String(), s) {
			found = append(found, c.ID)
		}
	}
	for _, id := range a.archives.state.archivedIDs() { // archive_control.go
		if strings.HasPrefix(id.String(), s) && !slices.Contains(found, id) {
			found = append(found, id)
		}
	}
	switch len(found) {
	case 0:
		return conversation.ID{}, &control.Error{Kind: control.KindNotFound, Message: fmt.Sprintf("no conversation on this device has an ID starting with %s", s)}
	case 1:
		return found[0], nil
	}
	return conversation.ID{}, badConv(reasonAmbiguous, "%s is the start of %d conversations' IDs", s, len(found))
}

func (c controlAPI) ConvList(context.Context) ([]control.ConvSummary, error) {
	list, err := c.a.convs.book.List()
	if err != nil {
		return nil, err
	}
	out := make([]control.ConvSummary, 0, len(list))
	for _, s := range list {
		out = append(out, control.ConvSummary{ConversationID: s.ID.String(), Topic: s.Topic, Pattern: string(s.Pattern),
			Status: s.Status, Members: s.Members, Updated: s.Updated})
	}
	return append(out, c.a.archivedSummaries(list)...), nil
}

func (c controlAPI) ConvShow(ctx context.Context, s string) (control.ConvView, error) {
	id, err := c.a.resolveConv(s)
	if err != nil {
		return control.ConvView{}, err
	}
	v, err := c.a.convs.book.Show(id)
	if errors.Is(err, conversation.ErrNotFound) {
		if _, ok := c.a.archives.state.entryOf(id); ok {
			v, err = c.a.archives.readArchived(ctx, id, nil) // archive_control.go
			if err != nil {
				return control.ConvView{}, err
			}
			return c.a.convView(v), nil
		}
	}
	if err != nil {
		return control.ConvView{}, convErr(err)
	}
	return c.a.convView(v), nil
}

// convView is the API's form of a View.
func (a *Agent) convView(v conversation.View) control.ConvView {
	out := control.ConvView{
		ConversationID: v.ID.String(), Topic: v.Topic, Pattern: string(v.Pattern), Rule: v.Rule,
		Members: v.Members, Status: v.Status, Creator: v.Creator, CreatedAt: v.Created,
		Messages: make([]control.ConvMessage, 0, len(v.Messages)), Tally: v.Tally,
		Self: a.dev.Cert.User, Kinds: v.Pattern.Kinds(), Choices: v.Pattern.Choices(),
		Names: map[string]string{}, RuleError: v.RuleError,
	}
	if out.Tally == nil {
		out.Tally = map[string]int{}
	}
	if out.Choices == nil {
		out.Choices = []string{}
	}
	for _, m := range v.Messages {
		out.Messages = append(out.Messages, convMessage(m))
	}
	if v.Outcome != nil {
		o := convOutcome(*v.Outcome)
		out.Outcome = &o
	}
	r := a.book.rosterNow()
	out.Names[a.dev.Cert.User.ID()] = a.dev.Identity.Name
	for _, u := range v.Members {
		if f, ok := r.Friend(u); ok && f.Name != "" {
			out.Names[u.ID()] = f.Name
		}
	}
	return out
}

func convMessage(m conversation.MessageView) control.ConvMessage {
	return control.ConvMessage{ID: m.ID.String(), By: m.By, Device: m.Device, Kind: m.Kind, Body: m.Body, At: m.At, Lamport: m.Lamport}
}

func convOutcome(o conversation.Outcome) control.ConvOutcome {
	t := o.Tally
	if t == nil {
		t = map[string]int{}
	}
	return control.ConvOutcome{Result: o.Result, Tally: t, EvaluatedAt: o.EvaluatedAt, MessageSet: o.MessageSet,
		DecidedBy: o.DecidedBy, DecidedByDevice: o.DecidedByDevice, ID: o.ID.String()}
}

// decided refuses a message to a decided conversation, with its outcome.
func (a *Agent) decided(id conversation.ID) error {
	v, err := a.convs.book.Show(id)
	if err != nil {
		return convErr(err)
	}
	if v.Outcome != nil {
		return badConv(reasonDecided, "the conversation is decided (%q): no more messages or votes are taken", clipString(v.Outcome.Result, 40))
	}
	return nil
}

func (c controlAPI) ConvPost(_ context.Context, req control.ConvPostRequest) (control.ConvMessageResult, error) {
	id, err := c.a.resolveConv(req.ConversationID)
	if err != nil {
		return control.ConvMessageResult{}, err
	}
	if err := c.a.decided(id); err != nil {
		return control.ConvMessageResult{}, err
	}
	kind := req.Kind
	if kind == "" {
		v, err := c.a.convs.book.Show(id)
		if err != nil {
			return control.ConvMessageResult{}, convErr(err)
		}
		if ks := v.Pattern.Kinds(); len(ks) > 0 {
			kind = ks[0]
		}
	}
	mid, err := c.a.convs.book.Post(id, kind, req.Body)
	if err != nil {
		return control.ConvMessageResult{}, convErr(err)
	}
	return control.ConvMessageResult{MessageID: mid.String()}, nil
}

func (c controlAPI) ConvVote(_ context.Context, req control.ConvVoteRequest) (control.ConvMessageResult, error) {
	id, err := c.a.resolveConv(req.ConversationID)
	if err != nil {
		return control.ConvMessageResult{}, err
	}
	if err := c.a.decided(id); err != nil {
		return control.ConvMessageResult{}, err
	}
	mid, err := c.a.convs.book.Vote(id, req.Choice)
	if err != nil {
		return control.ConvMessageResult{}, convErr(err)
	}
	return control.ConvMessageResult{MessageID: mid.String()}, nil
}

func (c controlAPI) ConvFollow(ctx context.Context, s string, send func(control.ConvEvent) error) error {
	id, err := c.a.resolveConv(s)
	if err != nil {
		return err
	}
	changes, cancel := c.a.convs.follow(id)
	defer cancel()
	v, err := c.a.convs.book.Show(id)
	if err != nil {
		return convErr(err)
	}
	sent := map[conversation.MessageID]bool{}
	for {
		for _, m := range v.Messages {
			if sent[m.ID] {
				continue
			}
			sent[m.ID] = true
			cm := convMessage(m)
			if err := send(control.ConvEvent{Type: control.ConvEventMessage, Message: &cm}); err != nil {
				return err
			}
		}
		if v.Outcome != nil {
			o := convOutcome(*v.Outcome)
			return send(control.ConvEvent{Type: control.ConvEventOutcome, Outcome: &o})
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.a.convs.stopping:
			return errors.New("the agent is stopping")
		case <-changes:
		}
		if v, err = c.a.convs.book.Show(id); err != nil {
			return err
		}
	}
}
