package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/kith-project/kith/internal/control"
)

// Opening a conversation with the transfer's progress
// (GET /api/conv/{id}/open): the thread page's first load. The answer is
// a text/event-stream, read by the page with fetch (so that it carries
// the page key, which an EventSource cannot):
//
//	event: progress   data: {"done": D, "total": T}   as the blobs of an archived conversation arrive
//	event: view       data: the convPage of GET /api/conv/{id}
//	event: error      data: {"error": …, "kind": …}    when it fails after the first event
//
// An error before the first event is a JSON error with its status, as on
// every other route. A live conversation gives its view at once; so does a
// backend without [control.ConvProgressBackend].

// maxOpens bounds the conversations being opened with progress at once:
// each may fetch an archive's blobs.
const maxOpens = 4

// openState is one opening's latest progress. The backend's callback
// stores it and never waits for the page: a page that reads slowly gets
// the latest figures, not every step, and memory stays constant.
type openState struct {
	mu          sync.Mutex
	done, total int64 // guarded by mu
	fresh       bool  // guarded by mu: not written yet
	wake        chan struct{}
}

func (o *openState) set(done, total int64) {
	o.mu.Lock()
	o.done, o.total, o.fresh = done, total, true
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

func (o *openState) take() (done, total int64, ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	ok, o.fresh = o.fresh, false
	return o.done, o.total, ok
}

// openResult is what the backend answered.
type openResult struct {
	v   control.ConvView
	err error
}

// serveOpen is GET /api/conv/{id}/open.
func (s *Server) serveOpen(w http.ResponseWriter, r *http.Request) {
	cb := s.convBackend()
	if cb == nil {
		writeError(w, errNoConv)
		return
	}
	select {
	case s.opens <- struct{}{}:
		defer func() { <-s.opens }()
	default:
		writeJSONError(w, http.StatusServiceUnavailable, "too many conversations are being opened at once; try again")
		return
	}
	id := r.PathValue("id")
	pb, _ := s.b.(control.ConvProgressBackend)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	st := &openState{wake: make(chan struct{}, 1)}
	res := make(chan openResult, 1)
	// The backend runs beside this handler, which writes; the handler
	// waits for it before returning (cancel stops it when the page or the
	// server goes away).
	go func() {
		var o openResult
		if pb != nil {
			o.v, o.err = pb.ConvShowProgress(ctx, id, st.set)
		} else {
			o.v, o.err = cb.ConvShow(ctx, id)
		}
		res <- o
	}()
	rc := http.NewResponseController(w)
	started := false
	event := func(name string, v any) bool {
		if !started {
			started = true
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(http.StatusOK)
		}
		b, err := json.Marshal(v)
		if err != nil {
			b = []byte(`{}`)
		}
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	progressEvent := func() bool {
		if done, total, ok := st.take(); ok {
			return event("progress", openProgress{Done: done, Total: total})
		}
		return true
	}
	for {
		select {
		case <-st.wake:
			if !progressEvent() {
				cancel()
				<-res
				return
			}
		case <-s.done:
			cancel()
			<-res
			return
		case o := <-res:
			if !progressEvent() {
				return
			}
			if o.err != nil {
				if !started {
					writeError(w, o.err)
					return
				}
				var e *control.Error
				if !errors.As(o.err, &e) {
					e = &control.Error{Kind: control.KindFailed, Message: o.err.Error()}
				}
				event("error", e)
				return
			}
			event("view", convPage{ConvView: o.v, Progress: progressOf(o.v, s.now())})
			return
		}
	}
}

// openProgress is the data of a progress event: bytes of the archive's
// blobs received so far, of their total.
type openProgress struct {
	Done  int64 `json:"done"`
	Total int64 `json:"total"`
}
