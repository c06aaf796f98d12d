// Package control is the local API between the kith command line and a
// running agent: JSON over HTTP on a Unix socket in the home folder.
//
// # Socket
//
// The agent listens on HOME/agent.sock, mode 0600, in a home folder that is
// itself 0700, so only the device's owner can reach it. Every command other
// than init, restore, id, keys and version talks to the agent only through
// this socket.
//
// # Requests and errors
//
// Requests and responses are JSON documents. A failed request answers with a
// non-2xx status and an [Error] body: a message for people, a kind that
// decides the command's exit status (bad input is 2, anything else 1), and
// for pairing refusals a short reason ("expired", "tampered", …).
package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// SocketName is the control socket's name inside the home folder.
const SocketName = "agent.sock"

// SocketPath returns the control socket's path for a home folder.
func SocketPath(home string) string { return filepath.Join(home, SocketName) }

// Kinds of error.
const (
	KindBadInput = "bad_input" // the request was wrong: exit status 2
	KindFailed   = "failed"    // the operation failed: exit status 1
	KindNotFound = "not_found" // what was asked for does not exist: exit status 1
)

// Error is a failed request, as it travels over the socket.
type Error struct {
	Message string `json:"error"`
	Kind    string `json:"kind"`
	Reason  string `json:"reason,omitempty"`
}

func (e *Error) Error() string { return e.Message }

// BadInput reports whether err is a bad-input error from the agent.
func BadInput(err error) bool {
	var ce *Error
	return errors.As(err, &ce) && ce.Kind == KindBadInput
}

// ErrNoAgent is returned when no agent answers on the socket.
var ErrNoAgent = errors.New("no agent is running")

// Client talks to the agent of one home folder.
type Client struct {
	home string
	http *http.Client
}

// NewClient returns a client for the agent serving home.
func NewClient(home string) *Client {
	sock := SocketPath(home)
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
		DisableKeepAlives: true,
	}
	return &Client{home: home, http: &http.Client{Transport: tr}}
}

// Do sends in (nil for none) to path with method, and decodes the answer
// into out (nil to discard).
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("control: encoding the request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://kith"+path, body)
	if err != nil {
		return fmt.Errorf("control: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w for %s: start it with \"kith --home %s run\" (it stays in the foreground; use another terminal)", ErrNoAgent, c.home, c.home)
		}
		return fmt.Errorf("control: reaching the agent: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("control: reading the agent's answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var e Error
		if json.Unmarshal(b, &e) != nil || e.Message == "" {
			return fmt.Errorf("control: the agent answered %s", resp.Status)
		}
		return &e
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("control: decoding the agent's answer: %w", err)
	}
	return nil
}

// Handler adapts a function that returns a value or an error into an
// http.Handler that speaks this package's JSON conventions. in, when not
// nil, makes a fresh request value to decode the body into.
func Handler[In, Out any](fn func(ctx context.Context, in *In) (Out, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in := new(In)
		if r.ContentLength != 0 && r.Body != nil {
			dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
			if err := dec.Decode(in); err != nil && !errors.Is(err, io.EOF) {
				WriteError(w, &Error{Kind: KindBadInput, Message: "malformed request: " + err.Error()})
				return
			}
		}
		out, err := fn(r.Context(), in)
		if err != nil {
			WriteError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(out)
	})
}

// WriteError writes err as an [Error]; an error that is not one is a
// failure of kind KindFailed.
func WriteError(w http.ResponseWriter, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Kind: KindFailed, Message: err.Error()}
	}
	status := http.StatusInternalServerError
	switch e.Kind {
	case KindBadInput:
		status = http.StatusBadRequest
	case KindNotFound:
		status = http.StatusNotFound
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(e)
}

// Listen makes the control socket for home, replacing a stale socket file
// left by an agent that died. Callers must hold the home's lock, so a
// socket file present is never a live agent's.
func Listen(home string) (net.Listener, error) {
	sock := SocketPath(home)
	if len(sock) >= 104 {
		return nil, fmt.Errorf("control: the socket path %s is too long for a Unix socket (%d bytes): use a shorter --home", sock, len(sock))
	}
	if err := os.Remove(sock); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("control: removing a stale socket: %w", err)
	}
	l, err := net.Listen("unix", sock)
	if err != nil {
		return nil, fmt.Errorf("control: listening on %s: %w", sock, err)
	}
	if err := os.Chmod(sock, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("control: %w", err)
	}
	return l, nil
}

// Serve serves h on l until ctx ends, then shuts the server down, waiting
// up to five seconds for requests in flight.
func Serve(ctx context.Context, l net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("control: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	<-errc
	return err
}
