package smoke

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSetupIsIdempotent re-runs scripts/setup.sh on an installed checkout: it
// must find everything present and download or unpack nothing.
func TestSetupIsIdempotent(t *testing.T) {
	root := repoRoot(t)
	if _, err := os.Stat(filepath.Join(root, ".deps", "tensorflow", ".complete")); err != nil {
		t.Skip("setup has not run in this checkout (run `make setup`)")
	}
	out, err := exec.Command("bash", filepath.Join(root, "scripts", "setup.sh")).CombinedOutput()
	if err != nil {
		t.Fatalf("setup.sh failed: %v\n%s", err, out)
	}
	for _, want := range []string{"Debian packages: present", "TensorFlow C library 2.18.1: present", "models and media: present"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("second run did not say %q:\n%s", want, out)
		}
	}
	for _, bad := range []string{"downloading", "unpacking", "installing"} {
		if strings.Contains(string(out), bad) {
			t.Errorf("second run is %s something:\n%s", bad, out)
		}
	}
}
