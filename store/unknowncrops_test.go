package store

import (
	"bytes"
	"errors"
	"image"
	"image/png"
	"testing"
)

func tinyPNG(t *testing.T, v uint8) []byte {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, 4, 4))
	for i := range img.Pix {
		img.Pix[i] = v
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestUnknownCropsRotateAndGoWithTheCluster(t *testing.T) {
	st, err := Open(Options{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var u Unknown
	put := func(count int) {
		t.Helper()
		u.Count = count
		if err := st.Update(func(tx *Tx) error { return tx.PutUnknown(u) }); err != nil {
			t.Fatal(err)
		}
		if err := st.PutUnknownCrop(u.ID, tinyPNG(t, uint8(count))); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Update(func(tx *Tx) (err error) {
		u, err = tx.NewUnknown()
		u.Centroid = []float32{1, 0}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := st.PutUnknownCrop(u.ID, tinyPNG(t, 1)); !errors.Is(err, ErrUnknownNotFound) {
		t.Fatalf("crop of a missing cluster: %v", err)
	}
	for c := 1; c <= MaxUnknownCrops+1; c++ {
		put(c)
	}
	if err := st.Update(func(tx *Tx) error { return tx.PutUnknownCrop(u.ID, []byte("not a png")) }); err == nil {
		t.Fatal("a non-PNG crop was stored")
	}
	err = st.View(func(tx *Tx) error {
		slots, err := tx.UnknownCropSlots(u.ID)
		if err != nil || len(slots) != MaxUnknownCrops {
			t.Fatalf("slots %v, %v", slots, err)
		}
		// The 5th appearance overwrote slot 0.
		b, err := tx.UnknownCrop(u.ID, 0)
		if err != nil || !bytes.Equal(b, tinyPNG(t, uint8(MaxUnknownCrops+1))) {
			t.Fatalf("slot 0 not the newest: %v", err)
		}
		if b, _ := tx.UnknownCrop(u.ID, MaxUnknownCrops); b != nil {
			t.Fatal("slot out of range returned a crop")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Update(func(tx *Tx) error { return tx.DeleteUnknown(u.ID) }); err != nil {
		t.Fatal(err)
	}
	_ = st.View(func(tx *Tx) error {
		if slots, _ := tx.UnknownCropSlots(u.ID); len(slots) != 0 {
			t.Fatalf("crops left after DeleteUnknown: %v", slots)
		}
		return nil
	})
}
