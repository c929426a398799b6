// Package progress draws a progress bar on one terminal line.
package progress

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Bar draws "[=====>    ] 120/1181  38.2/s  ETA 28s" on one terminal
// line, at most every 100 ms. A nil *Bar (not a terminal) does nothing, so
// callers need no checks.
type Bar struct {
	mu    sync.Mutex
	w     io.Writer
	label string
	total int
	done  int
	start time.Time
	last  time.Time
}

// New returns a bar on w (a terminal) for total items, or nil when total
// is not positive.
func New(w io.Writer, label string, total int) *Bar {
	if total <= 0 {
		return nil
	}
	return &Bar{w: w, label: label, total: total, start: time.Now()}
}

// Add counts n more items done and redraws when due.
func (p *Bar) Add(n int) {
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

func (p *Bar) draw(now time.Time) {
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
func (p *Bar) Finish() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprint(p.w, "\r\x1b[K")
}
