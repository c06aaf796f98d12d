// Package control is the local API between the kith command line and a
// running agent: JSON over HTTP on a Unix socket in the home folder.
//
// The API is its own package, apart from the agent, so that its types and
// routes are written once and both sides import them: the agent implements
// [Backend] and serves it with [NewHandler]; the command line, the demo and
// the tests call it with a [Client], one method per route, and never import
// the agent.
//
// # Routes
//
//	GET  /v1/id               [IDResult]
//	GET  /v1/status           [Status]
//	POST /v1/pair/show        [ShowRequest] → [ShowResult]
//	POST /v1/pair/scan        [ScanRequest] → [ScanResult]
//	POST /v1/pair/wait        [WaitRequest] → [ScanResult]; returns when the pairing completes or the invites expire
//	GET  /v1/friends          [][FriendView]
//	POST /v1/friends/ACTION   [FriendRequest] → [FriendStatus]; ACTION is block, unblock or remove
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
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
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

// ErrNoAgent matches the error of a request that finds no agent running.
var ErrNoAgent = errors.New("no agent is running")

// NoAgentError is the error of a request that finds no agent serving Home.
// It matches [ErrNoAgent] with [errors.Is].
type NoAgentError struct {
	Home string
}

func (e *NoAgentError) Error() string { return ErrNoAgent.Error() + " for " + e.Home }

// Is reports whether target is [ErrNoAgent].
func (e *NoAgentError) Is(target error) bool { return target == ErrNoAgent }

// SocketPathError is the error of [Listen] for a home folder whose socket
// path is too long for a Unix socket.
type SocketPathError struct {
	Path string
}

func (e *SocketPathError) Error() string {
	return fmt.Sprintf("control: the socket path %s is too long for a Unix socket (%d bytes)", e.Path, len(e.Path))
}

// Listen makes the control socket for home, replacing a stale socket file
// left by an agent that died. Callers must hold the home's lock, so a
// socket file present is never a live agent's.
func Listen(home string) (net.Listener, error) {
	sock := SocketPath(home)
	if len(sock) >= 104 {
		return nil, &SocketPathError{Path: sock}
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

// Time limits of the server. A request must arrive whole, headers and
// body, within requestReadTimeout, so that a client stalled in its body
// holds nothing for long; answers have no limit, since a scan may try an
// invite's addresses one after another.
var (
	requestHeaderTimeout = 5 * time.Second
	requestReadTimeout   = 10 * time.Second
	idleTimeout          = time.Minute
)

// maxHeaderBytes bounds a request's headers.
const maxHeaderBytes = 16 << 10

// Serve serves h on l until ctx ends, then shuts the server down, waiting
// up to five seconds for requests in flight. A request whose headers and
// body have not arrived within ten seconds is dropped; bodies are bounded
// by MaxRequestBody.
func Serve(ctx context.Context, l net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: requestHeaderTimeout,
		ReadTimeout:       requestReadTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
	}
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
