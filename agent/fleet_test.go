package agent

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/edged-dev/edged/config"
)

// startTestMosquitto runs a private Mosquitto on a free loopback port for
// the test's duration (skips when it is not installed).
func startTestMosquitto(t *testing.T) string {
	t.Helper()
	bin := "/usr/sbin/mosquitto"
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("%s not installed (make setup installs it): %v", bin, err)
	}
	port, dir := freePort(t), t.TempDir()
	user := ""
	if os.Geteuid() == 0 {
		user = "user root"
	}
	conf := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\n%s\n", port, user)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", conf)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	time.Sleep(300 * time.Millisecond)
	return fmt.Sprintf("tcp://127.0.0.1:%d", port)
}

// TestFleetThreeDaemons: three daemons in one fleet on one Mosquitto.
// An enrollment on A is listed by B and C under the same person id; C,
// stopped while B renames the person and enrolls a second one, catches up
// when it starts again; a delete on A leaves B and C. Each within 15 s.
func TestFleetThreeDaemons(t *testing.T) {
	e := newTestEnv(t)
	broker := startTestMosquitto(t)
	dirs := map[string]string{"a": filepath.Join(t.TempDir(), "a"), "b": filepath.Join(t.TempDir(), "b"), "c": filepath.Join(t.TempDir(), "c")}
	var logs lockedBuffer
	start := func(dev string) *Agent {
		cfg := config.Default()
		cfg.Device, cfg.ModelDir, cfg.MQTT.Broker, cfg.HTTP.Addr, cfg.Fleet.Name = dev, e.models, broker, "off", "home"
		no := false
		cfg.MQTT.Discovery, cfg.Finetune.Enabled = &no, &no
		cfg.Finish()
		a, err := New(Options{Config: cfg, DataDir: dirs[dev], ModelDir: e.models,
			Logger: slog.New(slog.NewTextHandler(&logs, nil)).With("dev", dev), Version: "test"})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Start(); err != nil {
			t.Fatal(err)
		}
		return a
	}
	people := func(a *Agent) map[string]string {
		ps, err := a.c.st.People()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, p := range ps {
			out[p.ID] = p.Name
		}
		return out
	}
	within := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 15 s\n%s", what, logs.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	A, B, C := start("a"), start("b"), start("c")
	defer func() { _ = A.Close(); _ = B.Close() }()

	e.enrollFranck(t, A)
	var id string
	for pid := range people(A) {
		id = pid
	}
	within("B and C list Franck with A's person id", func() bool {
		return people(B)[id] == "Franck" && people(C)[id] == "Franck" && B.c.g.Info().People == 1
	})

	_ = C.Close()
	if _, err := B.c.Enroller().Rename(id, "Franck Dupont"); err != nil {
		t.Fatal(err)
	}
	e.enrollFranck(t, B) // a second person called Franck
	var second string
	for pid, name := range people(B) {
		if pid != id && name == "Franck" {
			second = pid
		}
	}
	if second == "" {
		t.Fatalf("B: no second person: %v", people(B))
	}
	C = start("c")
	defer func() { _ = C.Close() }()
	within("C catches up with the rename and the second enrollment", func() bool {
		p := people(C)
		return p[id] == "Franck Dupont" && p[second] != ""
	})

	if _, err := A.c.Enroller().Delete(id); err != nil {
		t.Fatal(err)
	}
	within("the delete reaches B and C", func() bool {
		_, inB := people(B)[id]
		_, inC := people(C)[id]
		return !inB && !inC
	})
}
