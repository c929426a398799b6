package store

import (
	"errors"
	"testing"
)

func TestFleetKeys(t *testing.T) {
	st := newTestStore(t)
	err := st.Update(func(tx *Tx) error {
		for _, k := range []string{"r/b", "r/a", "q/a", "hlc"} {
			if err := tx.FleetPut(k, []byte("v-"+k)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	err = st.View(func(tx *Tx) error {
		if v, err := tx.FleetGet("missing"); v != nil || err != nil {
			t.Errorf("missing key: %q, %v", v, err)
		}
		if v, err := tx.FleetGet("hlc"); string(v) != "v-hlc" || err != nil {
			t.Errorf("hlc: %q, %v", v, err)
		}
		return tx.FleetScan("r/", func(k string, v []byte) error {
			if string(v) != "v-"+k {
				t.Errorf("%s = %q", k, v)
			}
			keys = append(keys, k)
			return nil
		})
	})
	if err != nil || len(keys) != 2 || keys[0] != "r/a" || keys[1] != "r/b" {
		t.Fatalf("scan: %v %v", keys, err)
	}
	n := 0
	err = st.View(func(tx *Tx) error {
		return tx.FleetKeys("", func(string) error { n++; return ErrStopScan })
	})
	if err != nil || n != 1 {
		t.Fatalf("stop: n=%d err=%v", n, err)
	}
	if err := st.Update(func(tx *Tx) error { return tx.FleetDelete("r/a") }); err != nil {
		t.Fatal(err)
	}
	if err := st.Update(func(tx *Tx) error { return tx.FleetDelete("r/a") }); err != nil {
		t.Fatal("second delete:", err)
	}
	// The fleet keys are not people: nothing else sees them.
	if ps, err := st.People(); err != nil || len(ps) != 0 {
		t.Fatalf("people: %v %v", ps, err)
	}
	if err := st.Update(func(tx *Tx) error { return tx.FleetPut("", nil) }); err == nil {
		t.Fatal("empty key accepted")
	}
	err = st.View(func(tx *Tx) error { return tx.FleetPut("x", nil) })
	if !errors.Is(err, ErrReadOnly) {
		t.Fatalf("put in View: %v", err)
	}
}

func TestDeleteNegative(t *testing.T) {
	st := newTestStore(t)
	var p Person
	var n Negative
	err := st.Update(func(tx *Tx) error {
		p = Person{Name: "Alice"}
		if err := tx.PutPerson(&p); err != nil {
			return err
		}
		n = Negative{PersonID: p.ID, Embedding: []float32{1, 2}}
		return tx.AddNegative(&n)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Update(func(tx *Tx) error { return tx.DeleteNegative(p.ID, n.ID) }); err != nil {
		t.Fatal(err)
	}
	err = st.View(func(tx *Tx) error {
		ns, err := tx.Negatives(p.ID)
		if len(ns) != 0 {
			t.Errorf("negatives left: %v", ns)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	err = st.Update(func(tx *Tx) error { return tx.DeleteNegative(p.ID, n.ID) })
	if !errors.Is(err, ErrSampleNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}
