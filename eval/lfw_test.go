package eval

import (
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/edged-dev/edged/face"
)

// TestLFWVerifyFake drives LFWVerify with a fake LFWEmbed: a person's
// images embed near one axis, scaled (as raw MobileFaceNet outputs are),
// so only the normalised distance separates them.
func TestLFWVerifyFake(t *testing.T) {
	pairs := []LFWPair{
		{A: "A/A_0001.jpg", B: "A/A_0002.jpg", Same: true, Fold: 0},
		{A: "B/B_0001.jpg", B: "B/B_0002.jpg", Same: true, Fold: 0},
		{A: "A/A_0001.jpg", B: "B/B_0001.jpg", Same: false, Fold: 0},
		{A: "A/A_0002.jpg", B: "B/B_0002.jpg", Same: false, Fold: 0},
	}
	var calls atomic.Int32
	embed := func(path string) (face.Embedding, bool, error) {
		calls.Add(1)
		rel := filepath.Base(path)
		v := make(face.Embedding, 4)
		scale := float32(1)
		if strings.HasSuffix(rel, "2.jpg") {
			scale = 70
		}
		if strings.HasPrefix(rel, "A") {
			v[0], v[1] = scale, scale*0.05
		} else {
			v[2], v[3] = scale, scale*0.05
		}
		return v, !strings.HasPrefix(rel, "B_0002"), nil
	}
	done := 0
	rep, roc, err := LFWVerify(t.Context(), pairs, embed, LFWOptions{Images: "/lfw", Crop: "aligned", Backbone: "x", Workers: 2,
		Progress: func(d, total int) { done = d }})
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 4 || done != 4 || rep.Images != 4 || rep.NoFace != 1 || rep.Pairs != 4 || rep.DifferentPairs != 2 {
		t.Fatalf("report %+v after %d calls", rep, calls.Load())
	}
	if rep.Distance != "euclidean-normalised" || rep.Accuracy != 1 || len(roc) == 0 {
		t.Fatalf("normalised: %+v", rep)
	}
	raw, _, err := LFWVerify(t.Context(), pairs, embed, LFWOptions{RawDistance: true})
	if err != nil {
		t.Fatal(err)
	}
	if raw.Distance != "euclidean-raw" || raw.Accuracy == 1 {
		t.Fatalf("raw distances cannot separate scaled vectors: %+v", raw)
	}

	bad := func(path string) (face.Embedding, bool, error) {
		if strings.Contains(path, "B_0001") {
			return nil, false, errors.New("unreadable")
		}
		return embed(path)
	}
	if _, _, err := LFWVerify(t.Context(), pairs, bad, LFWOptions{}); err == nil || !strings.Contains(err.Error(), "1 of 4 images") {
		t.Fatalf("err = %v", err)
	}
}
