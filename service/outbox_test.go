package service

import (
	"testing"
	"time"

	"github.com/edged-dev/edged/store"
)

// recordingStore is a real store that records where each PendingEvents
// read starts.
type recordingStore struct {
	*store.Store
	afters []uint64
}

func (r *recordingStore) PendingEvents(after uint64, max int) ([]store.OutboxEvent, error) {
	r.afters = append(r.afters, after)
	return r.Store.PendingEvents(after, max)
}

func openOutboxStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(store.Options{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func appendOutboxEvents(t *testing.T, st *store.Store, n int) {
	t.Helper()
	for range n {
		if err := st.AppendEvents(store.OutboxEvent{Topic: "events/unknown", Payload: []byte(`{}`), Time: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStoreOutboxReadsFromLastAck: once events are acknowledged, Pending
// starts after them, not at seq 1 (past every tombstone), and still
// returns exactly the events not acknowledged, in order.
func TestStoreOutboxReadsFromLastAck(t *testing.T) {
	st := openOutboxStore(t)
	appendOutboxEvents(t, st, 5)
	rec := &recordingStore{Store: st}
	box := &StoreOutbox{st: rec}

	seqs := func(n int) []uint64 {
		t.Helper()
		evs, err := box.Pending(n)
		if err != nil {
			t.Fatal(err)
		}
		var out []uint64
		for _, e := range evs {
			out = append(out, e.Seq)
		}
		return out
	}
	if got := seqs(2); len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Fatalf("first Pending: %v", got)
	}
	for _, s := range []uint64{1, 2} {
		if err := box.Ack(s); err != nil {
			t.Fatal(err)
		}
	}
	if got := seqs(10); len(got) != 3 || got[0] != 3 || got[2] != 5 {
		t.Fatalf("Pending after acking 1 and 2: %v", got)
	}
	if last := rec.afters[len(rec.afters)-1]; last != 2 {
		t.Fatalf("Pending read after seq %d, want after the last acknowledged one (2)", last)
	}
	// Not acknowledged yet: the same events again, from the same place.
	if got := seqs(10); len(got) != 3 || got[0] != 3 {
		t.Fatalf("Pending again: %v", got)
	}
	// An acknowledgement out of order does not skip the older event.
	if err := box.Ack(4); err != nil {
		t.Fatal(err)
	}
	if got := seqs(10); len(got) != 2 || got[0] != 3 || got[1] != 5 {
		t.Fatalf("Pending after acking 4 alone: %v", got)
	}
	for _, s := range []uint64{3, 5} {
		if err := box.Ack(s); err != nil {
			t.Fatal(err)
		}
	}
	if got := seqs(10); len(got) != 0 {
		t.Fatalf("Pending with everything acknowledged: %v", got)
	}
	appendOutboxEvents(t, st, 1)
	if got := seqs(10); len(got) != 1 || got[0] != 6 {
		t.Fatalf("Pending after a new append: %v", got)
	}
	if last := rec.afters[len(rec.afters)-1]; last < 3 {
		t.Fatalf("Pending read after seq %d, want at least 3", last)
	}
}

// TestStoreOutboxStartsAtOldestAfterRestart: a new outbox over a store
// whose first events were acknowledged before moves its start to the
// oldest event left on its first read.
func TestStoreOutboxStartsAtOldestAfterRestart(t *testing.T) {
	st := openOutboxStore(t)
	appendOutboxEvents(t, st, 4)
	for s := uint64(1); s <= 3; s++ {
		if err := st.AckEvent(s); err != nil {
			t.Fatal(err)
		}
	}
	rec := &recordingStore{Store: st}
	box := &StoreOutbox{st: rec}
	for range 2 {
		evs, err := box.Pending(10)
		if err != nil || len(evs) != 1 || evs[0].Seq != 4 {
			t.Fatalf("Pending: %+v %v", evs, err)
		}
	}
	if rec.afters[0] != 0 || rec.afters[1] != 3 {
		t.Fatalf("reads started after %v, want [0 3]", rec.afters)
	}
}
