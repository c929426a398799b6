package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// progressBar draws "[=====>    ] 120/1181  38.2/s  ETA 28s" on one
// terminal line (stderr), at most every 100 ms. A nil *progressBar (not a
// terminal) does nothing, so callers need no checks.
type progressBar struct {
	mu    sync.Mutex
	w     io.Writer
	label string
	total int
	done  int
	start time.Time
	last  time.Time
}

// newProgressBar returns a bar on stderr when it is a terminal, else nil.
func newProgressBar(label string, total int) *progressBar {
	if !isTerminal(os.Stderr) || total <= 0 {
		return nil
	}
	return &progressBar{w: os.Stderr, label: label, total: total, start: time.Now()}
}

// Add counts n more items done and redraws when due.
func (p *progressBar) Add(n int) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	if now := time.Now(); now.Sub(p.last) >= 100*time.Millisecond || p.done >= p.total {
		p.last = now
		p.draw(now)
	}
}

func (p *progressBar) draw(now time.Time) {
	const width = 30
	frac := float64(p.done) / float64(p.total)
	fill := min(int(frac*width), width)
	bar := strings.Repeat("=", fill)
	if fill < width {
		bar += ">" + strings.Repeat(" ", width-fill-1)
	}
	el := now.Sub(p.start).Seconds()
	rate, eta := 0.0, ""
	if el > 0 && p.done > 0 {
		rate = float64(p.done) / el
		eta = "  ETA " + time.Duration(float64(p.total-p.done)/rate*float64(time.Second)).Round(time.Second).String()
	}
	fmt.Fprintf(p.w, "\r%s [%s] %d/%d  %.1f/s%s\x1b[K", p.label, bar, p.done, p.total, rate, eta)
}

// Finish clears the bar's line.
func (p *progressBar) Finish() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprint(p.w, "\r\x1b[K")
}
