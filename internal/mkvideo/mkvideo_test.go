package mkvideo

import (
	"testing"
	"time"
)

func TestParseTile(t *testing.T) {
	for _, tc := range []struct {
		in    string
		want  Tile
		isErr bool
	}{
		{"a.mp4", Tile{Path: "a.mp4"}, false},
		{"a.mp4@2:8", Tile{Path: "a.mp4", Start: 2 * time.Second, Duration: 8 * time.Second}, false},
		{"/x:y/p.jpg:1.5", Tile{Path: "/x:y/p.jpg", Duration: 1500 * time.Millisecond}, false},
		{"blank:3", Tile{Blank: true, Duration: 3 * time.Second}, false},
		{"blank:0", Tile{}, true},
		{"a.mp4:-1", Tile{}, true},
		{"", Tile{}, true},
	} {
		got, err := ParseTile(tc.in)
		if (err != nil) != tc.isErr || (!tc.isErr && got != tc.want) {
			t.Errorf("ParseTile(%q) = %+v, %v", tc.in, got, err)
		}
	}
}
