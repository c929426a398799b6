package enroll

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/edged-dev/edged/gallery"
	"github.com/edged-dev/edged/store"
)

// BenchmarkEnrollCommit measures one enrollment of 5 faces given as
// embeddings (no detection or network): the transaction (person, samples,
// clusters, event), with and without fsync, and the gallery update, in a
// gallery of 100 people.
func BenchmarkEnrollCommit(b *testing.B) {
	for _, sync := range []bool{true, false} {
		b.Run(fmt.Sprintf("fsync=%v", sync), func(b *testing.B) {
			st, err := store.Open(store.Options{Dir: filepath.Join(b.TempDir(), "db"), NoSync: !sync})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			w := newWorld(&testing.T{})
			g := gallery.New(gallery.Options{})
			events := func(r Result) []store.OutboxEvent {
				return []store.OutboxEvent{{Topic: "events/enrolled", Payload: []byte(r.PersonID)}}
			}
			en := New(st, g, nil, nil, Options{Events: events})
			faces := func() []Embedding {
				fs := make([]Embedding, 5)
				c := w.unit()
				for i := range fs {
					fs[i] = Embedding{Embedding: w.near(c, 0.2), Quality: 0.8}
				}
				return fs
			}
			for i := 0; i < 100; i++ {
				if _, err := en.EnrollEmbeddings(context.Background(), fmt.Sprintf("seed-%d", i), "", faces()); err != nil {
					b.Fatal(err)
				}
			}
			batch := make([][]Embedding, 0, 1024)
			for i := 0; i < cap(batch); i++ {
				batch = append(batch, faces())
			}
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if _, err := en.EnrollEmbeddings(context.Background(), fmt.Sprintf("p-%d", i), "", batch[i%len(batch)]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
