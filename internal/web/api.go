package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/kith-project/kith/internal/control"
)

// maxJSONBody bounds a JSON request's body.
const maxJSONBody = control.MaxRequestBody

// routes registers the pages and the API. Every API route answers JSON, and
// errors as {"error", "kind"} like the control socket.
func (s *Server) routes() {
	m := s.mux
	m.Handle("GET /", s.files)
	m.HandleFunc("GET /api/events", s.serveEvents)
	m.Handle("GET /api/session", api(func(ctx context.Context, _ *none) (sessionInfo, error) {
		id, err := s.b.ID(ctx)
		return sessionInfo{Self: id, Features: s.features()}, err
	}))
	m.Handle("GET /api/status", api(func(ctx context.Context, _ *none) (control.Status, error) {
		return s.b.Status(ctx)
	}))
	m.Handle("GET /api/devices", api(func(ctx context.Context, _ *none) ([]control.OwnDevice, error) {
		return s.b.Devices(ctx)
	}))
	m.Handle("GET /api/friends", api(func(ctx context.Context, _ *none) ([]control.FriendView, error) {
		return s.b.Friends(ctx)
	}))
	for _, action := range control.FriendActions {
		m.Handle("POST /api/friends/"+string(action), api(func(ctx context.Context, in *control.FriendRequest) (control.FriendStatus, error) {
			st, err := s.b.FriendAction(ctx, action, in.UserID)
			if err == nil {
				s.Notify(TopicFriends)
			}
			return st, err
		}))
	}
	s.pairRoutes()
	s.convRoutes()
	s.archiveRoutes()
}

// sessionInfo is GET /api/session: who this device is, and which parts
// of the console this agent serves.
type sessionInfo struct {
	Self     control.IDResult `json:"self"`
	Features []string         `json:"features"`
}

type none struct{}

// api adapts fn to an http.Handler: the body, if any, is one JSON document
// of at most maxJSONBody bytes decoded into a fresh In; the answer is Out
// as JSON, or the error as the control socket spells it.
func api[In, Out any](fn func(ctx context.Context, in *In) (Out, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in := new(In)
		b, err := io.ReadAll(io.LimitReader(r.Body, maxJSONBody+1))
		if err != nil {
			writeJSONError(w, http.StatusBadRequest, "reading the request: "+err.Error())
			return
		}
		if len(b) > maxJSONBody {
			writeJSONError(w, http.StatusRequestEntityTooLarge, "the request is too large")
			return
		}
		if len(bytes.TrimSpace(b)) > 0 {
			if err := json.Unmarshal(b, in); err != nil {
				writeJSONError(w, http.StatusBadRequest, "malformed request: "+err.Error())
				return
			}
		}
		out, err := fn(r.Context(), in)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, out)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// writeError writes err as the control socket's [control.Error].
func writeError(w http.ResponseWriter, err error) {
	var e *control.Error
	if !errors.As(err, &e) {
		e = &control.Error{Kind: control.KindFailed, Message: err.Error()}
	}
	status := http.StatusInternalServerError
	switch e.Kind {
	case control.KindBadInput:
		status = http.StatusBadRequest
	case control.KindNotFound:
		status = http.StatusNotFound
	}
	writeJSON(w, status, e)
}

func writeJSONError(w http.ResponseWriter, status int, msg string) {
	kind := control.KindBadInput
	if status == http.StatusForbidden || status == http.StatusUnauthorized {
		kind = "refused"
	}
	writeJSON(w, status, &control.Error{Kind: kind, Message: msg})
}
