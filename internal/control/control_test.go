package control

import (
	"context"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"
)

type echoIn struct{ Word string }
type echoOut struct{ Upper string }

func TestRoundTripAndErrors(t *testing.T) {
	home, err := os.MkdirTemp("", "kc")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(home)
	c := NewClient(home)
	if err := c.Do(context.Background(), "GET", "/v1/echo", nil, nil); !errors.Is(err, ErrNoAgent) || !strings.Contains(err.Error(), "kith --home "+home+" run") {
		t.Fatalf("without an agent: %v", err)
	}
	l, err := Listen(home)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(SocketPath(home)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v %v", fi.Mode(), err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /v1/echo", Handler(func(_ context.Context, in *echoIn) (echoOut, error) {
		if in.Word == "" {
			return echoOut{}, &Error{Kind: KindBadInput, Message: "no word", Reason: "empty"}
		}
		if in.Word == "fail" {
			return echoOut{}, errors.New("it failed")
		}
		return echoOut{strings.ToUpper(in.Word)}, nil
	}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, mux) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()

	var out echoOut
	if err := c.Do(ctx, "POST", "/v1/echo", echoIn{"kith"}, &out); err != nil || out.Upper != "KITH" {
		t.Fatalf("echo: %v %+v", err, out)
	}
	err = c.Do(ctx, "POST", "/v1/echo", echoIn{}, &out)
	var ce *Error
	if !BadInput(err) || !errors.As(err, &ce) || ce.Reason != "empty" {
		t.Fatalf("bad input: %v", err)
	}
	err = c.Do(ctx, "POST", "/v1/echo", echoIn{"fail"}, &out)
	if err == nil || BadInput(err) || err.Error() != "it failed" {
		t.Fatalf("failure: %v", err)
	}
}
