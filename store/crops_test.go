package store

import (
	"bytes"
	"errors"
	"image"
	"image/png"
	"path/filepath"
	"strings"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// testPNG returns a small PNG whose first pixel carries seed.
func testPNG(t *testing.T, seed uint8) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	img.Pix[0] = seed
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// keysWith lists every key of the database that contains s.
func keysWith(t *testing.T, st *Store, s string) []string {
	t.Helper()
	var out []string
	err := st.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if k := string(it.Item().Key()); strings.Contains(k, s) {
				out = append(out, k)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// withCrops stores a person with two samples (chip and crop), a negative
// with a crop and staged vectors for a sample and the negative.
func withCrops(t *testing.T, st *Store) (p Person, s1, s2 Sample, n Negative) {
	t.Helper()
	p = mustPerson(t, st, "Alice")
	err := st.Update(func(tx *Tx) error {
		s1 = Sample{PersonID: p.ID, Embedding: vec(1, 128), Backbone: "dlib", Source: SourceFile}
		if err := tx.AddSampleWith(&s1, Images{Chip: testPNG(t, 1), Crop: testPNG(t, 2)}); err != nil {
			return err
		}
		s2 = Sample{PersonID: p.ID, Embedding: vec(2, 128), Source: SourceFile}
		if err := tx.AddSampleWith(&s2, Images{Crop: testPNG(t, 3)}); err != nil {
			return err
		}
		n = Negative{PersonID: p.ID, Embedding: vec(3, 128), Source: SourceTrack}
		if err := tx.AddNegativeWith(&n, testPNG(t, 4)); err != nil {
			return err
		}
		if err := tx.PutStaged(StagedVector{Kind: StagedSample, PersonID: p.ID, ItemID: s1.ID, Backbone: "mobilefacenet", Embedding: vec(5, 192)}); err != nil {
			return err
		}
		if err := tx.PutStaged(StagedVector{Kind: StagedNegative, PersonID: p.ID, ItemID: n.ID, Backbone: "mobilefacenet", Embedding: vec(6, 192)}); err != nil {
			return err
		}
		return tx.PutReembedState(ReembedState{Target: "mobilefacenet"})
	})
	if err != nil {
		t.Fatal(err)
	}
	return p, s1, s2, n
}

func TestCropsStagingAndDeletes(t *testing.T) {
	st := newTestStore(t)
	p, s1, s2, n := withCrops(t, st)
	if !s1.HasChip || !s1.HasCrop || s2.HasChip || !s2.HasCrop || !n.HasCrop {
		t.Fatalf("flags: %+v %+v %+v", s1, s2, n)
	}
	err := st.View(func(tx *Tx) error {
		if b, err := tx.Crop(p.ID, s1.ID); err != nil || !bytes.Equal(b, testPNG(t, 2)) {
			t.Errorf("Crop = %d bytes, %v", len(b), err)
		}
		if b, err := tx.Chip(p.ID, s2.ID); err != nil || b != nil {
			t.Errorf("Chip of a sample without one = %d bytes, %v", len(b), err)
		}
		if b, err := tx.NegativeCrop(p.ID, n.ID); err != nil || !bytes.Equal(b, testPNG(t, 4)) {
			t.Errorf("NegativeCrop = %d bytes, %v", len(b), err)
		}
		if v, ok, err := tx.Staged(StagedSample, p.ID, s1.ID); err != nil || !ok || v.Backbone != "mobilefacenet" || !equalVec(v.Embedding, vec(5, 192)) {
			t.Errorf("Staged = %+v %v %v", v, ok, err)
		}
		if _, ok, err := tx.Staged(StagedSample, p.ID, s2.ID); err != nil || ok {
			t.Errorf("Staged of an unstaged sample: %v %v", ok, err)
		}
		if st, err := tx.ReembedState(); err != nil || st == nil || st.Target != "mobilefacenet" || st.Started.IsZero() {
			t.Errorf("ReembedState = %+v, %v", st, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// Refused: a crop that is not a PNG (nothing written), a staged vector
	// of a missing item, a bad kind, no backbone.
	err = st.Update(func(tx *Tx) error {
		return tx.AddSampleWith(&Sample{PersonID: p.ID, Embedding: vec(1, 128)}, Images{Crop: []byte("raw pixels")})
	})
	if err == nil || !strings.Contains(err.Error(), "PNG") {
		t.Fatalf("non-PNG crop: %v", err)
	}
	if ss, _ := st.Samples(p.ID); len(ss) != 2 {
		t.Fatalf("%d samples after a refused one", len(ss))
	}
	for _, v := range []StagedVector{
		{Kind: StagedSample, PersonID: p.ID, ItemID: "nope", Backbone: "x", Embedding: vec(1, 4)},
		{Kind: "z", PersonID: p.ID, ItemID: s1.ID, Backbone: "x", Embedding: vec(1, 4)},
		{Kind: StagedSample, PersonID: p.ID, ItemID: s1.ID, Embedding: vec(1, 4)},
		{Kind: StagedSample, PersonID: p.ID, ItemID: s1.ID, Backbone: "x"},
	} {
		if err := st.Update(func(tx *Tx) error { return tx.PutStaged(v) }); err == nil {
			t.Fatalf("PutStaged(%+v) accepted", v)
		}
	}

	// The switch of one sample: vector and backbone change, the rest stays.
	err = st.Update(func(tx *Tx) error {
		if err := tx.SetSampleEmbedding(p.ID, s1.ID, "mobilefacenet", vec(5, 192)); err != nil {
			return err
		}
		if err := tx.SetNegativeEmbedding(p.ID, n.ID, "mobilefacenet", vec(6, 192)); err != nil {
			return err
		}
		if err := tx.SetSampleEmbedding(p.ID, "nope", "mobilefacenet", vec(5, 192)); !errors.Is(err, ErrSampleNotFound) {
			t.Errorf("SetSampleEmbedding of a missing sample: %v", err)
		}
		return tx.DeleteClusters(p.ID)
	})
	if err != nil {
		t.Fatal(err)
	}
	err = st.View(func(tx *Tx) error {
		s, err := tx.Sample(p.ID, s1.ID)
		if err != nil || s.Backbone != "mobilefacenet" || !equalVec(s.Embedding, vec(5, 192)) || !s.HasChip || !s.HasCrop || s.Source != SourceFile {
			t.Errorf("switched sample = %+v, %v", s, err)
		}
		n2, err := tx.Negative(p.ID, n.ID)
		if err != nil || n2.BackboneID() != "mobilefacenet" || len(n2.Embedding) != 192 || !n2.HasCrop {
			t.Errorf("switched negative = %+v, %v", n2, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// Deleting a sample deletes its chip, crop and staged vector.
	if err := st.Update(func(tx *Tx) error { return tx.DeleteSample(p.ID, s1.ID) }); err != nil {
		t.Fatal(err)
	}
	if ks := keysWith(t, st, s1.ID); len(ks) != 0 {
		t.Fatalf("keys left after DeleteSample: %q", ks)
	}
	if err := st.Update(func(tx *Tx) error { return tx.DeleteSample(p.ID, s1.ID) }); !errors.Is(err, ErrSampleNotFound) {
		t.Fatalf("second DeleteSample: %v", err)
	}
	// Deleting the person deletes everything keyed by them.
	if len(keysWith(t, st, p.ID)) < 4 {
		t.Fatal("test setup: too few keys of the person")
	}
	if err := st.DeletePerson(p.ID); err != nil {
		t.Fatal(err)
	}
	if ks := keysWith(t, st, p.ID); len(ks) != 0 {
		t.Fatalf("keys left after DeletePerson: %q", ks)
	}
	if err := st.Update(func(tx *Tx) error { return tx.DeleteReembedState() }); err != nil {
		t.Fatal(err)
	}
	if err := st.View(func(tx *Tx) error {
		s, err := tx.ReembedState()
		if s != nil {
			t.Errorf("state after delete: %+v", s)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

func TestCropsSurviveBackupRestore(t *testing.T) {
	for _, key := range [][]byte{nil, bytes.Repeat([]byte{7}, 32)} {
		st, err := Open(Options{Dir: filepath.Join(t.TempDir(), "db"), EncryptionKey: key, NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		p, s1, s2, n := withCrops(t, st)
		var buf bytes.Buffer
		if err := st.Backup(&buf); err != nil {
			t.Fatal(err)
		}
		st.Close()
		if key != nil && bytes.Contains(buf.Bytes(), testPNG(t, 2)) {
			t.Fatal("an encrypted backup holds a crop in the clear")
		}
		dir := filepath.Join(t.TempDir(), "restored")
		if err := Restore(&buf, Options{Dir: dir, EncryptionKey: key}); err != nil {
			t.Fatal(err)
		}
		rs, err := Open(Options{Dir: dir, EncryptionKey: key, NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		err = rs.View(func(tx *Tx) error {
			for i, id := range []string{s1.ID, s2.ID} {
				s, err := tx.Sample(p.ID, id)
				if err != nil || !s.HasCrop {
					t.Errorf("sample %d: %+v %v", i, s, err)
				}
				if b, err := tx.Crop(p.ID, id); err != nil || !bytes.Equal(b, testPNG(t, uint8(2+i))) {
					t.Errorf("crop %d = %d bytes, %v", i, len(b), err)
				}
			}
			if s, _ := tx.Sample(p.ID, s1.ID); s.Backbone != "dlib" {
				t.Errorf("backbone = %q", s.Backbone)
			}
			if b, err := tx.NegativeCrop(p.ID, n.ID); err != nil || !bytes.Equal(b, testPNG(t, 4)) {
				t.Errorf("negative crop = %d bytes, %v", len(b), err)
			}
			staged := 0
			if err := tx.EachStaged(func(StagedVector) error { staged++; return nil }); err != nil || staged != 2 {
				t.Errorf("staged = %d, %v", staged, err)
			}
			if s, err := tx.ReembedState(); err != nil || s == nil {
				t.Errorf("re-embedding state lost: %v", err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		rs.Close()
	}
}

// A database written before backbone ids (schema 1: no "backbone" field)
// opens, migrates to version 2 and reads every vector as dlib.
func TestLegacyRecordsReadAsDlib(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	st, err := Open(Options{Dir: dir, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	p := mustPerson(t, st, "Alice")
	vecB64 := encodeVec(vec(1, 128))
	created := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC).Format(time.RFC3339)
	old := map[string]string{
		string(sampleKey(p.ID, "S1")):   `{"id":"S1","person_id":"` + p.ID + `","quality":0.9,"source":"file","ref":"a.jpg","created":"` + created + `","has_chip":true,"vec":"` + vecB64 + `"}`,
		string(negativeKey(p.ID, "N1")): `{"id":"N1","person_id":"` + p.ID + `","source":"track","created":"` + created + `","vec":"` + vecB64 + `"}`,
		string(headKey("H1")):           `{"id":"H1","created":"` + created + `","weights":"AAEC","active":true}`,
		string(unknownKey(1)):           `{"id":"unknown-1","number":1,"count":1,"first_seen":"` + created + `","last_seen":"` + created + `","vec":"` + vecB64 + `","samples":[{"quality":0.8,"time":"` + created + `","vec":"` + vecB64 + `"}]}`,
	}
	err = st.db.Update(func(txn *badger.Txn) error {
		for k, v := range old {
			if err := txn.Set([]byte(k), []byte(v)); err != nil {
				return err
			}
		}
		return txn.Set([]byte(keySchema), be32(1))
	})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()

	st, err = Open(Options{Dir: dir, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if v, err := st.Version(); err != nil || v != 2 {
		t.Fatalf("version after migration = %d, %v", v, err)
	}
	err = st.View(func(tx *Tx) error {
		s, err := tx.Sample(p.ID, "S1")
		if err != nil || s.Backbone != "" || s.BackboneID() != LegacyBackbone || s.HasCrop || !s.HasChip || !equalVec(s.Embedding, vec(1, 128)) {
			t.Errorf("legacy sample = %+v, %v", s, err)
		}
		n, err := tx.Negative(p.ID, "N1")
		if err != nil || n.BackboneID() != "dlib" || n.HasCrop {
			t.Errorf("legacy negative = %+v, %v", n, err)
		}
		hs, err := tx.Heads()
		if err != nil || len(hs) != 1 || hs[0].BackboneID() != "dlib" || !hs[0].Active {
			t.Errorf("legacy head = %+v, %v", hs, err)
		}
		u, err := tx.Unknown("unknown-1")
		if err != nil || u.BackboneID() != "dlib" || len(u.Samples) != 1 || u.Samples[0].BackboneID() != "dlib" {
			t.Errorf("legacy unknown = %+v, %v", u, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Written now, the id is recorded and read back as is.
	err = st.Update(func(tx *Tx) error {
		s := Sample{ID: "S2", PersonID: p.ID, Embedding: vec(1, 192), Backbone: "mobilefacenet"}
		if err := tx.AddSample(&s, nil); err != nil {
			return err
		}
		got, err := tx.Sample(p.ID, "S2")
		if err != nil || got.BackboneID() != "mobilefacenet" {
			t.Errorf("new sample = %+v, %v", got, err)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if BackboneOf("") != "dlib" || BackboneOf("x") != "x" {
		t.Fatal("BackboneOf")
	}
}
