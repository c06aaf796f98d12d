package ratelog

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newLogger(buf *bytes.Buffer, c *clock) *slog.Logger {
	return slog.New(New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}), c.now))
}

func TestDebugLinesPerMessage(t *testing.T) {
	var buf bytes.Buffer
	c := &clock{time.Unix(1e9, 0)}
	log := newLogger(&buf, c).With("service", "test")
	for range 10000 {
		log.Debug("bad packet", "from", "198.51.100.9:9")
	}
	if n := strings.Count(buf.String(), "msg=\"bad packet\""); n != Burst {
		t.Fatalf("10,000 debug records made %d lines, want the burst of %d", n, Burst)
	}
	// Another message has its own limit; Info always passes.
	log.Debug("other")
	for range 100 {
		log.Info("paired")
	}
	if !strings.Contains(buf.String(), "msg=other") || strings.Count(buf.String(), "msg=paired") != 100 {
		t.Fatalf("another message or an info record was limited:\n%s", buf.String())
	}
	// A second later two more pass, the first saying what it suppressed.
	buf.Reset()
	c.t = c.t.Add(time.Second)
	for range 10 {
		log.Debug("bad packet")
	}
	out := buf.String()
	if strings.Count(out, "\n") != PerSecond || !strings.Contains(out, fmt.Sprintf("suppressed=%d", 10000-Burst)) {
		t.Fatalf("a second later:\n%s", out)
	}
}

// Messages beyond MaxMessages share one limit, so the handler's memory is
// bounded whatever is logged.
func TestMessagesBounded(t *testing.T) {
	var buf bytes.Buffer
	c := &clock{time.Unix(1e9, 0)}
	h := New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}), c.now)
	log := slog.New(h)
	for i := range 10 * MaxMessages {
		log.Debug(fmt.Sprintf("message %d", i))
	}
	if n := len(h.state.per); n > MaxMessages+1 {
		t.Fatalf("tracking %d messages", n)
	}
	if lines := strings.Count(buf.String(), "\n"); lines > MaxMessages+Burst {
		t.Fatalf("%d distinct messages made %d lines", 10*MaxMessages, lines)
	}
}
