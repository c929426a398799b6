package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/term"

	"github.com/edged-dev/edged/internal/progress"
)

// defaultModelDir finds the model files: $EDGED_MODELS, then the install
// layout (<prefix>/bin/edged -> <prefix>/share/edged/models), then the
// checkout's .deps/models (make setup).
func defaultModelDir() string {
	if d := os.Getenv("EDGED_MODELS"); d != "" {
		return d
	}
	if exe, err := os.Executable(); err == nil {
		exe, _ = filepath.EvalSymlinks(exe)
		for _, d := range []string{
			filepath.Join(filepath.Dir(exe), "..", "share", "edged", "models"),
			filepath.Join(filepath.Dir(exe), "..", ".deps", "models"),
		} {
			if st, err := os.Stat(d); err == nil && st.IsDir() {
				return filepath.Clean(d)
			}
		}
	}
	return filepath.Join(".deps", "models")
}

// resolveDataDir applies the documented order: the --data flag, then the
// config's data directory, then $STATE_DIRECTORY (systemd), then ./edged-data.
func resolveDataDir(flagValue, configValue string) string {
	switch {
	case flagValue != "":
		return flagValue
	case configValue != "":
		return configValue
	case os.Getenv("STATE_DIRECTORY") != "":
		// systemd may pass several colon-separated directories; the first is ours.
		return strings.Split(os.Getenv("STATE_DIRECTORY"), ":")[0]
	default:
		return "edged-data"
	}
}

// newLogger returns a text logger on a terminal and a JSON logger otherwise
// (systemd's journal), at debug level when asked.
func newLogger(debug bool, jsonOut bool) *slog.Logger {
	level := slog.LevelInfo
	if debug {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	if jsonOut || (!isTerminal(os.Stderr) && os.Getenv("JOURNAL_STREAM") != "") {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// progressBar is a progress bar on stderr (package progress).
type progressBar = progress.Bar

// newProgressBar returns a bar on stderr when it is a terminal, else nil.
func newProgressBar(label string, total int) *progressBar {
	if !isTerminal(os.Stderr) {
		return nil
	}
	return progress.New(os.Stderr, label, total)
}

// evalCommands are the `edged eval KIND` subcommands (lfw, fewshot, ...),
// each registered by its own file.
var evalCommands = map[string]func(ctx context.Context, args []string) (int, error){}

func registerEval(kind string, fn func(ctx context.Context, args []string) (int, error)) {
	if _, dup := evalCommands[kind]; dup {
		panic("edged: duplicate eval kind " + kind)
	}
	evalCommands[kind] = fn
}

func init() {
	register(&Command{
		Name:  "eval",
		Usage: "KIND [flags]   (KIND: lfw, fewshot)",
		Short: "measure accuracy: LFW verification, few-shot open-set identification",
		Run: func(ctx context.Context, args []string) (int, error) {
			kinds := make([]string, 0, len(evalCommands))
			for k := range evalCommands {
				kinds = append(kinds, k)
			}
			sort.Strings(kinds)
			if len(args) == 0 {
				return exitUsage, usageError("missing KIND (one of %s)", strings.Join(kinds, ", "))
			}
			fn, ok := evalCommands[args[0]]
			if !ok {
				return exitUsage, usageError("unknown KIND %q (one of %s)", args[0], strings.Join(kinds, ", "))
			}
			return fn(ctx, args[1:])
		},
	})
}

func writeJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
