package main

import "testing"

func TestMinFreeBytes(t *testing.T) {
	// store.Options: 0 = the store's default, negative = off; the config's
	// 0 means off.
	for mb, want := range map[int]int64{0: -1, 128: 128 << 20, 1: 1 << 20} {
		if got := minFreeBytes(mb); got != want {
			t.Errorf("minFreeBytes(%d) = %d, want %d", mb, got, want)
		}
	}
}
