package control

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

// convFake is a fake with conversations: its follow stream sends two
// messages, then waits for the client to go away.
type convFake struct {
	fake
	ended chan error
}

func (f *convFake) ConvNew(_ context.Context, req ConvNewRequest) (ConvNewResult, error) {
	if req.Rule == "bad" {
		return ConvNewResult{}, &Error{Kind: KindBadInput, Reason: "rule", Message: "line 1, column 1: bad"}
	}
	return ConvNewResult{ConversationID: req.Topic}, nil
}
func (f *convFake) ConvList(context.Context) ([]ConvSummary, error) {
	return []ConvSummary{{ConversationID: "c1"}}, nil
}
func (f *convFake) ConvShow(_ context.Context, id string) (ConvView, error) {
	return ConvView{ConversationID: id}, nil
}
func (f *convFake) ConvPost(_ context.Context, req ConvPostRequest) (ConvMessageResult, error) {
	return ConvMessageResult{MessageID: req.Kind + ":" + req.Body}, nil
}
func (f *convFake) ConvVote(_ context.Context, req ConvVoteRequest) (ConvMessageResult, error) {
	return ConvMessageResult{MessageID: req.Choice}, nil
}
func (f *convFake) ConvFollow(ctx context.Context, id string, send func(ConvEvent) error) error {
	if id == "none" {
		return &Error{Kind: KindNotFound, Message: "no such conversation"}
	}
	for _, b := range []string{"one", "two"} {
		if err := send(ConvEvent{Type: ConvEventMessage, Message: &ConvMessage{Body: b}}); err != nil {
			f.ended <- err
			return err
		}
	}
	<-ctx.Done()
	f.ended <- ctx.Err()
	return ctx.Err()
}

func TestConvRoutes(t *testing.T) {
	home, err := os.MkdirTemp("", "kc")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(home)
	l, err := Listen(home)
	if err != nil {
		t.Fatal(err)
	}
	b := &convFake{ended: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, NewHandler(b)) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	c := NewClient(home)
	if res, err := c.ConvNew(ctx, ConvNewRequest{Topic: "t"}); err != nil || res.ConversationID != "t" {
		t.Fatalf("ConvNew: %+v %v", res, err)
	}
	var ce *Error
	if _, err := c.ConvNew(ctx, ConvNewRequest{Rule: "bad"}); !BadInput(err) || !errors.As(err, &ce) || ce.Reason != "rule" {
		t.Fatalf("ConvNew of a bad rule: %v", err)
	}
	if cs, err := c.ConvList(ctx); err != nil || len(cs) != 1 {
		t.Fatalf("ConvList: %+v %v", cs, err)
	}
	if v, err := c.ConvShow(ctx, "ab"); err != nil || v.ConversationID != "ab" {
		t.Fatalf("ConvShow: %+v %v", v, err)
	}
	if r, err := c.ConvPost(ctx, ConvPostRequest{Kind: "text", Body: "hi"}); err != nil || r.MessageID != "text:hi" {
		t.Fatalf("ConvPost: %+v %v", r, err)
	}
	if r, err := c.ConvVote(ctx, ConvVoteRequest{Choice: "yes"}); err != nil || r.MessageID != "yes" {
		t.Fatalf("ConvVote: %+v %v", r, err)
	}
	if err := c.ConvFollow(ctx, "none", func(ConvEvent) error { return nil }); !errors.As(err, &ce) || ce.Kind != KindNotFound {
		t.Fatalf("ConvFollow of an unknown conversation: %v", err)
	}
	// The client reads two events and stops; the backend's follow then
	// ends, its context cancelled.
	var got []string
	err = c.ConvFollow(ctx, "c1", func(ev ConvEvent) error {
		got = append(got, ev.Message.Body)
		if len(got) == 2 {
			return ErrStopFollow
		}
		return nil
	})
	if err != nil || len(got) != 2 || got[1] != "two" {
		t.Fatalf("ConvFollow: %v %v", got, err)
	}
	select {
	case err := <-b.ended:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("the backend's follow ended with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the backend's follow did not end when the client went away")
	}
}

// A backend without conversations answers their routes with a failure.
func TestConvRoutesWithoutConversations(t *testing.T) {
	home, err := os.MkdirTemp("", "kc")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(home)
	l, err := Listen(home)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, NewHandler(&fake{})) }()
	defer func() { cancel(); <-done }()
	c := NewClient(home)
	var ce *Error
	if _, err := c.ConvList(ctx); !errors.As(err, &ce) || ce.Kind != KindFailed {
		t.Fatalf("ConvList: %v", err)
	}
	if err := c.ConvFollow(ctx, "x", func(ConvEvent) error { return nil }); !errors.As(err, &ce) || ce.Kind != KindFailed {
		t.Fatalf("ConvFollow: %v", err)
	}
}
