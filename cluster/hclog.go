package cluster

import (
	"context"
	"io"
	"log"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// hclogger adapts a slog.Logger to the hclog.Logger raft logs to. Every
// line of raft's goes to slog at debug level, with raft's own level as
// the attribute raft_level: raft warns and errs on every failed heartbeat
// to a device that is off, which for a user's phones and laptops is the
// normal case. What the cluster decides (joins, promotions, recovery) the
// cluster logs itself, at info.
type hclogger struct {
	l    *slog.Logger
	name string
	args []any
}

var _ hclog.Logger = (*hclogger)(nil)

func newHCLogger(l *slog.Logger) hclog.Logger { return &hclogger{l: l} }

func (h *hclogger) level(hclog.Level) slog.Level { return slog.LevelDebug }

func (h *hclogger) Log(lv hclog.Level, msg string, args ...any) {
	ctx := context.Background()
	sl := h.level(lv)
	if !h.l.Enabled(ctx, sl) {
		return
	}
	all := append(append([]any(nil), h.args...), args...)
	all = append(all, "raft_level", lv.String())
	if h.name != "" {
		all = append(all, "raft", h.name)
	}
	h.l.Log(ctx, sl, msg, all...)
}

func (h *hclogger) Trace(msg string, args ...any) { h.Log(hclog.Trace, msg, args...) }
func (h *hclogger) Debug(msg string, args ...any) { h.Log(hclog.Debug, msg, args...) }
func (h *hclogger) Info(msg string, args ...any)  { h.Log(hclog.Info, msg, args...) }
func (h *hclogger) Warn(msg string, args ...any)  { h.Log(hclog.Warn, msg, args...) }
func (h *hclogger) Error(msg string, args ...any) { h.Log(hclog.Error, msg, args...) }

func (h *hclogger) enabled(lv hclog.Level) bool {
	return h.l.Enabled(context.Background(), h.level(lv))
}

func (h *hclogger) IsTrace() bool { return false }
func (h *hclogger) IsDebug() bool { return h.enabled(hclog.Debug) }
func (h *hclogger) IsInfo() bool  { return h.enabled(hclog.Info) }
func (h *hclogger) IsWarn() bool  { return h.enabled(hclog.Warn) }
func (h *hclogger) IsError() bool { return h.enabled(hclog.Error) }

func (h *hclogger) ImpliedArgs() []any { return h.args }

func (h *hclogger) With(args ...any) hclog.Logger {
	return &hclogger{l: h.l, name: h.name, args: append(append([]any(nil), h.args...), args...)}
}

func (h *hclogger) Name() string { return h.name }

func (h *hclogger) Named(name string) hclog.Logger {
	n := name
	if h.name != "" {
		n = h.name + "." + name
	}
	return &hclogger{l: h.l, name: n, args: h.args}
}

func (h *hclogger) ResetNamed(name string) hclog.Logger {
	return &hclogger{l: h.l, name: name, args: h.args}
}

// SetLevel is ignored: the slog handler decides.
func (h *hclogger) SetLevel(hclog.Level) {}

func (h *hclogger) GetLevel() hclog.Level {
	switch {
	case h.IsDebug():
		return hclog.Debug
	case h.IsWarn():
		return hclog.Warn
	default:
		return hclog.Error
	}
}

func (h *hclogger) StandardLogger(*hclog.StandardLoggerOptions) *log.Logger {
	return slog.NewLogLogger(h.l.Handler(), slog.LevelDebug)
}

func (h *hclogger) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return h.StandardLogger(nil).Writer()
}
