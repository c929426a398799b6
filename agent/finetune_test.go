package agent

import (
	"math"
	"testing"

	"github.com/edged-dev/edged/finetune"
)

// The progress fraction covers every training round of a job (guard folds,
// then the final training) and never goes back.
func TestProgressEventSpansRounds(t *testing.T) {
	cases := []struct {
		p    finetune.Progress
		want float64
	}{
		{finetune.Progress{Step: 50, Steps: 100}, 0.5}, // no rounds reported
		{finetune.Progress{Round: 1, Rounds: 4, Step: 50, Steps: 100}, 0.125},
		{finetune.Progress{Round: 2, Rounds: 4, Step: 0, Steps: 100}, 0.25},
		{finetune.Progress{Round: 4, Rounds: 4, Step: 100, Steps: 100}, 1},
	}
	prev := -1.0
	for _, c := range cases {
		ev := progressEvent("job", c.p)
		if math.Abs(ev.Progress-c.want) > 1e-9 {
			t.Errorf("%+v: progress %v, want %v", c.p, ev.Progress, c.want)
		}
		if c.p.Rounds > 0 {
			if ev.Progress < prev {
				t.Errorf("%+v: progress went back from %v to %v", c.p, prev, ev.Progress)
			}
			prev = ev.Progress
		}
	}
}
