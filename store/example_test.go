package store_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/edged-dev/edged/store"
)

// Open a store, enroll a person with one sample and an event in one
// transaction, read them back, and run the value-log GC until shutdown.
func ExampleOpen() {
	dir, _ := os.MkdirTemp("", "edged-example-")
	defer os.RemoveAll(dir)

	st, err := store.Open(store.DefaultOptions(filepath.Join(dir, "data")))
	if err != nil {
		fmt.Println(err) // ErrLocked, ErrWrongKey, ErrCorrupt, ErrSchemaTooNew ...
		return
	}
	defer st.Close()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go st.RunGC(ctx) // returns when ctx ends or the store closes

	err = st.Update(func(tx *store.Tx) error {
		p := store.Person{Name: "Alice"}
		if err := tx.PutPerson(&p); err != nil {
			return err
		}
		raw := make([]float32, 128) // the backbone's raw embedding
		raw[0] = 1.4
		if err := tx.AddSample(&store.Sample{PersonID: p.ID, Embedding: raw, Quality: 0.9, Source: store.SourceFile, Ref: "alice.jpg"}, nil); err != nil {
			return err
		}
		return tx.AppendEvents(store.OutboxEvent{Topic: "events/enrolled", Payload: []byte(`{"name":"Alice"}`)})
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	p, _ := st.FindPerson("alice")
	samples, _ := st.Samples(p.ID)
	events, _ := st.PendingEvents(0, 10)
	fmt.Println(p.Name, len(samples), samples[0].Ref)
	fmt.Println(events[0].Seq, events[0].Topic)
	// Output:
	// Alice 1 alice.jpg
	// 1 events/enrolled
}
