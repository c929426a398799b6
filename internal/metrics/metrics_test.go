package metrics

import (
	"math"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

func TestExposition(t *testing.T) {
	r := NewRegistry()
	frames := r.Counter("edged_frames_total", "Frames captured.", "camera")
	depth := r.Gauge("edged_queue_depth", "Items waiting.", "camera", "queue")
	lat := r.Histogram("edged_stage_seconds", "Stage latency.", []float64{0.01, 0.1}, "stage")
	r.GaugeFunc("edged_outbox_depth", "Events waiting.", nil, func(emit func(float64, ...string)) { emit(7) })

	frames.With("door").Add(3)
	frames.With(`a"b`).Inc()
	depth.With("door", "faces").Set(2)
	for _, x := range []float64{0.005, 0.05, 0.05, 2} {
		lat.With("detect").Observe(x)
	}
	var b strings.Builder
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	want := `# HELP edged_frames_total Frames captured.
# TYPE edged_frames_total counter
edged_frames_total{camera="door"} 3
edged_frames_total{camera="a\"b"} 1
# HELP edged_queue_depth Items waiting.
# TYPE edged_queue_depth gauge
edged_queue_depth{camera="door",queue="faces"} 2
# HELP edged_stage_seconds Stage latency.
# TYPE edged_stage_seconds histogram
edged_stage_seconds_bucket{stage="detect",le="0.01"} 1
edged_stage_seconds_bucket{stage="detect",le="0.1"} 3
edged_stage_seconds_bucket{stage="detect",le="+Inf"} 4
edged_stage_seconds_sum{stage="detect"} 2.105
edged_stage_seconds_count{stage="detect"} 4
# HELP edged_outbox_depth Events waiting.
# TYPE edged_outbox_depth gauge
edged_outbox_depth 7
`
	if b.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", b.String(), want)
	}

	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("content type %q", ct)
	}
}

func TestQuantile(t *testing.T) {
	r := NewRegistry()
	h := r.Histogram("h", "", LatencyBuckets).With()
	if !math.IsNaN(h.Quantile(0.5)) {
		t.Error("empty histogram quantile is not NaN")
	}
	for i := 1; i <= 1000; i++ {
		h.Observe(float64(i) / 1000 * 0.1) // uniform over (0, 100ms]
	}
	for _, q := range []float64{0.5, 0.95} {
		got, want := h.Quantile(q), q*0.1
		if math.Abs(got-want)/want > 0.2 {
			t.Errorf("q%.2f = %.4f, want about %.4f", q, got, want)
		}
	}
	if h.Count() != 1000 || math.Abs(h.Sum()-50.05) > 1e-6 {
		t.Errorf("count %d sum %v", h.Count(), h.Sum())
	}
}

func TestConcurrentRecording(t *testing.T) {
	r := NewRegistry()
	c := r.Counter("c", "", "k")
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 1000; j++ {
				c.With("x").Inc()
			}
		}()
	}
	wg.Wait()
	if v := c.With("x").Value(); v != 8000 {
		t.Fatalf("got %v", v)
	}
}

func TestDuplicateAndArityPanic(t *testing.T) {
	r := NewRegistry()
	r.Counter("c", "")
	for name, fn := range map[string]func(){
		"duplicate": func() { r.Gauge("c", "") },
		"arity":     func() { r.Counter("d", "", "a").With() },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			fn()
		}()
	}
}
