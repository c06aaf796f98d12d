package web

import (
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Topics of the event stream: what changed, for the page to fetch again.
const (
	TopicPeers   = "peers"   // a device came online, went offline or moved
	TopicFriends = "friends" // the address book: friends, their devices, own devices
	TopicPair    = "pair"    // a pairing moved on
	TopicConv    = "conv"    // a conversation got a message or an outcome, or a new one arrived
	TopicArchive = "archive" // archive replication changed
)

// maxStreams bounds the event streams open at once.
const maxStreams = 16

// heartbeatEvery is how often an idle event stream gets a comment line, so
// that proxies and the browser keep it open.
var heartbeatEvery = 25 * time.Second

// hub hands topics to the open event streams. A stream that reads slowly
// loses nothing: each keeps the set of topics changed since it last wrote,
// so memory stays bounded by the number of topics.
type hub struct {
	mu   sync.Mutex
	subs map[*sub]struct{} // guarded by mu
}

// sub is one event stream's pending topics.
type sub struct {
	mu      sync.Mutex
	pending []string      // guarded by mu; each topic at most once
	wake    chan struct{} // buffered, one
}

func newHub() *hub { return &hub{subs: map[*sub]struct{}{}} }

// notify marks topic changed for every stream. It never blocks, so the
// agent may call it while holding its own locks.
func (h *hub) notify(topic string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		s.mu.Lock()
		if !slices.Contains(s.pending, topic) {
			s.pending = append(s.pending, topic)
		}
		s.mu.Unlock()
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// subscribe adds a stream, or returns false when maxStreams are open.
func (h *hub) subscribe() (*sub, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.subs) >= maxStreams {
		return nil, false
	}
	s := &sub{wake: make(chan struct{}, 1)}
	h.subs[s] = struct{}{}
	return s, true
}

func (h *hub) unsubscribe(s *sub) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
}

// take returns the pending topics and clears them.
func (s *sub) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pending
	s.pending = nil
	return p
}

// serveEvents is GET /api/events: a text/event-stream of topic names, one
// event per change ("event: friends", data "{}"), until the page goes away
// or the server stops.
func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) {
	sb, ok := s.hub.subscribe()
	if !ok {
		http.Error(w, "too many event streams are open", http.StatusServiceUnavailable)
		return
	}
	defer s.hub.unsubscribe(sb)
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	// "hello" tells the page the stream is up: it fetches everything it
	// shows once, so that nothing changed between its load and now is lost.
	if _, err := fmt.Fprint(w, "retry: 2000\nevent: hello\ndata: {}\n\n"); err != nil {
		return
	}
	if rc.Flush() != nil {
		return
	}
	beat := time.NewTicker(heartbeatEvery)
	defer beat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.done:
			return
		case <-beat.C:
			if _, err := fmt.Fprint(w, ": idle\n\n"); err != nil {
				return
			}
		case <-sb.wake:
			for _, t := range sb.take() {
				if _, err := fmt.Fprintf(w, "event: %s\ndata: {}\n\n", t); err != nil {
					return
				}
			}
		}
		if rc.Flush() != nil {
			return
		}
	}
}
