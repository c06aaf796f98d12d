package web

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kith-project/kith/internal/control"
)

// restoreBackend is a backend with conversations whose ConvShowProgress
// of "arch" reports steps one at a time: each only after the test says it
// saw the one before (next), so a page that got them all in order got
// them as they happened, not buffered at the end.
type restoreBackend struct {
	*fakeBackend
	steps [][2]int64
	next  chan struct{}
	ended chan error // what ConvShowProgress returned with
}

func (b *restoreBackend) ConvNew(context.Context, control.ConvNewRequest) (control.ConvNewResult, error) {
	return control.ConvNewResult{}, errNotHere
}
func (b *restoreBackend) ConvList(context.Context) ([]control.ConvSummary, error) {
	return []control.ConvSummary{{ConversationID: "arch", Status: "archived"}}, nil
}
func (b *restoreBackend) ConvShow(context.Context, string) (control.ConvView, error) {
	return control.ConvView{}, errNotHere
}
func (b *restoreBackend) ConvPost(context.Context, control.ConvPostRequest) (control.ConvMessageResult, error) {
	return control.ConvMessageResult{}, errNotHere
}
func (b *restoreBackend) ConvVote(context.Context, control.ConvVoteRequest) (control.ConvMessageResult, error) {
	return control.ConvMessageResult{}, errNotHere
}
func (b *restoreBackend) ConvFollow(context.Context, string, func(control.ConvEvent) error) error {
	return errNotHere
}

func (b *restoreBackend) ConvShowProgress(ctx context.Context, id string, progress func(done, total int64)) (v control.ConvView, err error) {
	defer func() { b.ended <- err }()
	switch id {
	case "live":
		return control.ConvView{ConversationID: "live", Topic: "now", Status: "open"}, nil
	case "arch", "fails":
	default:
		return control.ConvView{}, &control.Error{Kind: control.KindNotFound, Message: "no such conversation on this device"}
	}
	for _, s := range b.steps {
		progress(s[0], s[1])
		select {
		case <-b.next:
		case <-ctx.Done():
			return control.ConvView{}, ctx.Err()
		}
	}
	if id == "fails" {
		return control.ConvView{}, errors.New("the holders went away")
	}
	return control.ConvView{ConversationID: "arch", Topic: "lunch", Status: "archived", Pattern: "debate",
		Messages: []control.ConvMessage{{Kind: "position", Body: "noodles"}}}, nil
}

type sseEvent struct {
	name string
	data string
}

// readEvent reads one event of an event stream.
func readEvent(t *testing.T, br *bufio.Reader) sseEvent {
	t.Helper()
	var ev sseEvent
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the stream: %v (so far %+v)", err, ev)
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			return ev
		case strings.HasPrefix(line, "event: "):
			ev.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			ev.data = strings.TrimPrefix(line, "data: ")
		default:
			t.Fatalf("unexpected line %q", line)
		}
	}
}

func openStream(t *testing.T, c *http.Client, s *Server, key, id string) *http.Response {
	t.Helper()
	hr, err := http.NewRequest("GET", s.Origin()+"/api/conv/"+id+"/open", nil)
	if err != nil {
		t.Fatal(err)
	}
	hr.Header.Set("X-Kith-Key", key)
	resp, err := c.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestOpenArchivedStreamsProgress(t *testing.T) {
	rb := &restoreBackend{fakeBackend: &fakeBackend{}, next: make(chan struct{}), ended: make(chan error, 8),
		steps: [][2]int64{{0, 4000}, {1500, 4000}, {3000, 4000}, {4000, 4000}}}
	s := consoleWith(t, rb)
	c, key := login(t, s)
	// A stream that holds its events back fails here, not at go test's
	// own timeout.
	c.Timeout = 2 * time.Minute

	resp := openStream(t, c, s, key, "arch")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("open: %s %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	br := bufio.NewReader(resp.Body)
	for i, want := range rb.steps {
		ev := readEvent(t, br)
		var p openProgress
		if ev.name != "progress" || json.Unmarshal([]byte(ev.data), &p) != nil || p.Done != want[0] || p.Total != want[1] {
			t.Fatalf("event %d: %+v, want progress %v", i, ev, want)
		}
		rb.next <- struct{}{} // the backend goes on only now
	}
	ev := readEvent(t, br)
	var v convPage
	if ev.name != "view" || json.Unmarshal([]byte(ev.data), &v) != nil {
		t.Fatalf("last event: %+v, want the view", ev)
	}
	if v.ConversationID != "arch" || v.Status != "archived" || v.Topic != "lunch" || len(v.Messages) != 1 || v.Messages[0].Body != "noodles" {
		t.Fatalf("view %+v", v)
	}
	if err := <-rb.ended; err != nil {
		t.Fatalf("the backend: %v", err)
	}

	// A live conversation: the view at once, no progress.
	resp = openStream(t, c, s, key, "live")
	if ev := readEvent(t, bufio.NewReader(resp.Body)); ev.name != "view" || !strings.Contains(ev.data, `"topic":"now"`) {
		t.Fatalf("live: %+v", ev)
	}
	<-rb.ended

	// Unknown: a JSON error with its status, before any event.
	resp = openStream(t, c, s, key, "nope")
	var e control.Error
	if resp.StatusCode != http.StatusNotFound || json.NewDecoder(resp.Body).Decode(&e) != nil || e.Kind != control.KindNotFound {
		t.Fatalf("unknown: %s %+v", resp.Status, e)
	}
	<-rb.ended

	// Failing midway: the progress so far, then an error event.
	resp = openStream(t, c, s, key, "fails")
	br = bufio.NewReader(resp.Body)
	for range rb.steps {
		if ev := readEvent(t, br); ev.name != "progress" {
			t.Fatalf("fails: %+v", ev)
		}
		rb.next <- struct{}{}
	}
	if ev := readEvent(t, br); ev.name != "error" || !strings.Contains(ev.data, "the holders went away") {
		t.Fatalf("fails, last: %+v", ev)
	}
	<-rb.ended
}

// A page that goes away mid-transfer stops the backend's work.
func TestOpenCancelledWithThePage(t *testing.T) {
	rb := &restoreBackend{fakeBackend: &fakeBackend{}, next: make(chan struct{}), ended: make(chan error, 1),
		steps: [][2]int64{{10, 100}, {20, 100}}}
	s := consoleWith(t, rb)
	c, key := login(t, s)
	resp := openStream(t, c, s, key, "arch")
	if ev := readEvent(t, bufio.NewReader(resp.Body)); ev.name != "progress" {
		t.Fatalf("first: %+v", ev)
	}
	resp.Body.Close()
	select {
	case err := <-rb.ended:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("the backend ended with %v, want canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the backend still runs 30 s after the page went away")
	}
}

// The stream passes the same checks as every API route.
func TestOpenRefusals(t *testing.T) {
	rb := &restoreBackend{fakeBackend: &fakeBackend{}, next: make(chan struct{}), ended: make(chan error, 8)}
	s := consoleWith(t, rb)
	c, key := login(t, s)
	for _, tc := range []struct {
		name   string
		client *http.Client
		r      req
		want   int
	}{
		{"no cookie", &http.Client{}, req{method: "GET", path: "/api/conv/live/open", header: map[string]string{"X-Kith-Key": key}}, 401},
		{"no key", c, req{method: "GET", path: "/api/conv/live/open"}, 403},
		{"rebound host", c, req{method: "GET", path: "/api/conv/live/open", header: map[string]string{"X-Kith-Key": key}, host: "evil.example:" + s.port}, 421},
	} {
		if resp, body := do(t, tc.client, s, tc.r); resp.StatusCode != tc.want || strings.Contains(body, "now") {
			t.Errorf("%s: %s %s, want %d", tc.name, resp.Status, body, tc.want)
		}
	}
	select {
	case err := <-rb.ended:
		t.Fatalf("a refused request reached the backend (%v)", err)
	default:
	}
}
