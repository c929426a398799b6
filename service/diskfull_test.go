package service

import (
	"fmt"
	"testing"

	"github.com/edged-dev/edged/enroll"
	"github.com/edged-dev/edged/mqtt"
	"github.com/edged-dev/edged/store"
)

// A full disk, whether the store or the enroller reports it, is the
// storage_full reply code (enroll's mapping is tested in enroll, the
// refusal itself with a full tmpfs in store).
func TestReplyErrorDiskFull(t *testing.T) {
	full := fmt.Errorf(`write to store "/data": %w: 1 bytes free, 2 bytes needed`, store.ErrDiskFull)
	for name, err := range map[string]error{
		"store":  full,
		"enroll": fmt.Errorf("enroll: %w", enroll.ErrStorageFull),
	} {
		if got := codeOf(replyError(err)); got != mqtt.CodeStorageFull {
			t.Errorf("%s: code %q for %v, want %q", name, got, err, mqtt.CodeStorageFull)
		}
	}
}
