package facefile

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/edged-dev/edged/internal/imagefile"
	"github.com/edged-dev/edged/internal/progress"
)

// Inputs expands the command line's paths and the list file (one path a
// line; "-" reads stdin) into the ordered list of files: a directory
// becomes its image files, walked recursively in sorted order; other paths
// are kept as given (a missing file is reported on its own line later).
func Inputs(args []string, list string, stdin io.Reader) ([]string, error) {
	all := append([]string(nil), args...)
	if list != "" {
		var r io.Reader = stdin
		if list != "-" {
			f, err := os.Open(list)
			if err != nil {
				return nil, fmt.Errorf("--list: %w", err)
			}
			defer f.Close()
			r = f
		}
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		for sc.Scan() {
			if line := strings.TrimRight(sc.Text(), "\r"); strings.TrimSpace(line) != "" {
				all = append(all, line)
			}
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("--list %s: %w", list, err)
		}
	}
	var out []string
	for _, p := range all {
		st, err := os.Stat(p)
		if err != nil || !st.IsDir() {
			out = append(out, p)
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				out = append(out, path) // unreadable: reported as an error line
				if d != nil && d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			if !d.IsDir() && imagefile.IsImageName(d.Name()) {
				out = append(out, path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// RunOrdered processes paths with `workers` goroutines and writes the line
// process returns for each path to w (a newline added), in input order;
// process reports a failed path with ok=false, its line saying why. bar
// (nil: none) counts the paths done. It returns the number of failures; a
// cancelled ctx stops it early with ctx's error.
func RunOrdered(ctx context.Context, paths []string, workers int, process func(path string) (line []byte, ok bool), w io.Writer, bar *progress.Bar) (int, error) {
	type result struct {
		i      int
		line   []byte
		failed bool
	}
	jobs := make(chan int)
	results := make(chan result, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				line, ok := process(paths[i])
				results <- result{i: i, line: line, failed: !ok}
			}
		}()
	}
	go func() {
		defer close(jobs)
		for i := range paths {
			select {
			case jobs <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() {
		wg.Wait()
		close(results)
	}()

	bw := bufio.NewWriter(w)
	defer bw.Flush()
	defer bar.Finish()
	pending := map[int]result{}
	next, failed := 0, 0
	var writeErr error
	for r := range results {
		pending[r.i] = r
		bar.Add(1)
		for {
			r, ok := pending[next]
			if !ok {
				break
			}
			delete(pending, next)
			next++
			if r.failed {
				failed++
			}
			if writeErr == nil {
				_, writeErr = bw.Write(append(r.line, '\n'))
			}
		}
		if len(pending) == 0 {
			bw.Flush() // keep a slow run's output flowing
		}
	}
	if writeErr != nil {
		return failed, writeErr
	}
	if next < len(paths) {
		if err := ctx.Err(); err != nil {
			return failed, err
		}
		return failed, errors.New("stopped early")
	}
	return failed, nil
}
