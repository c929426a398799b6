package config

import (
	"errors"
	"strings"
)

var (
	// ErrRead is returned (wrapped) when the configuration file cannot be read.
	ErrRead = errors.New("read config")
	// ErrSyntax is returned (wrapped) when the file is not valid YAML.
	ErrSyntax = errors.New("config is not valid yaml")
	// ErrInvalid is matched by every *ValidationError (errors.Is).
	ErrInvalid = errors.New("invalid config")
)

// Problem is one thing wrong with a configuration: the key it is about, in
// the dotted form docs/config.md uses (cameras[1].fps), and what is wrong.
type Problem struct {
	Key     string
	Message string
}

func (p Problem) String() string {
	if p.Key == "" {
		return p.Message
	}
	return p.Key + ": " + p.Message
}

// ValidationError lists every problem found in a configuration, so a user
// fixes them all in one go rather than one per restart.
type ValidationError struct {
	File     string // the file the problems are in, "" for flags/defaults
	Problems []Problem
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("invalid config")
	if e.File != "" {
		b.WriteString(" ")
		b.WriteString(e.File)
	}
	b.WriteString(":")
	if len(e.Problems) == 1 {
		b.WriteString(" ")
		b.WriteString(e.Problems[0].String())
		return b.String()
	}
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// Is makes errors.Is(err, ErrInvalid) true for every validation error.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// problems collects Problems; add is a no-op for an empty message.
type problems []Problem

func (ps *problems) add(key, format string, a ...any) {
	*ps = append(*ps, Problem{Key: key, Message: sprintf(format, a...)})
}
