// Package metrics is a small Prometheus registry: counters, gauges
// (set or computed at scrape time) and histograms with labels, written in
// the Prometheus text exposition format (version 0.0.4). It exists so edged
// does not pull in the Prometheus client library for a dozen series.
//
// All methods are safe for concurrent use; recording is lock-free after a
// series' first use.
package metrics

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Registry holds metric families in registration order.
type Registry struct {
	mu       sync.Mutex
	families []*family
	names    map[string]bool
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{names: map[string]bool{}} }

type kind int

const (
	kindCounter kind = iota
	kindGauge
	kindHistogram
)

func (k kind) String() string {
	return [...]string{"counter", "gauge", "histogram"}[k]
}

type family struct {
	name, help string
	kind       kind
	labels     []string
	buckets    []float64 // histograms

	mu     sync.Mutex
	series map[string]*series // key: joined label values
	order  []string

	collect func(emit func(value float64, labelValues ...string)) // computed at scrape
}

type series struct {
	labelValues []string
	bits        atomic.Uint64 // float64 value (counter / gauge)
	// histogram
	counts []atomic.Uint64 // per bucket (not cumulative)
	count  atomic.Uint64
	sum    atomic.Uint64 // float64 bits, updated by CAS
}

func (r *Registry) add(f *family) *family {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.names[f.name] {
		panic("metrics: duplicate metric " + f.name)
	}
	r.names[f.name] = true
	f.series = map[string]*series{}
	r.families = append(r.families, f)
	return f
}

func (f *family) with(values []string) *series {
	if len(values) != len(f.labels) {
		panic(fmt.Sprintf("metrics: %s wants %d label values, got %d", f.name, len(f.labels), len(values)))
	}
	key := strings.Join(values, "\xff")
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.series[key]
	if !ok {
		s = &series{labelValues: append([]string(nil), values...)}
		if f.kind == kindHistogram {
			s.counts = make([]atomic.Uint64, len(f.buckets)+1)
		}
		f.series[key] = s
		f.order = append(f.order, key)
	}
	return s
}

// CounterVec is a counter family.
type CounterVec struct{ f *family }

// Counter is one counter series.
type Counter struct{ s *series }

// Counter registers a counter family with the given label names.
func (r *Registry) Counter(name, help string, labels ...string) *CounterVec {
	return &CounterVec{r.add(&family{name: name, help: help, kind: kindCounter, labels: labels})}
}

// With returns the series for the label values (created on first use).
func (v *CounterVec) With(labelValues ...string) Counter { return Counter{v.f.with(labelValues)} }

// Inc adds one.
func (c Counter) Inc() { c.Add(1) }

// Add adds n (n must not be negative).
func (c Counter) Add(n float64) { addFloat(&c.s.bits, n) }

// Value returns the current value.
func (c Counter) Value() float64 { return math.Float64frombits(c.s.bits.Load()) }

// GaugeVec is a gauge family.
type GaugeVec struct{ f *family }

// Gauge is one gauge series.
type Gauge struct{ s *series }

// Gauge registers a gauge family.
func (r *Registry) Gauge(name, help string, labels ...string) *GaugeVec {
	return &GaugeVec{r.add(&family{name: name, help: help, kind: kindGauge, labels: labels})}
}

// With returns the series for the label values.
func (v *GaugeVec) With(labelValues ...string) Gauge { return Gauge{v.f.with(labelValues)} }

// Set sets the value.
func (g Gauge) Set(x float64) { g.s.bits.Store(math.Float64bits(x)) }

// Add adds x (may be negative).
func (g Gauge) Add(x float64) { addFloat(&g.s.bits, x) }

// Value returns the current value.
func (g Gauge) Value() float64 { return math.Float64frombits(g.s.bits.Load()) }

// GaugeFunc registers a gauge family whose series are computed at scrape
// time by collect, which calls emit once per series.
func (r *Registry) GaugeFunc(name, help string, labels []string, collect func(emit func(value float64, labelValues ...string))) {
	r.add(&family{name: name, help: help, kind: kindGauge, labels: labels, collect: collect})
}

// CounterFunc is GaugeFunc for a counter read from elsewhere (e.g. a
// package's own statistics).
func (r *Registry) CounterFunc(name, help string, labels []string, collect func(emit func(value float64, labelValues ...string))) {
	r.add(&family{name: name, help: help, kind: kindCounter, labels: labels, collect: collect})
}

// LatencyBuckets are histogram bounds in seconds from 50 µs to ~10 s,
// about 1.5x apart: fine enough for edged bench's percentiles.
var LatencyBuckets = func() []float64 {
	var b []float64
	for x := 0.00005; x < 12; x *= 1.5 {
		b = append(b, math.Round(x*1e7)/1e7)
	}
	return b
}()

// HistogramVec is a histogram family.
type HistogramVec struct{ f *family }

// Histogram is one histogram series.
type Histogram struct {
	s       *series
	buckets []float64
}

// Histogram registers a histogram family with the given upper bounds
// (ascending; +Inf is implicit).
func (r *Registry) Histogram(name, help string, buckets []float64, labels ...string) *HistogramVec {
	b := append([]float64(nil), buckets...)
	sort.Float64s(b)
	return &HistogramVec{r.add(&family{name: name, help: help, kind: kindHistogram, labels: labels, buckets: b})}
}

// With returns the series for the label values.
func (v *HistogramVec) With(labelValues ...string) Histogram {
	return Histogram{v.f.with(labelValues), v.f.buckets}
}

// Observe records one value.
func (h Histogram) Observe(x float64) {
	i := sort.SearchFloat64s(h.buckets, x) // first bound >= x
	h.s.counts[i].Add(1)
	h.s.count.Add(1)
	addFloat(&h.s.sum, x)
}

// Count returns the number of observations.
func (h Histogram) Count() uint64 { return h.s.count.Load() }

// Sum returns the sum of the observations.
func (h Histogram) Sum() float64 { return math.Float64frombits(h.s.sum.Load()) }

// Quantile estimates the q-quantile (0..1) by linear interpolation inside
// the bucket that holds it; NaN without observations.
func (h Histogram) Quantile(q float64) float64 {
	n := h.s.count.Load()
	if n == 0 {
		return math.NaN()
	}
	rank := q * float64(n)
	var cum float64
	for i := range h.s.counts {
		c := float64(h.s.counts[i].Load())
		if cum+c >= rank && c > 0 {
			lo := 0.0
			if i > 0 {
				lo = h.buckets[i-1]
			}
			if i == len(h.buckets) { // +Inf bucket: report its lower bound
				return lo
			}
			return lo + (h.buckets[i]-lo)*(rank-cum)/c
		}
		cum += c
	}
	return h.buckets[len(h.buckets)-1]
}

func addFloat(bits *atomic.Uint64, x float64) {
	for {
		old := bits.Load()
		if bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+x)) {
			return
		}
	}
}

// WriteText writes every family in the Prometheus text format.
func (r *Registry) WriteText(w io.Writer) error {
	r.mu.Lock()
	fams := append([]*family(nil), r.families...)
	r.mu.Unlock()
	var b strings.Builder
	for _, f := range fams {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", f.name, escapeHelp(f.help), f.name, f.kind)
		if f.collect != nil {
			f.collect(func(v float64, lv ...string) {
				if len(lv) != len(f.labels) {
					return
				}
				writeSample(&b, f.name, f.labels, lv, "", "", v)
			})
			continue
		}
		f.mu.Lock()
		keys := append([]string(nil), f.order...)
		f.mu.Unlock()
		for _, k := range keys {
			f.mu.Lock()
			s := f.series[k]
			f.mu.Unlock()
			switch f.kind {
			case kindHistogram:
				var cum uint64
				for i, ub := range f.buckets {
					cum += s.counts[i].Load()
					writeSample(&b, f.name+"_bucket", f.labels, s.labelValues, "le", formatFloat(ub), float64(cum))
				}
				cum += s.counts[len(f.buckets)].Load()
				writeSample(&b, f.name+"_bucket", f.labels, s.labelValues, "le", "+Inf", float64(cum))
				writeSample(&b, f.name+"_sum", f.labels, s.labelValues, "", "", math.Float64frombits(s.sum.Load()))
				writeSample(&b, f.name+"_count", f.labels, s.labelValues, "", "", float64(s.count.Load()))
			default:
				writeSample(&b, f.name, f.labels, s.labelValues, "", "", math.Float64frombits(s.bits.Load()))
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeSample(b *strings.Builder, name string, labels, values []string, extraK, extraV string, v float64) {
	b.WriteString(name)
	if len(labels) > 0 || extraK != "" {
		b.WriteByte('{')
		for i, l := range labels {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(b, "%s=\"%s\"", l, escapeLabel(values[i]))
		}
		if extraK != "" {
			if len(labels) > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(b, "%s=\"%s\"", extraK, extraV)
		}
		b.WriteByte('}')
	}
	b.WriteByte(' ')
	b.WriteString(formatFloat(v))
	b.WriteByte('\n')
}

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

var (
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
)

func escapeLabel(s string) string { return labelEscaper.Replace(s) }
func escapeHelp(s string) string  { return helpEscaper.Replace(s) }

// Handler serves the registry at any path with the text content type.
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_ = r.WriteText(w)
	})
}
