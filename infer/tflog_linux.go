package infer

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"regexp"
	"sync"
	"syscall"
)

// TensorFlow 2.18 logs through two systems: its own (honours
// TF_CPP_MIN_LOG_LEVEL, but latches the level when libtensorflow logs its
// first line while loading, before any Go code runs) and absl (ignores it:
// "WARNING: All log messages before absl::InitializeLog() ..." and the MLIR
// pass notice). The only in-process way to keep their start-up chatter off
// the terminal is to catch fd 2 while the session starts and runs once, then
// pass on everything that is not a TensorFlow INFO/WARNING line (errors
// stay visible, and so does anything else the process wrote meanwhile).

var stderrMu sync.Mutex // one capture at a time

var (
	tfLogLine  = regexp.MustCompile(`^(?:[IW]\d{4} [\d:.]+ +\d+ \S+:\d+\] |\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IW] \S+:\d+\] )`)
	tfLogNoise = []string{
		"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
		"To enable the following instructions:", // second line of cpu_feature_guard's notice
	}
)

// quietTF runs fn with fd 2 captured; afterwards the captured output goes to
// stderr, without TensorFlow's informational lines unless keepAll.
func quietTF(keepAll bool, fn func() error) error {
	if keepAll {
		return fn()
	}
	stderrMu.Lock()
	defer stderrMu.Unlock()
	saved, err := syscall.Dup(2)
	if err != nil {
		return fn()
	}
	defer syscall.Close(saved)
	r, w, err := os.Pipe()
	if err != nil {
		return fn()
	}
	if err := syscall.Dup3(int(w.Fd()), 2, 0); err != nil {
		r.Close()
		w.Close()
		return fn()
	}
	var captured bytes.Buffer
	copied := make(chan struct{})
	go func() {
		io.Copy(&captured, r)
		close(copied)
	}()
	// Deferred, so it runs on every path: after a panic in fn the runtime
	// prints the message to fd 2 once the deferred calls ran, which must be
	// the real stderr again, not a pipe nobody reads.
	defer func() {
		syscall.Dup3(saved, 2, 0)
		w.Close()
		<-copied
		r.Close()
		filterTFLog(os.Stderr, captured.Bytes())
	}()
	return fn()
}

// filterTFLog writes the lines of b to out, except TensorFlow's INFO and
// WARNING lines.
func filterTFLog(out io.Writer, b []byte) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if tfLogLine.MatchString(line) || hasNoisePrefix(line) {
			continue
		}
		io.WriteString(out, line+"\n")
	}
}

func hasNoisePrefix(line string) bool {
	for _, p := range tfLogNoise {
		if len(line) >= len(p) && line[:len(p)] == p {
			return true
		}
	}
	return false
}
