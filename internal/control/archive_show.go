package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Showing a conversation with progress ([RouteConvShowProgress]): the
// answer is newline-delimited JSON, [ConvShowEvent]s of type progress as
// the blobs of an archived conversation arrive, then one of type view (or
// an [Error] before the first line). A live conversation gives its view at
// once.

// ConvShowEvent is one line of [RouteConvShowProgress].
type ConvShowEvent struct {
	Type  string    `json:"type"` // "progress" or "view"
	Done  int64     `json:"done,omitempty"`
	Total int64     `json:"total,omitempty"`
	View  *ConvView `json:"view,omitempty"`
}

// ConvProgressBackend is the optional part of a backend that reports the
// transfer of an archived conversation while it shows it.
type ConvProgressBackend interface {
	ConvShowProgress(ctx context.Context, id string, progress func(done, total int64)) (ConvView, error)
}

func registerConvProgress(mux *http.ServeMux, b Backend) {
	pb, ok := b.(ConvProgressBackend)
	mux.Handle(RouteConvShowProgress, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in ConvShowRequest
		if err := decodeRequest(r.Body, &in); err != nil {
			writeError(w, &Error{Kind: KindBadInput, Message: "malformed request: " + err.Error()})
			return
		}
		if !ok {
			writeError(w, &Error{Kind: KindFailed, Message: "this agent does not show conversations with progress"})
			return
		}
		rc := http.NewResponseController(w)
		started := false
		start := func() {
			if !started {
				started = true
				w.Header().Set("Content-Type", "application/x-ndjson")
				w.WriteHeader(http.StatusOK)
			}
		}
		line := func(ev ConvShowEvent) {
			start()
			b, _ := json.Marshal(ev)
			w.Write(append(b, '\n'))
			rc.Flush()
		}
		v, err := pb.ConvShowProgress(r.Context(), in.ConversationID, func(done, total int64) {
			line(ConvShowEvent{Type: "progress", Done: done, Total: total})
		})
		if err != nil {
			if !started {
				writeError(w, err)
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				e = &Error{Kind: KindFailed, Message: err.Error()}
			}
			b, _ := json.Marshal(e)
			w.Write(append(b, '\n'))
			return
		}
		line(ConvShowEvent{Type: "view", View: &v})
	}))
}

// ConvShowProgress shows conversation id, calling progress as the blobs
// of an archived one arrive.
func (c *Client) ConvShowProgress(ctx context.Context, id string, progress func(done, total int64)) (ConvView, error) {
	method, path, _ := strings.Cut(RouteConvShowProgress, " ")
	b, err := json.Marshal(ConvShowRequest{ConversationID: id})
	if err != nil {
		return ConvView{}, fmt.Errorf("control: encoding the request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://kith"+path, bytes.NewReader(b))
	if err != nil {
		return ConvView{}, fmt.Errorf("control: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return ConvView{}, c.dialError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return ConvView{}, decodeError(resp)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	for sc.Scan() {
		var ev ConvShowEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return ConvView{}, fmt.Errorf("control: decoding an event: %w", err)
		}
		switch ev.Type {
		case "progress":
			if progress != nil {
				progress(ev.Done, ev.Total)
			}
		case "view":
			if ev.View == nil {
				return ConvView{}, fmt.Errorf("control: a view event without a view")
			}
			return *ev.View, nil
		default:
			var e Error
			if json.Unmarshal(sc.Bytes(), &e) == nil && e.Message != "" {
				return ConvView{}, &e
			}
			return ConvView{}, fmt.Errorf("control: an event of type %q", ev.Type)
		}
	}
	if err := sc.Err(); err != nil {
		return ConvView{}, fmt.Errorf("control: reading events: %w", err)
	}
	return ConvView{}, fmt.Errorf("control: the agent ended the answer without the conversation")
}
