package backend

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/edged-dev/edged/config"
	"github.com/edged-dev/edged/mqtt"
	"github.com/edged-dev/edged/pipeline"
	"github.com/edged-dev/edged/web"
)

// browserTools finds Debian's chromium and a Python with Playwright (as
// `make setup` installs them for the tests: scripts/setup.sh). Without
// them the test skips, except in CI (CI=true), where it fails.
func browserTools(t *testing.T) (python, chromium string) {
	t.Helper()
	missing := func(what string) {
		msg := what + ": the browser test needs Debian's chromium and Playwright for Python; `EDGED_BROWSER_TESTS=1 make setup` installs both"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	chromium = os.Getenv("EDGED_CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		missing("no chromium at " + chromium)
	}
	python = os.Getenv("EDGED_BROWSER_PYTHON")
	if python == "" {
		cache := os.Getenv("XDG_CACHE_HOME")
		if cache == "" {
			home, _ := os.UserHomeDir()
			cache = filepath.Join(home, ".cache")
		}
		python = filepath.Join(cache, "edged", "browser-venv", "bin", "python3")
	}
	if out, err := exec.Command(python, "-c", "import playwright.sync_api").CombinedOutput(); err != nil {
		missing("no Playwright for Python at " + python + ": " + strings.TrimSpace(string(out)) + " " + err.Error())
	}
	return python, chromium
}

// serve serves h on a listener until the test ends.
func serve(t *testing.T, addr string, h http.Handler) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return ln
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestBrowser drives the page in a real browser: enroll from an unknown,
// rename, delete a sample, see a live event arrive, cameras and model,
// and log in with auth on a non-loopback bind; it takes screenshots of
// each page at phone and desktop widths (kept in $EDGED_KEEP_SCREENSHOTS
// when set).
func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the browser test takes a while")
	}
	python, chromium := browserTools(t)
	w := newWorld(t)
	alice := w.enroll(t, "Alice", photo(1, 0, 0), photo(1, 9, 0))
	bob := w.enroll(t, "Bob", photo(2, 0, 1)) // no crop: the page says why
	carol := w.unknown(t, 20, 3, true)
	stranger := w.unknown(t, 40, 1, false)
	w.head(t, "fine-tune after 2 enrollments", map[string]float64{"dir_at_far_0.01": 0.912, "before_dir_at_far_0.01": 0.887, "unseen_auc": 0.962, "before_unseen_auc": 0.951}, false)
	w.head(t, "rejected: worse on the held-out check", map[string]float64{"dir_at_far_0.01": 0.85, "before_dir_at_far_0.01": 0.912}, false)
	w.head(t, "fine-tune after 5 enrollments", map[string]float64{"dir_at_far_0.01": 0.934, "before_dir_at_far_0.01": 0.912, "unseen_auc": 0.971, "before_unseen_auc": 0.962}, true)
	// Page 1: no authentication, loopback.
	open, err := web.New(web.Options{Backend: w.b})
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	lnOpen := serve(t, "127.0.0.1:0", open)

	// Page 2: authentication, bound to every interface (the browser
	// reaches it on 127.0.0.2: another cookie host than page 1's).
	dir := t.TempDir()
	hash, _ := bcrypt.GenerateFromPassword([]byte("open sesame"), bcrypt.MinCost)
	pwFile := filepath.Join(dir, "web.passwd")
	if err := os.WriteFile(pwFile, []byte("admin:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	auth, err := web.LoadAuth(pwFile, "")
	if err != nil {
		t.Fatal(err)
	}
	authLog := &syncBuf{}
	closed, err := web.New(web.Options{Backend: w.b, Auth: auth, Logger: slog.New(slog.NewTextHandler(authLog, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer closed.Close()
	lnAuth := serve(t, "0.0.0.0:0", closed)
	// The configuration that binds like this must have auth.
	cfg := config.Default()
	cfg.HTTP.Addr = lnAuth.Addr().String()
	cfg.Finish()
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "http.auth") {
		t.Fatalf("config without auth on %s: %v", cfg.HTTP.Addr, err)
	}
	cfg.HTTP.Auth.PasswordFile = pwFile
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(lnAuth.Addr().String())

	// Events before the page opens (the servers keep the last ones).
	now := time.Now()
	w.observe(pipeline.Event{Camera: "yard", Payload: mqtt.Camera{Camera: "yard", State: mqtt.CameraDown, Reason: "stream ended", Time: mqtt.At(now.Add(-10 * time.Minute))}})
	w.observe(pipeline.Event{Camera: "door", Payload: mqtt.Recognized{Camera: "door", Track: 39, PersonID: bob, Name: "Bob", Confidence: 0.88, Time: mqtt.At(now.Add(-4 * time.Minute))}})
	w.observe(pipeline.Event{Camera: "door", Payload: mqtt.Unknown{Camera: "door", Track: 40, UnknownID: stranger, Confidence: 0.2, Time: mqtt.At(now.Add(-3 * time.Minute))}})
	w.observe(pipeline.Event{Camera: "door", Payload: mqtt.Unknown{Camera: "door", Track: 41, UnknownID: carol, Confidence: 0.3, Time: mqtt.At(now.Add(-2 * time.Minute))}})

	shots := os.Getenv("EDGED_KEEP_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	} else if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	spec := map[string]any{
		"base": "http://" + lnOpen.Addr().String(), "auth_base": "http://127.0.0.2:" + port,
		"user": "admin", "password": "open sesame", "alice_id": alice, "unknown_id": carol, "heads": 3,
		"chromium": chromium, "shots": shots, "profile": filepath.Join(t.TempDir(), "profile"),
	}
	specFile := filepath.Join(dir, "spec.json")
	b, _ := json.Marshal(spec)
	if err := os.WriteFile(specFile, b, 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, filepath.Join("testdata", "browser_test.py"), specFile)
	stderr := &syncBuf{}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var lines []string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		lines = append(lines, line)
		t.Log("browser:", line)
		if line == "need-event" {
			// The page is open: a recognition happens now.
			w.observe(pipeline.Event{Camera: "door", Payload: mqtt.Recognized{Camera: "door", Track: 42, PersonID: alice, Name: "Alicia",
				Confidence: 0.93, Time: mqtt.At(time.Now())}})
		}
	}
	_, _ = io.Copy(io.Discard, out)
	err = cmd.Wait()
	if err != nil || len(lines) == 0 || lines[len(lines)-1] != "ok" {
		var ee *exec.ExitError
		errors.As(err, &ee)
		t.Fatalf("browser script: %v\n%s", err, stderr.String())
	}
	t.Logf("screenshots in %s", shots)

	// What the browser did is what MQTT sees.
	l := mqttList(t, w)
	names := map[string]int{}
	for _, p := range l.People {
		names[p.Name] = p.Samples
	}
	if names["Carol"] == 0 || names["Alicia"] != 1 || len(l.Unknown) != 1 || l.Unknown[0].UnknownID != stranger {
		t.Fatalf("mqtt list after the browser: %+v", l)
	}
	if !strings.Contains(authLog.String(), "login failed") || !strings.Contains(authLog.String(), "user=admin") {
		t.Fatalf("no log line for the wrong password:\n%s", authLog)
	}
}
