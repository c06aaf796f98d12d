package presence

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Debug lines are rate-limited per message, so that a flood of bad
// packets, one line each, cannot fill the disk: at most logBurst lines at
// once and logRate a second for each message; the next line that passes
// says how many were suppressed before it.
const (
	logBurst = 5
	logRate  = 2
)

// debugLog is presence's rate-limited debug logger.
type debugLog struct {
	log *slog.Logger
	now func() time.Time

	mu  sync.Mutex
	per map[string]*logState // by message; messages are constants
}

type logState struct {
	budget     bucket
	suppressed uint64
}

// Debug logs msg at debug level unless msg was logged too often lately.
func (l *debugLog) Debug(msg string, args ...any) {
	if !l.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	l.mu.Lock()
	if l.per == nil {
		l.per = map[string]*logState{}
	}
	st := l.per[msg]
	if st == nil {
		st = &logState{}
		l.per[msg] = st
	}
	ok := st.budget.take(l.now(), logRate, logBurst)
	n := st.suppressed
	if ok {
		st.suppressed = 0
	} else {
		st.suppressed++
	}
	l.mu.Unlock()
	if !ok {
		return
	}
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	l.log.Debug(msg, args...)
}
