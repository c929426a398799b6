package store

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

func newTestStore(t testing.TB) *Store {
	t.Helper()
	st, err := Open(Options{Dir: filepath.Join(t.TempDir(), "db"), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func vec(seed float32, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = seed + float32(i)/float32(n)
	}
	return v
}

func mustPerson(t *testing.T, st *Store, name string) Person {
	t.Helper()
	p := Person{Name: name, Attributes: map[string]string{"team": "blue"}}
	if err := st.Update(func(tx *Tx) error { return tx.PutPerson(&p) }); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPersonSampleRoundTrip(t *testing.T) {
	st := newTestStore(t)
	p := mustPerson(t, st, "  Alice ")
	if p.ID == "" || p.Name != "Alice" || p.Created.IsZero() {
		t.Fatalf("person not filled in: %+v", p)
	}
	chip := []byte("png bytes")
	var s1, s2 Sample
	err := st.Update(func(tx *Tx) error {
		s1 = Sample{PersonID: p.ID, Embedding: vec(1, 128), Quality: 0.9, Source: SourceFile, Ref: "a.jpg"}
		if err := tx.AddSample(&s1, chip); err != nil {
			return err
		}
		s2 = Sample{PersonID: p.ID, Embedding: vec(-2, 128), Quality: 0.5, Source: SourceMQTT}
		if err := tx.AddSample(&s2, nil); err != nil {
			return err
		}
		if err := tx.AddNegative(&Negative{PersonID: p.ID, Embedding: vec(3, 128), Source: SourceTrack, Ref: "cam/7"}); err != nil {
			return err
		}
		return tx.PutClusters(p.ID, Clusters{Head: "h1", Clusters: []Cluster{{Centroid: vec(0.5, 128), Spread: 0.25, Count: 2, Samples: []string{s1.ID, s2.ID}}}})
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := st.Person(p.ID)
	if err != nil || got.Name != "Alice" || got.Attributes["team"] != "blue" || !got.Created.Equal(p.Created) {
		t.Fatalf("Person = %+v, %v", got, err)
	}
	for _, q := range []string{"alice", "ALICE", p.ID} {
		if got, err := st.FindPerson(q); err != nil || got.ID != p.ID {
			t.Fatalf("FindPerson(%q) = %+v, %v", q, got, err)
		}
	}
	ss, err := st.Samples(p.ID)
	if err != nil || len(ss) != 2 {
		t.Fatalf("Samples = %d, %v", len(ss), err)
	}
	if ss[0].ID != s1.ID || !equalVec(ss[0].Embedding, s1.Embedding) || ss[0].Quality != 0.9 || ss[0].Ref != "a.jpg" || !ss[0].HasChip {
		t.Fatalf("sample 1 = %+v", ss[0])
	}
	if ss[1].HasChip || ss[1].Source != SourceMQTT || !equalVec(ss[1].Embedding, s2.Embedding) {
		t.Fatalf("sample 2 = %+v", ss[1])
	}
	err = st.View(func(tx *Tx) error {
		c, err := tx.Chip(p.ID, s1.ID)
		if err != nil || !bytes.Equal(c, chip) {
			t.Errorf("Chip = %q, %v", c, err)
		}
		if c, err := tx.Chip(p.ID, s2.ID); err != nil || c != nil {
			t.Errorf("Chip of sample without chip = %q, %v", c, err)
		}
		ns, err := tx.Negatives(p.ID)
		if err != nil || len(ns) != 1 || ns[0].Ref != "cam/7" || !equalVec(ns[0].Embedding, vec(3, 128)) {
			t.Errorf("Negatives = %+v, %v", ns, err)
		}
		cl, err := tx.Clusters(p.ID)
		if err != nil || cl.Head != "h1" || len(cl.Clusters) != 1 || cl.Clusters[0].Count != 2 || !equalVec(cl.Clusters[0].Centroid, vec(0.5, 128)) {
			t.Errorf("Clusters = %+v, %v", cl, err)
		}
		n, err := tx.SampleCount(p.ID)
		if err != nil || n != 2 {
			t.Errorf("SampleCount = %d, %v", n, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func equalVec(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

func TestNamesAreUniqueAndRenameDelete(t *testing.T) {
	st := newTestStore(t)
	a := mustPerson(t, st, "Alice")
	b := mustPerson(t, st, "Bob")
	if err := st.Update(func(tx *Tx) error { return tx.PutPerson(&Person{Name: "alice"}) }); !errors.Is(err, ErrNameTaken) {
		t.Fatalf("duplicate name: %v, want ErrNameTaken", err)
	}
	if _, err := st.RenamePerson(b.ID, "ALICE"); !errors.Is(err, ErrNameTaken) {
		t.Fatalf("rename onto a taken name: %v", err)
	}
	if _, err := st.RenamePerson(a.ID, "Alicia"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.FindPerson("Alice"); !errors.Is(err, ErrPersonNotFound) {
		t.Fatalf("old name still resolves: %v", err)
	}
	// The old name is free again.
	if _, err := st.RenamePerson(b.ID, "alice"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "   ", "a\x00b", strings.Repeat("x", MaxNameLen+1), "\xff"} {
		if err := st.Update(func(tx *Tx) error { return tx.PutPerson(&Person{Name: bad}) }); !errors.Is(err, ErrInvalidName) {
			t.Errorf("name %q: %v, want ErrInvalidName", bad, err)
		}
	}
	err := st.Update(func(tx *Tx) error {
		if err := tx.AddSample(&Sample{PersonID: a.ID, Embedding: vec(1, 4)}, []byte("c")); err != nil {
			return err
		}
		if err := tx.AddNegative(&Negative{PersonID: a.ID, Embedding: vec(1, 4)}); err != nil {
			return err
		}
		return tx.PutClusters(a.ID, Clusters{Clusters: []Cluster{{Centroid: vec(1, 4), Count: 1}}})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.DeletePerson(a.ID); err != nil {
		t.Fatal(err)
	}
	if err := st.DeletePerson(a.ID); !errors.Is(err, ErrPersonNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	// Nothing of the person is left, and the other person is intact.
	err = st.View(func(tx *Tx) error {
		for _, prefix := range []string{prefixSample, prefixChip, prefixNegative, prefixClusters, prefixPerson + a.ID} {
			_ = tx.scan([]byte(prefix+a.ID), false, func(k, _ []byte) error {
				t.Errorf("left behind: %q", k)
				return nil
			})
		}
		ps, err := tx.People()
		if err != nil || len(ps) != 1 || ps[0].ID != b.ID {
			t.Errorf("People = %+v, %v", ps, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.FindPerson("Alicia"); !errors.Is(err, ErrPersonNotFound) {
		t.Fatalf("deleted person's name still resolves: %v", err)
	}
}

func TestInvalidInputs(t *testing.T) {
	st := newTestStore(t)
	p := mustPerson(t, st, "Alice")
	cases := []struct {
		name string
		fn   func(tx *Tx) error
		want error
	}{
		{"sample of unknown person", func(tx *Tx) error { return tx.AddSample(&Sample{PersonID: "nope", Embedding: vec(1, 4)}, nil) }, ErrPersonNotFound},
		{"sample with slash in person id", func(tx *Tx) error { return tx.AddSample(&Sample{PersonID: "a/b", Embedding: vec(1, 4)}, nil) }, ErrPersonNotFound},
		{"empty embedding", func(tx *Tx) error { return tx.AddSample(&Sample{PersonID: p.ID}, nil) }, ErrInvalidEmbedding},
		{"NaN embedding", func(tx *Tx) error {
			return tx.AddSample(&Sample{PersonID: p.ID, Embedding: []float32{1, float32(math.NaN())}}, nil)
		}, ErrInvalidEmbedding},
		{"Inf negative", func(tx *Tx) error {
			return tx.AddNegative(&Negative{PersonID: p.ID, Embedding: []float32{float32(math.Inf(1))}})
		}, ErrInvalidEmbedding},
		{"clusters of unknown person", func(tx *Tx) error { return tx.PutClusters("nope", Clusters{}) }, ErrPersonNotFound},
		{"bad unknown id", func(tx *Tx) error { _, err := tx.Unknown("unknown-x"); return err }, ErrUnknownNotFound},
		{"missing unknown", func(tx *Tx) error { return tx.DeleteUnknown("unknown-9") }, ErrUnknownNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := st.Update(c.fn); !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
	// A failed callback commits nothing.
	err := st.Update(func(tx *Tx) error {
		if err := tx.PutPerson(&Person{Name: "Half"}); err != nil {
			return err
		}
		return errors.New("boom")
	})
	if err == nil {
		t.Fatal("no error")
	}
	if _, err := st.FindPerson("Half"); !errors.Is(err, ErrPersonNotFound) {
		t.Fatalf("a failed transaction left a person: %v", err)
	}
	// Writes in View are refused.
	if err := st.View(func(tx *Tx) error { return tx.PutPerson(&Person{Name: "X"}) }); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("write in View: %v", err)
	}
}

func TestHeads(t *testing.T) {
	st := newTestStore(t)
	if h, err := st.ActiveHead(); err != nil || h != nil {
		t.Fatalf("ActiveHead on empty store = %v, %v", h, err)
	}
	h1 := HeadVersion{ID: "h1", Created: time.Now().Add(-time.Hour), Weights: []byte{1, 2, 3}, Metrics: map[string]float64{"dir": 0.9}, Note: "first", Active: true}
	h2 := HeadVersion{ID: "h2", Weights: []byte{4}}
	for _, h := range []HeadVersion{h1, h2} {
		if err := st.SaveHead(h); err != nil {
			t.Fatal(err)
		}
	}
	hs, err := st.Heads()
	if err != nil || len(hs) != 2 || hs[0].ID != "h1" || !bytes.Equal(hs[0].Weights, []byte{1, 2, 3}) || hs[0].Metrics["dir"] != 0.9 {
		t.Fatalf("Heads = %+v, %v", hs, err)
	}
	if a, _ := st.ActiveHead(); a == nil || a.ID != "h1" {
		t.Fatalf("active = %+v", a)
	}
	if err := st.ActivateHead("h2"); err != nil {
		t.Fatal(err)
	}
	hs, _ = st.Heads()
	if hs[0].Active || !hs[1].Active {
		t.Fatalf("more than one active, or the wrong one: %+v", hs)
	}
	if err := st.ActivateHead("nope"); !errors.Is(err, ErrHeadNotFound) {
		t.Fatalf("activate unknown: %v", err)
	}
	if err := st.ActivateHead(""); err != nil {
		t.Fatal(err)
	}
	if a, _ := st.ActiveHead(); a != nil {
		t.Fatalf("ActivateHead(\"\") left %q active", a.ID)
	}
}

func TestUnknowns(t *testing.T) {
	st := newTestStore(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	var ids []string
	for i := 0; i < 3; i++ {
		err := st.Update(func(tx *Tx) error {
			u, err := tx.NewUnknown()
			if err != nil {
				return err
			}
			u.Count, u.FirstSeen, u.LastSeen, u.Cameras = 1, now, now, []string{"door"}
			u.Centroid = vec(float32(i), 8)
			u.Samples = []UnknownSample{{Embedding: vec(float32(i), 8), Quality: 0.8, Time: now, Camera: "door"}}
			ids = append(ids, u.ID)
			return tx.PutUnknown(u)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if strings.Join(ids, ",") != "unknown-1,unknown-2,unknown-3" {
		t.Fatalf("ids = %v", ids)
	}
	if err := st.Update(func(tx *Tx) error { return tx.DeleteUnknown("unknown-3") }); err != nil {
		t.Fatal(err)
	}
	us, err := st.Unknowns()
	if err != nil || len(us) != 2 || us[1].ID != "unknown-2" || !equalVec(us[1].Samples[0].Embedding, vec(1, 8)) || !us[1].LastSeen.Equal(now) {
		t.Fatalf("Unknowns = %+v, %v", us, err)
	}
	// Numbers are never reused.
	err = st.Update(func(tx *Tx) error {
		u, err := tx.NewUnknown()
		if err == nil && u.ID != "unknown-4" {
			t.Errorf("next id = %s, want unknown-4", u.ID)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestOutbox(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	st, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-st.OutboxNotify():
		t.Fatal("notified before any append")
	default:
	}
	if err := st.AppendEvents(
		OutboxEvent{Topic: "events/recognized", Payload: []byte(`{"a":1}`), Camera: "door"},
		OutboxEvent{Topic: "people/x/state", Payload: []byte(`{}`), Retain: true},
	); err != nil {
		t.Fatal(err)
	}
	select {
	case <-st.OutboxNotify():
	default:
		t.Fatal("no notification after append")
	}
	if err := st.AppendEvents(OutboxEvent{Payload: []byte("x")}); err == nil {
		t.Fatal("event without topic accepted")
	}
	// Events appended inside another transaction share its fate.
	_ = st.Update(func(tx *Tx) error {
		_ = tx.AppendEvents(OutboxEvent{Topic: "events/enrolled"})
		return errors.New("rolled back")
	})
	evs, err := st.PendingEvents(0, 0)
	if err != nil || len(evs) != 2 || evs[0].Seq != 1 || evs[1].Seq != 2 || evs[0].Camera != "door" || !evs[1].Retain || string(evs[0].Payload) != `{"a":1}` || evs[0].Time.IsZero() {
		t.Fatalf("PendingEvents = %+v, %v", evs, err)
	}
	if evs, _ := st.PendingEvents(1, 10); len(evs) != 1 || evs[0].Seq != 2 {
		t.Fatalf("PendingEvents(after 1) = %+v", evs)
	}
	if evs, _ := st.PendingEvents(0, 1); len(evs) != 1 || evs[0].Seq != 1 {
		t.Fatalf("PendingEvents(max 1) = %+v", evs)
	}
	for _, seq := range []uint64{1, 2, 2} {
		if err := st.AckEvent(seq); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := st.OutboxLen(); err != nil || n != 0 {
		t.Fatalf("OutboxLen = %d, %v", n, err)
	}
	// Sequence numbers keep increasing across a restart, even when drained.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err = Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.AppendEvents(OutboxEvent{Topic: "events/unknown"}); err != nil {
		t.Fatal(err)
	}
	if evs, _ := st.PendingEvents(0, 0); len(evs) != 1 || evs[0].Seq != 3 {
		t.Fatalf("after reopen: %+v", evs)
	}
	if n, _ := st.OutboxLen(); n != 1 {
		t.Fatalf("OutboxLen = %d", n)
	}
}

func TestConcurrentAppendsKeepOrder(t *testing.T) {
	st := newTestStore(t)
	const workers, each = 4, 25
	errc := make(chan error, workers)
	for w := 0; w < workers; w++ {
		go func() {
			for i := 0; i < each; i++ {
				if err := st.AppendEvents(OutboxEvent{Topic: "t"}); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
	}
	for w := 0; w < workers; w++ {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	evs, err := st.PendingEvents(0, 0)
	if err != nil || len(evs) != workers*each {
		t.Fatalf("%d events, %v", len(evs), err)
	}
	for i, ev := range evs {
		if ev.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d: gaps or reordering", i, ev.Seq)
		}
	}
}

func TestEncryption(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	key := bytes.Repeat([]byte{7}, 32)
	st, err := Open(Options{Dir: dir, EncryptionKey: key})
	if err != nil {
		t.Fatal(err)
	}
	if !st.Encrypted() {
		t.Fatal("Encrypted() = false")
	}
	mustPerson(t, st, "Secret Name")
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	// The name is not readable in the files.
	_ = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			if b, _ := os.ReadFile(p); bytes.Contains(b, []byte("Secret Name")) {
				t.Errorf("%s holds the plain text name", p)
			}
		}
		return nil
	})
	for _, c := range []struct {
		name string
		key  []byte
		want error
	}{
		{"wrong key", bytes.Repeat([]byte{8}, 32), ErrWrongKey},
		{"no key", nil, ErrWrongKey},
		{"short key", []byte("short"), ErrBadKey},
	} {
		t.Run(c.name, func(t *testing.T) {
			st, err := Open(Options{Dir: dir, EncryptionKey: c.key})
			if err == nil {
				st.Close()
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("Open = %v, want %v", err, c.want)
			}
		})
	}
	st, err = Open(Options{Dir: dir, EncryptionKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.FindPerson("secret name"); err != nil {
		t.Fatal(err)
	}
	// A key given for a database created without one is refused too.
	plain := filepath.Join(t.TempDir(), "plain")
	ps, err := Open(Options{Dir: plain})
	if err != nil {
		t.Fatal(err)
	}
	ps.Close()
	if ps, err := Open(Options{Dir: plain, EncryptionKey: key}); !errors.Is(err, ErrWrongKey) {
		if err == nil {
			ps.Close()
		}
		t.Fatalf("key on a plain database: %v, want ErrWrongKey", err)
	}
}

func TestLoadKey(t *testing.T) {
	dir := t.TempDir()
	hexFile := filepath.Join(dir, "hex")
	os.WriteFile(hexFile, []byte(strings.Repeat("ab", 32)+"\n"), 0o600)
	rawFile := filepath.Join(dir, "raw")
	os.WriteFile(rawFile, bytes.Repeat([]byte{'\n'}, 16), 0o600) // raw bytes, even white space
	badFile := filepath.Join(dir, "bad")
	os.WriteFile(badFile, []byte("too short"), 0o600)
	cases := []struct {
		file, env string
		wantLen   int
		wantErr   bool
	}{
		{"", "", 0, false},
		{hexFile, "", 32, false},
		{rawFile, "", 16, false},
		{badFile, "", 0, true},
		{filepath.Join(dir, "missing"), "", 0, true},
		{badFile, strings.Repeat("0", 48), 24, false}, // env overrides the file
		{"", "0123456789abcdef", 16, false},
		{"", "nope", 0, true},
	}
	for _, c := range cases {
		k, err := LoadKey(c.file, c.env)
		if (err != nil) != c.wantErr || len(k) != c.wantLen {
			t.Errorf("LoadKey(%q, %q) = %d bytes, %v", c.file, c.env, len(k), err)
		}
	}
}

func TestCorruptAndLockedDirectories(t *testing.T) {
	t.Run("not empty, no manifest", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o600)
		if _, err := Open(Options{Dir: dir}); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("got %v, want ErrCorrupt", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "MANIFEST")); err == nil {
			t.Fatal("a database was created over foreign files")
		}
	})
	t.Run("a file, not a directory", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "f")
		os.WriteFile(f, []byte("x"), 0o600)
		if _, err := Open(Options{Dir: f}); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("got %v, want ErrCorrupt", err)
		}
	})
	t.Run("garbage manifest", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "db")
		st, err := Open(Options{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		mustPerson(t, st, "Alice")
		st.Close()
		os.WriteFile(filepath.Join(dir, "MANIFEST"), bytes.Repeat([]byte{0x5a}, 100), 0o600)
		st, err = Open(Options{Dir: dir})
		if err == nil {
			st.Close()
		}
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("got %v, want ErrCorrupt", err)
		}
	})
	t.Run("badger database of somebody else", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "db")
		db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
		if err != nil {
			t.Fatal(err)
		}
		db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("their/key"), []byte("v")) })
		db.Close()
		if _, err := Open(Options{Dir: dir}); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("got %v, want ErrCorrupt", err)
		}
	})
	t.Run("locked", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "db")
		st, err := Open(Options{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		for _, ro := range []bool{false, true} {
			if s2, err := Open(Options{Dir: dir, ReadOnly: ro}); !errors.Is(err, ErrLocked) {
				if err == nil {
					s2.Close()
				}
				t.Fatalf("read-only %v: got %v, want ErrLocked", ro, err)
			}
		}
	})
	t.Run("read-only missing", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "none")
		if _, err := Open(Options{Dir: dir, ReadOnly: true}); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("got %v", err)
		}
		if _, err := os.Stat(dir); err == nil {
			t.Fatal("read-only open created the directory")
		}
	})
}

func TestReadOnly(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	st, _ := Open(Options{Dir: dir})
	mustPerson(t, st, "Alice")
	st.Close()
	r1, err := Open(Options{Dir: dir, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r1.Close()
	r2, err := Open(Options{Dir: dir, ReadOnly: true}) // readers share the directory
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if _, err := r2.FindPerson("Alice"); err != nil {
		t.Fatal(err)
	}
	if err := r1.AppendEvents(OutboxEvent{Topic: "x"}); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("write on read-only store: %v", err)
	}
}

func TestSchemaVersionAndMigrations(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	st, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := st.Version(); err != nil || v != SchemaVersion {
		t.Fatalf("Version = %d, %v", v, err)
	}
	mustPerson(t, st, "Alice")
	st.Close()

	// A migration to the next version runs once, in order, on open.
	saved := migrations
	defer func() { migrations, targetSchema = saved, SchemaVersion }()
	targetSchema = SchemaVersion + 2
	var ran []string
	migrations = append(append([]migration(nil), saved...),
		migration{to: SchemaVersion + 1, name: "add marker", run: func(txn *badger.Txn) error {
			ran = append(ran, "add marker")
			return txn.Set([]byte("m/marker"), []byte("1"))
		}},
		migration{to: SchemaVersion + 2, name: "fail", run: func(txn *badger.Txn) error {
			ran = append(ran, "fail")
			return errors.New("cannot")
		}})
	if _, err := Open(Options{Dir: dir}); err == nil || !strings.Contains(err.Error(), "fail") {
		t.Fatalf("failing migration: %v", err)
	}
	migrations = migrations[:len(migrations)-1]
	targetSchema = SchemaVersion + 1
	st, err = Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := st.Version(); v != SchemaVersion+1 {
		t.Fatalf("Version after migration = %d", v)
	}
	st.Close()
	// "add marker" ran once before the failing one stopped the first open,
	// and was not run again.
	if strings.Join(ran, ",") != "add marker,fail" {
		t.Fatalf("migrations ran: %v", ran)
	}
	// This build (without the fake migrations) refuses the newer database.
	migrations, targetSchema = saved, SchemaVersion
	if _, err := Open(Options{Dir: dir}); !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("got %v, want ErrSchemaTooNew", err)
	}
}

func TestCloseAndGC(t *testing.T) {
	before := runtime.NumGoroutine()
	st, err := Open(Options{Dir: filepath.Join(t.TempDir(), "db"), GCInterval: 10 * time.Millisecond, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	// Write and overwrite values so GC has something to look at.
	for i := 0; i < 50; i++ {
		if err := st.AppendEvents(OutboxEvent{Topic: "t", Payload: bytes.Repeat([]byte{byte(i)}, 4096)}); err != nil {
			t.Fatal(err)
		}
		if err := st.AckEvent(uint64(i + 1)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.CollectGarbage(context.Background()); err != nil {
		t.Fatalf("CollectGarbage: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- st.RunGC(ctx) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("RunGC after cancel = %v", err)
	}
	// Close also stops a running GC loop.
	go func() { done <- st.RunGC(context.Background()) }()
	time.Sleep(20 * time.Millisecond)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("RunGC after Close = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("RunGC did not stop on Close")
	}
	if err := st.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close = %v", err)
	}
	if _, err := st.People(); !errors.Is(err, ErrClosed) {
		t.Fatalf("People after Close = %v", err)
	}
	if err := st.AppendEvents(OutboxEvent{Topic: "x"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("AppendEvents after Close = %v", err)
	}
	// Badger's own goroutines end with Close; ours must too.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines left (before: %d):\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

func TestBackupRestore(t *testing.T) {
	for _, key := range [][]byte{nil, bytes.Repeat([]byte{3}, 16)} {
		name := "plain"
		if key != nil {
			name = "encrypted"
		}
		t.Run(name, func(t *testing.T) {
			st, err := Open(Options{Dir: filepath.Join(t.TempDir(), "db"), EncryptionKey: key, NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			p := mustPerson(t, st, "Alice")
			big := make([]float32, 128)
			for i := 0; i < 300; i++ { // several chunks
				big[0] = float32(i)
				if err := st.Update(func(tx *Tx) error { return tx.AddSample(&Sample{PersonID: p.ID, Embedding: big}, nil) }); err != nil {
					t.Fatal(err)
				}
			}
			if err := st.AppendEvents(OutboxEvent{Topic: "events/enrolled"}); err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := st.Backup(&buf); err != nil {
				t.Fatal(err)
			}
			if key != nil && bytes.Contains(buf.Bytes(), []byte("Alice")) {
				t.Fatal("encrypted backup holds the plain text name")
			}
			data := buf.Bytes()

			target := filepath.Join(t.TempDir(), "restored")
			if err := Restore(bytes.NewReader(data), Options{Dir: target, EncryptionKey: key}); err != nil {
				t.Fatal(err)
			}
			rs, err := Open(Options{Dir: target, EncryptionKey: key})
			if err != nil {
				t.Fatal(err)
			}
			ss, err := rs.Samples(p.ID)
			if err != nil || len(ss) != 300 {
				t.Fatalf("restored %d samples, %v", len(ss), err)
			}
			if evs, _ := rs.PendingEvents(0, 0); len(evs) != 1 {
				t.Fatalf("restored outbox: %+v", evs)
			}
			rs.Close()

			// A non-empty target is refused and left alone.
			if err := Restore(bytes.NewReader(data), Options{Dir: target, EncryptionKey: key}); !errors.Is(err, ErrRestoreTarget) {
				t.Fatalf("restore over data: %v", err)
			}
			bad := []struct {
				name string
				data []byte
				key  []byte
				want error
			}{
				{"truncated", data[:len(data)/2], key, ErrBackupFormat},
				{"no final chunk", data[:len(data)-4], key, ErrBackupFormat},
				{"not a backup", []byte("hello world, not a backup"), key, ErrBackupFormat},
				{"flipped byte", flip(data, len(data)/3), key, ErrBackupFormat},
			}
			if key != nil {
				bad = append(bad,
					struct {
						name string
						data []byte
						key  []byte
						want error
					}{"wrong key", data, bytes.Repeat([]byte{4}, 16), ErrWrongKey},
					struct {
						name string
						data []byte
						key  []byte
						want error
					}{"no key", data, nil, ErrWrongKey})
			}
			for _, b := range bad {
				t.Run(b.name, func(t *testing.T) {
					dir := filepath.Join(t.TempDir(), "r")
					err := Restore(bytes.NewReader(b.data), Options{Dir: dir, EncryptionKey: b.key})
					if !errors.Is(err, b.want) {
						t.Fatalf("got %v, want %v", err, b.want)
					}
					if _, err := os.Stat(dir); err == nil {
						t.Fatal("a failed restore left the target directory")
					}
					leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), ".r.restore-*"))
					if len(leftovers) > 0 {
						t.Fatalf("temporary directories left: %v", leftovers)
					}
				})
			}
		})
	}
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 0x40
	return c
}

func TestNewIDSorts(t *testing.T) {
	prev := ""
	seen := map[string]bool{}
	for i := 0; i < 10000; i++ {
		id := NewID()
		if len(id) != 26 || id <= prev || seen[id] || !validID(id) {
			t.Fatalf("id %d = %q after %q", i, id, prev)
		}
		seen[id] = true
		prev = id
	}
}
