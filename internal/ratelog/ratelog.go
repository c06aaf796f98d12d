// Package ratelog bounds the debug lines that other people can make a
// device write.
//
// A stranger's garbage datagram, a forged heartbeat or a refused stream is
// worth a debug line, and an attacker who sends a million of them would
// otherwise fill the disk of anyone who runs with --log-level debug. A
// [Handler] wraps another slog.Handler and lets through, per message, a
// burst of [Burst] debug records and then [PerSecond] a second; the next
// record let through carries the count it suppressed as "suppressed".
// Records at Info and above always pass: they come from our own events,
// not from what a peer sends.
//
// Messages are the constant strings of the code that logs; a Handler
// tracks at most [MaxMessages] of them and counts any further ones
// together, so that its memory is bounded too.
package ratelog

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limits per message.
const (
	Burst       = 5
	PerSecond   = 2
	MaxMessages = 256
)

// Handler is a slog.Handler that rate-limits debug records by message.
// Handlers derived from it with WithAttrs and WithGroup share its limits.
type Handler struct {
	next  slog.Handler
	state *state
}

type state struct {
	now func() time.Time // constant

	mu  sync.Mutex
	per map[string]*entry // guarded by mu; at most MaxMessages, plus ""
}

type entry struct {
	limit      *rate.Limiter
	suppressed uint64
}

// New wraps next; now is the clock the limits run on (time.Now when nil).
func New(next slog.Handler, now func() time.Time) *Handler {
	if now == nil {
		now = time.Now
	}
	return &Handler{next: next, state: &state{now: now, per: map[string]*entry{}}}
}

// Enabled is next's.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

// Handle passes r to next unless it is a debug record over its message's
// limit.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level > slog.LevelDebug {
		return h.next.Handle(ctx, r)
	}
	n, ok := h.state.admit(r.Message)
	if !ok {
		return nil
	}
	if n > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Uint64("suppressed", n))
	}
	return h.next.Handle(ctx, r)
}

// WithAttrs is next's, with the same limits.
func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	return &Handler{next: h.next.WithAttrs(as), state: h.state}
}

// WithGroup is next's, with the same limits.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{next: h.next.WithGroup(name), state: h.state}
}

// admit reports whether a record with message msg may pass now, and how
// many of its were suppressed since the last that did.
func (s *state) admit(msg string) (suppressed uint64, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.per[msg]
	if e == nil {
		if len(s.per) >= MaxMessages {
			msg = "" // every further message shares one limit
		}
		if e = s.per[msg]; e == nil {
			e = &entry{limit: rate.NewLimiter(PerSecond, Burst)}
			s.per[msg] = e
		}
	}
	if !e.limit.AllowN(s.now(), 1) {
		e.suppressed++
		return 0, false
	}
	n := e.suppressed
	e.suppressed = 0
	return n, true
}
