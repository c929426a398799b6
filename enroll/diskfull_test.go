package enroll

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/edged-dev/edged/store"
)

// A full disk is its own code, not "internal": the client can tell the
// user to free space, and the store's message (directory, bytes) stays.
func TestStoreErrorDiskFull(t *testing.T) {
	cause := fmt.Errorf(`write to store "/data": %w: 1 bytes free, 2 bytes needed`, store.ErrDiskFull)
	err := storeError(cause)
	if CodeOf(err) != "storage_full" {
		t.Fatalf("code %q for %v", CodeOf(err), err)
	}
	for _, target := range []error{ErrStorageFull, store.ErrDiskFull} {
		if !errors.Is(err, target) {
			t.Errorf("errors.Is(%v, %v) = false", err, target)
		}
	}
	if errors.Is(err, ErrInternal) {
		t.Error("a full disk is reported as internal")
	}
	if msg := err.Error(); !strings.Contains(msg, "/data") || !strings.Contains(msg, "nothing was changed") {
		t.Errorf("message %q", msg)
	}
	if CodeOf(storeError(errors.New("boom"))) != "internal" {
		t.Error("other store errors must stay internal")
	}
}
