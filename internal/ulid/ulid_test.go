package ulid

import "testing"

func TestNewSorts(t *testing.T) {
	prev := ""
	seen := map[string]bool{}
	for i := 0; i < 10000; i++ {
		id := New()
		if len(id) != 26 || id <= prev || seen[id] {
			t.Fatalf("id %d = %q after %q", i, id, prev)
		}
		seen[id] = true
		prev = id
	}
}
