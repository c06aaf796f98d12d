package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/kith-project/kith/seed"
)

// Conversations ("kith conv …", DESIGN §9). Conversation and message IDs
// travel as lowercase hex; a request may carry a unique prefix of a
// conversation ID, which the agent resolves (an unknown one is
// [KindNotFound], an ambiguous one [KindBadInput]). Every string a peer
// wrote (topics, bodies, names) arrives as the peer wrote it: the CLI
// sanitizes before printing.

// ConvBackend is the part of a backend that keeps conversations. A
// [Backend] that is not one answers these routes with an error of kind
// [KindFailed].
type ConvBackend interface {
	// ConvNew starts a conversation ([RouteConvNew]).
	ConvNew(ctx context.Context, req ConvNewRequest) (ConvNewResult, error)
	// ConvList lists the conversations ([RouteConvList]).
	ConvList(ctx context.Context) ([]ConvSummary, error)
	// ConvShow shows one conversation ([RouteConvShow]).
	ConvShow(ctx context.Context, id string) (ConvView, error)
	// ConvPost posts a message ([RouteConvPost]).
	ConvPost(ctx context.Context, req ConvPostRequest) (ConvMessageResult, error)
	// ConvVote votes ([RouteConvVote]).
	ConvVote(ctx context.Context, req ConvVoteRequest) (ConvMessageResult, error)
	// ConvFollow calls send for every message of conversation id, those
	// held now first, then each new one and the outcome as they arrive,
	// until ctx ends or send fails ([RouteConvFollow]). An unknown id is
	// an error before the first send.
	ConvFollow(ctx context.Context, id string, send func(ConvEvent) error) error
}

// ConvNewRequest is "kith conv new": what the person typed. With holds
// full user IDs (the CLI resolves names and prefixes); Rule and Preset
// are exclusive, and both empty for a chat.
type ConvNewRequest struct {
	Topic   string   `json:"topic"`
	Pattern string   `json:"pattern"`
	With    []string `json:"with"`
	Rule    string   `json:"rule,omitempty"`
	Preset  string   `json:"preset,omitempty"`
}

// ConvNewResult is what "kith conv new" prints.
type ConvNewResult struct {
	ConversationID string `json:"conversation_id"`
}

// ConvSummary is one line of "kith conv list".
type ConvSummary struct {
	ConversationID string            `json:"conversation_id"`
	Topic          string            `json:"topic"`
	Pattern        string            `json:"pattern"`
	Status         string            `json:"status"` // open, decided, archived
	Members        []seed.UserPublic `json:"members"`
	Updated        time.Time         `json:"updated"`
}

// ConvView is "kith conv show": the conversation, its messages in the
// order this device accepted them, the tally of the latest votes and the
// outcome (null while open).
type ConvView struct {
	ConversationID string            `json:"conversation_id"`
	Topic          string            `json:"topic"`
	Pattern        string            `json:"pattern"`
	Rule           string            `json:"rule"`
	Members        []seed.UserPublic `json:"members"`
	Status         string            `json:"status"`
	Creator        seed.UserPublic   `json:"creator"`
	CreatedAt      time.Time         `json:"created_at"`
	Messages       []ConvMessage     `json:"messages"`
	Tally          map[string]int    `json:"tally"`
	Outcome        *ConvOutcome      `json:"outcome"`
	// RuleError is why the rule failed when it was last evaluated (an
	// index past the end of messages, say); the conversation cannot
	// decide while it lasts.
	RuleError string `json:"rule_error,omitempty"`
	// Names are the names this device knows members by: its own user's
	// and its friends' (a member who is not a friend has none).
	Names map[string]string `json:"names,omitempty"`
	// Self is this device's user.
	Self seed.UserPublic `json:"self"`
	// Kinds and Choices are what the pattern allows.
	Kinds   []string `json:"kinds"`
	Choices []string `json:"choices"`
}

// ConvMessage is one accepted message.
type ConvMessage struct {
	ID      string            `json:"id"`
	By      seed.UserPublic   `json:"by"`
	Device  seed.DevicePublic `json:"device"`
	Kind    string            `json:"kind"`
	Body    string            `json:"body"`
	At      time.Time         `json:"at"`
	Lamport uint64            `json:"lamport"`
}

// ConvOutcome is a conversation's signed outcome.
type ConvOutcome struct {
	Result          string            `json:"result"`
	Tally           map[string]int    `json:"tally"`
	EvaluatedAt     time.Time         `json:"evaluated_at"`
	MessageSet      string            `json:"message_set"`
	DecidedBy       seed.UserPublic   `json:"decided_by"`
	DecidedByDevice seed.DevicePublic `json:"decided_by_device"`
	ID              string            `json:"id"`
}

// ConvPostRequest is "kith conv post"; Kind "" means the pattern's first
// kind.
type ConvPostRequest struct {
	ConversationID string `json:"conversation_id"`
	Kind           string `json:"kind,omitempty"`
	Body           string `json:"body"`
}

// ConvVoteRequest is "kith conv vote".
type ConvVoteRequest struct {
	ConversationID string `json:"conversation_id"`
	Choice         string `json:"choice"`
}

// ConvMessageResult is what "kith conv post" and "kith conv vote" print.
type ConvMessageResult struct {
	MessageID string `json:"message_id"`
}

// ConvShowRequest names a conversation ([RouteConvShow], [RouteConvFollow]).
type ConvShowRequest struct {
	ConversationID string `json:"conversation_id"`
}

// ConvEvent is one line of [RouteConvFollow]: a message, or the outcome.
type ConvEvent struct {
	Type    string       `json:"type"` // "message" or "outcome"
	Message *ConvMessage `json:"message,omitempty"`
	Outcome *ConvOutcome `json:"outcome,omitempty"`
}

// Event types of ConvEvent.
const (
	ConvEventMessage = "message"
	ConvEventOutcome = "outcome"
)

// maxConvEventLine bounds one line of a follow stream the client reads.
const maxConvEventLine = 1 << 20

// registerConv serves the ConvBackend routes from b.
func registerConv(mux *http.ServeMux, b Backend) {
	cb, ok := b.(ConvBackend)
	type none struct{}
	no := &Error{Kind: KindFailed, Message: "this agent does not keep conversations"}
	mux.Handle(RouteConvNew, handle(func(ctx context.Context, in *ConvNewRequest) (ConvNewResult, error) {
		if !ok {
			return ConvNewResult{}, no
		}
		return cb.ConvNew(ctx, *in)
	}))
	mux.Handle(RouteConvList, handle(func(ctx context.Context, _ *none) ([]ConvSummary, error) {
		if !ok {
			return nil, no
		}
		return cb.ConvList(ctx)
	}))
	mux.Handle(RouteConvShow, handle(func(ctx context.Context, in *ConvShowRequest) (ConvView, error) {
		if !ok {
			return ConvView{}, no
		}
		return cb.ConvShow(ctx, in.ConversationID)
	}))
	mux.Handle(RouteConvPost, handle(func(ctx context.Context, in *ConvPostRequest) (ConvMessageResult, error) {
		if !ok {
			return ConvMessageResult{}, no
		}
		return cb.ConvPost(ctx, *in)
	}))
	mux.Handle(RouteConvVote, handle(func(ctx context.Context, in *ConvVoteRequest) (ConvMessageResult, error) {
		if !ok {
			return ConvMessageResult{}, no
		}
		return cb.ConvVote(ctx, *in)
	}))
	mux.Handle(RouteConvFollow, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in ConvShowRequest
		if err := decodeRequest(r.Body, &in); err != nil {
			writeError(w, &Error{Kind: KindBadInput, Message: "malformed request: " + err.Error()})
			return
		}
		if !ok {
			writeError(w, no)
			return
		}
		serveFollow(w, r, cb, in.ConversationID)
	}))
}

// serveFollow streams a conversation's events as JSON lines. An error
// before the first event is answered as an [Error]; after it, the stream
// just ends.
func serveFollow(w http.ResponseWriter, r *http.Request, cb ConvBackend, id string) {
	rc := http.NewResponseController(w)
	started := false
	err := cb.ConvFollow(r.Context(), id, func(ev ConvEvent) error {
		if !started {
			started = true
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.WriteHeader(http.StatusOK)
		}
		b, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		if _, err := w.Write(append(b, '\n')); err != nil {
			return err
		}
		return rc.Flush()
	})
	if err != nil && !started {
		writeError(w, err)
		return
	}
	if !started {
		// Nothing to say and the client went away.
		w.WriteHeader(http.StatusOK)
	}
}

// ConvNew starts a conversation.
func (c *Client) ConvNew(ctx context.Context, req ConvNewRequest) (ConvNewResult, error) {
	var res ConvNewResult
	err := c.do(ctx, RouteConvNew, req, &res)
	return res, err
}

// ConvList lists the conversations.
func (c *Client) ConvList(ctx context.Context) ([]ConvSummary, error) {
	var out []ConvSummary
	err := c.do(ctx, RouteConvList, nil, &out)
	return out, err
}

// ConvShow shows the conversation whose ID is id or starts with it.
func (c *Client) ConvShow(ctx context.Context, id string) (ConvView, error) {
	var v ConvView
	err := c.do(ctx, RouteConvShow, ConvShowRequest{ConversationID: id}, &v)
	return v, err
}

// ConvPost posts a message.
func (c *Client) ConvPost(ctx context.Context, req ConvPostRequest) (ConvMessageResult, error) {
	var res ConvMessageResult
	err := c.do(ctx, RouteConvPost, req, &res)
	return res, err
}

// ConvVote votes.
func (c *Client) ConvVote(ctx context.Context, req ConvVoteRequest) (ConvMessageResult, error) {
	var res ConvMessageResult
	err := c.do(ctx, RouteConvVote, req, &res)
	return res, err
}

// ConvFollow calls fn for every event of conversation id, the messages
// held now first, until ctx ends, fn returns an error (which ConvFollow
// returns; [ErrStopFollow] to stop without one) or the agent ends the
// stream.
func (c *Client) ConvFollow(ctx context.Context, id string, fn func(ConvEvent) error) error {
	method, path, _ := strings.Cut(RouteConvFollow, " ")
	b, err := json.Marshal(ConvShowRequest{ConversationID: id})
	if err != nil {
		return fmt.Errorf("control: encoding the request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://kith"+path, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("control: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return c.dialError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return decodeError(resp)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), maxConvEventLine)
	for sc.Scan() {
		var ev ConvEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return fmt.Errorf("control: decoding an event: %w", err)
		}
		if err := fn(ev); err != nil {
			if errors.Is(err, ErrStopFollow) {
				return nil
			}
			return err
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("control: reading events: %w", err)
	}
	return ctx.Err()
}

// ErrStopFollow, returned by a ConvFollow callback, ends the stream
// without an error.
var ErrStopFollow = errors.New("control: stop following")

// decodeError reads an error answer.
func decodeError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var e Error
	if json.Unmarshal(b, &e) != nil || e.Message == "" {
		return fmt.Errorf("control: the agent answered %s", resp.Status)
	}
	return &e
}
