package agent

// The daemon's logging: log.level and log.format.

import (
	"context"
	"log/slog"
	"os"

	"golang.org/x/term"

	"github.com/edged-dev/edged/config"
)

// NewLogger builds the logger from log.level and log.format; the level
// can change on reload. --debug forces debug.
func NewLogger(l config.Log, debug bool) (*slog.Logger, *slog.LevelVar) {
	lv := new(slog.LevelVar)
	lv.Set(parseLevel(l.Level))
	if debug {
		lv.Set(slog.LevelDebug)
	}
	opts := &slog.HandlerOptions{Level: lv}
	jsonOut := l.Format == "json" ||
		(l.Format == "auto" && !term.IsTerminal(int(os.Stderr.Fd())) && os.Getenv("JOURNAL_STREAM") != "")
	if jsonOut {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), lv
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts)), lv
}

func parseLevel(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return slog.LevelInfo
	}
	return l
}

// minLevel drops records below a level (the embedded broker's chatty
// info logs: hooks added, listeners attached).
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(a []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(a), h.min}
}
func (h minLevel) WithGroup(n string) slog.Handler { return minLevel{h.Handler.WithGroup(n), h.min} }
