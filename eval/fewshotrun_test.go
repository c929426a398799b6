package eval

import (
	"fmt"
	"slices"
	"testing"
)

func TestFewshotSplitSeenStrangers(t *testing.T) {
	var all []string
	for i := 0; i < 11; i++ {
		all = append(all, fmt.Sprintf("p%02d", i))
	}
	tests := []struct {
		frac     float64
		wantSeen int
	}{{0, 0}, {0.5, 6}, {0.25, 3}, {0.01, 0}}
	for _, tc := range tests {
		seen, probes := splitSeenStrangers(all, tc.frac)
		if len(seen) != tc.wantSeen || len(seen)+len(probes) != len(all) {
			t.Fatalf("frac %g: %d seen, %d probes; want %d seen of %d", tc.frac, len(seen), len(probes), tc.wantSeen, len(all))
		}
		for _, p := range seen {
			if slices.Contains(probes, p) {
				t.Fatalf("frac %g: %s is seen and a probe", tc.frac, p)
			}
		}
		again, _ := splitSeenStrangers(all, tc.frac)
		if !slices.Equal(seen, again) {
			t.Fatalf("frac %g: split not reproducible: %v vs %v", tc.frac, seen, again)
		}
	}
}
