package store

import (
	"fmt"
	"path/filepath"
	"testing"
)

// BenchmarkEnrollTransaction measures the store's part of an enrollment:
// one transaction with a person, 5 samples (128-d), the clusters record and
// an outbox event, with and without fsync.
func BenchmarkEnrollTransaction(b *testing.B) {
	for _, sync := range []bool{true, false} {
		b.Run(fmt.Sprintf("fsync=%v", sync), func(b *testing.B) {
			st, err := Open(Options{Dir: filepath.Join(b.TempDir(), "db"), NoSync: !sync})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			emb := vec(0.5, 128)
			for i := 0; b.Loop(); i++ {
				err := st.Update(func(tx *Tx) error {
					p := Person{Name: fmt.Sprintf("p%d", i)}
					if err := tx.PutPerson(&p); err != nil {
						return err
					}
					ids := make([]string, 5)
					for j := range ids {
						s := Sample{PersonID: p.ID, Embedding: emb, Quality: 0.8, Source: SourceFile}
						if err := tx.AddSample(&s, nil); err != nil {
							return err
						}
						ids[j] = s.ID
					}
					if err := tx.PutClusters(p.ID, Clusters{Clusters: []Cluster{{Centroid: emb, Count: 5, Samples: ids}}}); err != nil {
						return err
					}
					return tx.AppendEvents(OutboxEvent{Topic: "events/enrolled", Payload: []byte(p.ID)})
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAppendEvent measures one durable outbox append.
func BenchmarkAppendEvent(b *testing.B) {
	st, err := Open(Options{Dir: filepath.Join(b.TempDir(), "db")})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	payload := []byte(`{"type":"recognized","camera":"door","person_id":"01ABC","distance":0.31,"confidence":0.97}`)
	for b.Loop() {
		if err := st.AppendEvents(OutboxEvent{Topic: "events/recognized", Payload: payload, Camera: "door"}); err != nil {
			b.Fatal(err)
		}
	}
}
