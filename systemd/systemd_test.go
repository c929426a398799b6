package systemd

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func readUnit(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("edged.service")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// stagedUnit writes the unit into a temporary directory with ExecStart
// pointing at an executable that exists here (verify checks it).
func stagedUnit(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	unit := strings.ReplaceAll(readUnit(t), "/usr/local/bin/edged", exe)
	path := filepath.Join(dir, "edged.service")
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func systemdAnalyze(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed (apt-get install systemd); cannot verify the unit here")
	}
	return p
}

func TestUnitVerifies(t *testing.T) {
	sa := systemdAnalyze(t)
	out, err := exec.Command(sa, "verify", stagedUnit(t)).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

func TestUnitSecurityExposureAtMost2(t *testing.T) {
	sa := systemdAnalyze(t)
	out, err := exec.Command(sa, "security", "--offline=true", "--no-pager", stagedUnit(t)).CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for edged\.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		if err != nil && bytes.Contains(out, []byte("unrecognized option")) {
			t.Skipf("this systemd-analyze has no --offline (needs systemd >= 250): %s", out)
		}
		t.Fatalf("no exposure level in the output (%v):\n%s", err, out)
	}
	level, _ := strconv.ParseFloat(string(m[1]), 64)
	t.Logf("systemd-analyze security: exposure %.1f", level)
	if level > 2.0 {
		t.Errorf("exposure %.1f > 2.0:\n%s", level, out)
	}
}

func TestUnitContract(t *testing.T) {
	unit := readUnit(t)
	for _, want := range []string{
		"Type=notify", "WatchdogSec=", "Restart=on-failure",
		"RestartPreventExitStatus=3", // exitStartup in cmd/edged
		"DynamicUser=yes", "StateDirectory=edged", "ExecReload=/bin/kill -HUP $MAINPID",
		"EnvironmentFile=-/etc/edged/edged.env", "ExecStart=/usr/local/bin/edged run --config /etc/edged/edged.yaml",
	} {
		if !strings.Contains(unit, want+"\n") && !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q", want)
		}
	}
	// TensorFlow's CPU kernels are JIT-compiled: W^X would kill edged.
	if strings.Contains(unit, "\nMemoryDenyWriteExecute=yes") {
		t.Error("MemoryDenyWriteExecute=yes breaks TensorFlow's JIT kernels")
	}
}

// TestInstallUninstall runs `install.sh install` into a staging directory
// (relinking edged with RUNPATH $ORIGIN/../lib/edged), runs the staged
// binary, then uninstalls.
func TestInstallUninstall(t *testing.T) {
	if testing.Short() {
		t.Skip("relinks edged (about a minute on a cold cache); skipped with -short")
	}
	root, _ := filepath.Abs("..")
	for _, p := range []string{".deps/env.sh", ".deps/tensorflow/lib", ".deps/models"} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Skipf("%s missing: run make setup", p)
		}
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go not in PATH")
	}
	dest := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("bash", append([]string{filepath.Join(root, "systemd", "install.sh")}, args...)...)
		cmd.Env = append(os.Environ(), "DESTDIR="+dest)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("install.sh %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	prefix := "/opt/edged-test"
	run("install", prefix)
	for _, p := range []string{
		prefix + "/bin/edged", prefix + "/lib/edged/libtensorflow.so.2", prefix + "/share/edged/models/fr_detect.onnx",
		"/etc/systemd/system/edged.service", "/etc/edged/edged.yaml", "/etc/edged/edged.env",
	} {
		if _, err := os.Stat(filepath.Join(dest, p)); err != nil {
			t.Errorf("not installed: %s", p)
		}
	}
	if st, err := os.Stat(filepath.Join(dest, "etc/edged/edged.env")); err == nil && st.Mode().Perm() != 0o600 {
		t.Errorf("edged.env mode %v, want 0600", st.Mode().Perm())
	}
	unit, _ := os.ReadFile(filepath.Join(dest, "etc/systemd/system/edged.service"))
	if !strings.Contains(string(unit), "ExecStart="+prefix+"/bin/edged run") {
		t.Errorf("unit not rewritten for the prefix:\n%s", unit)
	}
	// The staged binary finds its TensorFlow library through $ORIGIN, with
	// no LD_LIBRARY_PATH and the checkout's library path absent from it.
	bin := filepath.Join(dest, prefix, "bin", "edged")
	out, err := exec.Command("readelf", "-d", bin).Output()
	if err == nil && (!strings.Contains(string(out), "$ORIGIN/../lib/edged") || strings.Contains(string(out), ".deps/tensorflow")) {
		t.Errorf("runpath:\n%s", out)
	}
	cmd := exec.Command(bin, "version")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL=3"}
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "tensorflow 2.") {
		t.Errorf("installed binary: %v\n%s", err, out)
	}
	// A second install keeps the user's configuration.
	if err := os.WriteFile(filepath.Join(dest, "etc/edged/edged.yaml"), []byte("cameras: [/dev/video0]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command("bash", filepath.Join(root, "systemd", "install.sh"), "install", prefix)
	cmd.Env = append(os.Environ(), "DESTDIR="+dest, "EDGED_INSTALL_BIN="+filepath.Join(root, "bin", "edged.install"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("second install: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(filepath.Join(dest, "etc/edged/edged.yaml")); string(b) != "cameras: [/dev/video0]\n" {
		t.Errorf("install overwrote the configuration: %q", b)
	}

	run("uninstall", prefix)
	for _, p := range []string{prefix + "/bin/edged", prefix + "/lib/edged", prefix + "/share/edged", "/etc/systemd/system/edged.service"} {
		if _, err := os.Stat(filepath.Join(dest, p)); err == nil {
			t.Errorf("still there after uninstall: %s", p)
		}
	}
	if _, err := os.Stat(filepath.Join(dest, "etc/edged/edged.yaml")); err != nil {
		t.Error("uninstall removed the configuration")
	}
}

func TestInstallRejectsRelativePrefixAndUnknownAction(t *testing.T) {
	for _, args := range [][]string{{"install", "relative/path"}, {"frobnicate"}} {
		cmd := exec.Command("bash", append([]string{"install.sh"}, args...)...)
		cmd.Env = append(os.Environ(), "DESTDIR="+t.TempDir())
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "install: error:") {
			t.Errorf("%v: err=%v out=%s", args, err, out)
		}
	}
}
