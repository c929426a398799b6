package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// fakeBackend serves canned data and records the changes asked of it.
type fakeBackend struct {
	mu      sync.Mutex
	people  []Person
	unknown []Unknown
	calls   []string
	events  chan Event
	crop    []byte
}

func newFake() *fakeBackend {
	return &fakeBackend{
		people:  []Person{{ID: "p1", Name: "Alice", Samples: 2, Thumb: "s1"}, {ID: "p2", Name: "Bob", Samples: 1, NoThumb: "no crop"}},
		unknown: []Unknown{{ID: "unknown-3", Count: 4, Thumbs: []int{1, 0}}},
		events:  make(chan Event, 16),
		crop:    []byte("\x89PNG fake"),
	}
}

func (f *fakeBackend) record(s string) { f.mu.Lock(); f.calls = append(f.calls, s); f.mu.Unlock() }
func (f *fakeBackend) called() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeBackend) People(context.Context) ([]Person, error) { return f.people, nil }
func (f *fakeBackend) Person(_ context.Context, id string) (PersonDetail, error) {
	for _, p := range f.people {
		if p.ID == id {
			return PersonDetail{Person: p, SampleList: []Sample{{ID: "s1", HasCrop: true}}}, nil
		}
	}
	return PersonDetail{}, Errorf("unknown_person", "person %q not found", id)
}
func (f *fakeBackend) Rename(_ context.Context, id, name string) (Person, error) {
	f.record("rename " + id + " " + name)
	return Person{ID: id, Name: name}, nil
}
func (f *fakeBackend) DeletePerson(_ context.Context, id string) error {
	f.record("delete " + id)
	return nil
}
func (f *fakeBackend) RemoveSample(_ context.Context, id, s string) error {
	f.record("remove " + id + " " + s)
	return Errorf("last_sample", "sample %s is the last sample of %s: delete the person instead", s, id)
}
func (f *fakeBackend) Feedback(_ context.Context, fb Feedback) error {
	f.record("feedback " + fb.PersonID + " " + fb.SampleID + " " + fb.Camera)
	return nil
}
func (f *fakeBackend) SampleThumbnail(_ context.Context, id, s string) ([]byte, error) {
	if id == "p1" {
		return f.crop, nil
	}
	return nil, nil
}
func (f *fakeBackend) Unknowns(context.Context) ([]Unknown, error) { return f.unknown, nil }
func (f *fakeBackend) UnknownThumbnail(_ context.Context, id string, i int) ([]byte, error) {
	if id == "unknown-3" && i <= 1 {
		return f.crop, nil
	}
	return nil, nil
}
func (f *fakeBackend) EnrollUnknown(_ context.Context, id, name, pid string) (EnrollResult, error) {
	f.record("enroll " + id + " " + name + " " + pid)
	return EnrollResult{PersonID: "p9", Name: name, Created: true, SamplesAdded: 3, SamplesTotal: 3}, nil
}
func (f *fakeBackend) DismissUnknown(_ context.Context, id string) error {
	f.record("dismiss " + id)
	return nil
}
func (f *fakeBackend) Cameras(context.Context) ([]Camera, error) {
	return []Camera{{Name: "door", State: CameraDown, Reason: "stream ended", FPS: 0}}, nil
}
func (f *fakeBackend) CameraFrame(context.Context, string) ([]byte, error) {
	return nil, errors.New("/dev/video0: secret internal detail")
}
func (f *fakeBackend) Model(context.Context) (Model, error) {
	return Model{Backbone: "mobilefacenet"}, nil
}
func (f *fakeBackend) ActivateHead(context.Context, string) error   { return nil }
func (f *fakeBackend) RollbackHead(context.Context) (string, error) { return "", nil }
func (f *fakeBackend) StartFinetune(context.Context) (string, error) {
	return "", Errorf(CodeUnavailable, "fine-tuning is off")
}
func (f *fakeBackend) Subscribe(ctx context.Context) <-chan Event {
	out := make(chan Event)
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case e := <-f.events:
				select {
				case out <- e:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

// logBuf is a concurrency-safe log sink.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logBuf) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func newServer(t *testing.T, o Options) (*Server, *fakeBackend, *httptest.Server, *logBuf) {
	t.Helper()
	fb := newFake()
	logs := &logBuf{}
	o.Backend = fb
	o.Logger = slog.New(slog.NewTextHandler(logs, nil))
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(func() { s.Close(); ts.Close() })
	return s, fb, ts, logs
}

// client is a browser: a cookie jar and the CSRF token.
type client struct {
	t    *testing.T
	base string
	hc   *http.Client
	csrf string
}

func newClient(t *testing.T, base string) *client {
	j, _ := cookiejar.New(nil)
	return &client{t: t, base: base, hc: &http.Client{Jar: j}}
}

func (c *client) do(method, path string, body any, hdr ...string) (*http.Response, []byte) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.base+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.csrf != "" && method != http.MethodGet {
		req.Header.Set(csrfHeader, c.csrf)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, b
}

func TestNoAuthServesLoopbackWithCSRF(t *testing.T) {
	_, fb, ts, _ := newServer(t, Options{})
	c := newClient(t, ts.URL)

	res, body := c.do("GET", "/", nil)
	if res.StatusCode != 200 || !strings.Contains(string(body), "/static/app.js") {
		t.Fatalf("page: %d %s", res.StatusCode, body)
	}
	for _, h := range []string{"Content-Security-Policy", "X-Content-Type-Options"} {
		if res.Header.Get(h) == "" {
			t.Errorf("page without %s", h)
		}
	}
	if !strings.Contains(res.Header.Get("Content-Security-Policy"), "script-src 'self'") {
		t.Errorf("CSP %q", res.Header.Get("Content-Security-Policy"))
	}
	res, _ = c.do("GET", "/static/app.js", nil)
	if res.StatusCode != 200 || !strings.Contains(res.Header.Get("Content-Type"), "javascript") || res.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("app.js: %d %v", res.StatusCode, res.Header)
	}

	// Reading needs no session; a change needs the CSRF token.
	res, body = c.do("GET", "/api/overview", nil)
	var ov overview
	if res.StatusCode != 200 || json.Unmarshal(body, &ov) != nil || len(ov.People) != 2 || len(ov.Unknown) != 1 {
		t.Fatalf("overview: %d %s", res.StatusCode, body)
	}
	res, _ = c.do("POST", "/api/unknown/unknown-3/enroll", map[string]string{"name": "Carol"})
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("enroll without CSRF: %d", res.StatusCode)
	}
	res, body = c.do("GET", "/api/session", nil)
	var si sessionInfo
	if res.StatusCode != 200 || json.Unmarshal(body, &si) != nil || si.Auth != "none" || !si.LoggedIn || si.CSRF == "" {
		t.Fatalf("session: %d %s", res.StatusCode, body)
	}
	c.csrf = "wrong"
	if res, _ = c.do("POST", "/api/unknown/unknown-3/enroll", map[string]string{"name": "Carol"}); res.StatusCode != http.StatusForbidden {
		t.Fatalf("enroll with a wrong CSRF token: %d", res.StatusCode)
	}
	c.csrf = si.CSRF
	res, body = c.do("POST", "/api/unknown/unknown-3/enroll", map[string]string{"name": "Carol"})
	if res.StatusCode != 200 || !strings.Contains(string(body), `"name":"Carol"`) {
		t.Fatalf("enroll: %d %s", res.StatusCode, body)
	}
	// A cross-site page cannot post even with the cookie (Origin), nor
	// as a form (content type).
	if res, _ = c.do("POST", "/api/people/p1/rename", map[string]string{"name": "Eve"}, "Origin", "http://evil.example"); res.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin rename: %d", res.StatusCode)
	}
	if res, _ = c.do("POST", "/api/people/p1/rename", nil, "Content-Type", "application/x-www-form-urlencoded"); res.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("form rename: %d", res.StatusCode)
	}
	if got := fb.called(); len(got) != 1 || got[0] != "enroll unknown-3 Carol " {
		t.Fatalf("backend calls %q", got)
	}
}

func TestNoAuthRefusesNonLoopback(t *testing.T) {
	s, _, _, logs := newServer(t, Options{})
	for _, local := range []string{"192.0.2.7:9108", "[2001:db8::1]:9108"} {
		req := httptest.NewRequest("GET", "/api/overview", nil)
		addr, _ := net.ResolveTCPAddr("tcp", local)
		req = req.WithContext(context.WithValue(req.Context(), http.LocalAddrContextKey, addr))
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "http.auth") {
			t.Errorf("%s: %d %s", local, rec.Code, rec.Body)
		}
	}
	if !strings.Contains(logs.String(), "non-loopback") {
		t.Error("refusal not logged")
	}
}

func writeAuth(t *testing.T) (*Auth, string) {
	t.Helper()
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("correct horse"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	pw, tf := filepath.Join(dir, "passwd"), filepath.Join(dir, "token")
	token := strings.Repeat("t0k3n", 8)
	if err := os.WriteFile(pw, []byte("# users\nadmin:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tf, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := LoadAuth(pw, tf)
	if err != nil {
		t.Fatal(err)
	}
	return a, token
}

func TestLoadAuthRejectsBadFiles(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{"plain": "admin:secret\n", "nouser": ":$2y$10$x\n", "empty": "# nobody\n"} {
		p := filepath.Join(dir, name)
		_ = os.WriteFile(p, []byte(content), 0o600)
		if _, err := LoadAuth(p, ""); err == nil {
			t.Errorf("password file %q accepted", content)
		}
	}
	p := filepath.Join(dir, "short")
	_ = os.WriteFile(p, []byte("short-token\n"), 0o600)
	if _, err := LoadAuth("", p); err == nil || !strings.Contains(err.Error(), "32") {
		t.Errorf("short token: %v", err)
	}
	if a, err := LoadAuth("", ""); a != nil || err != nil {
		t.Errorf("no files: %v %v", a, err)
	}
}

func TestLoginSessionTokenAndRateLimit(t *testing.T) {
	auth, token := writeAuth(t)
	s, _, ts, logs := newServer(t, Options{Auth: auth, LoginFailures: 3})
	c := newClient(t, ts.URL)

	if res, _ := c.do("GET", "/api/overview", nil); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("overview before login: %d", res.StatusCode)
	}
	// The page itself is served (it holds no data) and says login.
	res, body := c.do("GET", "/api/session", nil)
	if res.StatusCode != 200 || !strings.Contains(string(body), `"logged_in":false`) || !strings.Contains(string(body), `"auth":"password+token"`) {
		t.Fatalf("session before login: %s", body)
	}
	res, body = c.do("POST", "/api/login", loginRequest{User: "admin", Password: "wrong"})
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d %s", res.StatusCode, body)
	}
	if !strings.Contains(logs.String(), "login failed") || !strings.Contains(logs.String(), "user=admin") {
		t.Fatalf("no log line for the failure: %s", logs)
	}
	if strings.Contains(logs.String(), "wrong") {
		t.Fatal("the password was logged")
	}
	res, _ = c.do("POST", "/api/login", loginRequest{User: "nobody", Password: "x"})
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unknown user: %d", res.StatusCode)
	}
	res, _ = c.do("POST", "/api/login", loginRequest{Token: "not-the-token"})
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d", res.StatusCode)
	}
	// Three failures: now even the right password waits.
	res, body = c.do("POST", "/api/login", loginRequest{User: "admin", Password: "correct horse"})
	if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" {
		t.Fatalf("4th try: %d %s", res.StatusCode, body)
	}
	// The window passes.
	s.now = func() time.Time { return time.Now().Add(2 * time.Minute) }
	res, body = c.do("POST", "/api/login", loginRequest{User: "admin", Password: "correct horse"})
	var si sessionInfo
	if res.StatusCode != 200 || json.Unmarshal(body, &si) != nil || si.CSRF == "" || si.User != "admin" {
		t.Fatalf("login: %d %s", res.StatusCode, body)
	}
	var cookie *http.Cookie
	for _, ck := range res.Cookies() {
		if strings.HasPrefix(ck.Name, cookieName) {
			cookie = ck
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode {
		t.Fatalf("session cookie %+v", cookie)
	}
	if res, _ = c.do("GET", "/api/overview", nil); res.StatusCode != 200 {
		t.Fatalf("overview after login: %d", res.StatusCode)
	}
	c.csrf = si.CSRF
	if res, _ = c.do("POST", "/api/people/p1/rename", map[string]string{"name": "Alicia"}); res.StatusCode != 200 {
		t.Fatalf("rename: %d", res.StatusCode)
	}
	if res, _ = c.do("POST", "/api/logout", map[string]string{}); res.StatusCode != 200 {
		t.Fatalf("logout: %d", res.StatusCode)
	}
	if res, _ = c.do("GET", "/api/overview", nil); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("overview after logout: %d", res.StatusCode)
	}

	// Scripts: the bearer token, no CSRF needed (not a cookie).
	sc := newClient(t, ts.URL)
	if res, _ = sc.do("GET", "/api/people", nil, "Authorization", "Bearer "+token); res.StatusCode != 200 {
		t.Fatalf("bearer: %d", res.StatusCode)
	}
	if res, _ = sc.do("DELETE", "/api/unknown/unknown-3", nil, "Authorization", "Bearer "+token); res.StatusCode != 200 {
		t.Fatalf("bearer dismiss: %d", res.StatusCode)
	}
	if res, _ = sc.do("GET", "/api/people", nil, "Authorization", "Bearer nope"); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong bearer: %d", res.StatusCode)
	}
	// Protect puts /metrics behind the same check.
	h := s.Protect(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "metrics") }))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("protected metrics without auth: %d", rec.Code)
	}
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 || rec.Body.String() != "metrics" {
		t.Fatalf("protected metrics with the token: %d", rec.Code)
	}
}

func TestSecureCookieUnderTLS(t *testing.T) {
	auth, _ := writeAuth(t)
	s, err := New(Options{Backend: newFake(), Auth: auth, Secure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ts := httptest.NewTLSServer(s)
	defer ts.Close()
	b, _ := json.Marshal(loginRequest{User: "admin", Password: "correct horse"})
	req, _ := http.NewRequest("POST", ts.URL+"/api/login", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	res, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if len(res.Cookies()) != 1 || !res.Cookies()[0].Secure {
		t.Fatalf("cookies %+v", res.Cookies())
	}
}

func TestPicturesAndErrors(t *testing.T) {
	_, _, ts, logs := newServer(t, Options{})
	c := newClient(t, ts.URL)
	res, body := c.do("GET", "/api/people/p1/samples/s1/crop", nil)
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "image/png" || !bytes.HasPrefix(body, []byte("\x89PNG")) {
		t.Fatalf("crop: %d %v", res.StatusCode, res.Header)
	}
	// No crop: nothing served, and the answer says why.
	res, body = c.do("GET", "/api/people/p2/thumb", nil)
	if res.StatusCode != 404 || !strings.Contains(string(body), "no face crop was kept") {
		t.Fatalf("no crop: %d %s", res.StatusCode, body)
	}
	if res, _ = c.do("GET", "/api/unknown/unknown-3/thumb", nil); res.StatusCode != 200 {
		t.Fatalf("unknown thumb: %d", res.StatusCode)
	}
	if res, _ = c.do("GET", "/api/unknown/unknown-3/crops/x", nil); res.StatusCode != 400 {
		t.Fatalf("bad slot: %d", res.StatusCode)
	}
	// A coded error keeps its message and status; another is hidden.
	res, body = c.do("GET", "/api/people/nobody", nil)
	if res.StatusCode != 404 || !strings.Contains(string(body), "unknown_person") {
		t.Fatalf("unknown person: %d %s", res.StatusCode, body)
	}
	res, body = c.do("GET", "/api/cameras/door/frame", nil)
	if res.StatusCode != 500 || strings.Contains(string(body), "/dev/video0") {
		t.Fatalf("internal error shown: %d %s", res.StatusCode, body)
	}
	if !strings.Contains(logs.String(), "secret internal detail") {
		t.Error("internal error not logged")
	}
	_, body = c.do("GET", "/api/session", nil)
	var si sessionInfo
	_ = json.Unmarshal(body, &si)
	c.csrf = si.CSRF
	res, body = c.do("DELETE", "/api/people/p1/samples/s1", nil)
	if res.StatusCode != http.StatusConflict || !strings.Contains(string(body), "last sample") {
		t.Fatalf("last sample: %d %s", res.StatusCode, body)
	}
	res, _ = c.do("POST", "/api/model/finetune", map[string]string{})
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("finetune off: %d", res.StatusCode)
	}
	res, _ = c.do("POST", "/api/unknown/unknown-3/enroll", map[string]string{"name": "A", "person_id": "p1"})
	if res.StatusCode != 400 {
		t.Fatalf("name and person: %d", res.StatusCode)
	}
	if res, _ = c.do("GET", "/api/nothing", nil); res.StatusCode != 404 {
		t.Fatalf("unknown endpoint: %d", res.StatusCode)
	}
}

func TestEventStream(t *testing.T) {
	s, fb, ts, _ := newServer(t, Options{Events: 2})
	fb.events <- Event{Type: EventRecognized, PersonID: "p1", Name: "Alice", Camera: "door", Track: 7, Time: time.Now()}
	// Wait for the hub to keep it.
	deadline := time.Now().Add(5 * time.Second)
	for len(s.hub.recent()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/api/events/stream", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("content type %q", res.Header.Get("Content-Type"))
	}
	fb.events <- Event{Type: EventUnknown, UnknownID: "unknown-3", Camera: "door", Time: time.Now()}
	var got []Event
	buf := make([]byte, 4096)
	var acc string
	for len(got) < 2 {
		n, err := res.Body.Read(buf)
		if err != nil {
			t.Fatalf("stream: %v (got %q)", err, acc)
		}
		acc += string(buf[:n])
		for {
			i := strings.Index(acc, "\n\n")
			if i < 0 {
				break
			}
			block := acc[:i]
			acc = acc[i+2:]
			for _, line := range strings.Split(block, "\n") {
				if d, ok := strings.CutPrefix(line, "data: "); ok {
					var e Event
					if err := json.Unmarshal([]byte(d), &e); err != nil {
						t.Fatal(err)
					}
					got = append(got, e)
				}
			}
		}
	}
	if got[0].Type != EventRecognized || got[0].Thumb != "/api/people/p1/thumb" || got[0].Seq != 1 {
		t.Errorf("backlog event %+v", got[0])
	}
	if got[1].Type != EventUnknown || got[1].Thumb != "/api/unknown/unknown-3/thumb" || got[1].Seq != 2 {
		t.Errorf("live event %+v", got[1])
	}
	// Close ends the stream.
	s.Close()
	if _, err := io.ReadAll(res.Body); err != nil && !errors.Is(err, context.Canceled) {
		t.Logf("after close: %v", err)
	}
}

// TestTwoDaemonsOnOneHostKeepTheirSessions: browsers keep cookies per host,
// not per port; logging in to a second daemon on the same host must not
// log the browser out of the first.
func TestTwoDaemonsOnOneHostKeepTheirSessions(t *testing.T) {
	auth, _ := writeAuth(t)
	_, _, ts1, _ := newServer(t, Options{Auth: auth})
	_, _, ts2, _ := newServer(t, Options{Auth: auth})
	browser := newClient(t, ts1.URL)
	other := &client{t: t, base: ts2.URL, hc: browser.hc} // the same cookie jar
	for _, c := range []*client{browser, other} {
		if res, body := c.do("POST", "/api/login", loginRequest{User: "admin", Password: "correct horse"}); res.StatusCode != 200 {
			t.Fatalf("login at %s: %d %s", c.base, res.StatusCode, body)
		}
	}
	for _, c := range []*client{browser, other} {
		if res, body := c.do("GET", "/api/overview", nil); res.StatusCode != 200 {
			t.Fatalf("%s after logging in to both: %d %s", c.base, res.StatusCode, body)
		}
	}
	req := httptest.NewRequest("GET", "/", nil)
	for host, want := range map[string]string{"127.0.0.1:8080": "edged_session_8080", "[::1]:9": "edged_session_9",
		"edge.local": "edged_session", "x:8080;a=b": "edged_session", "h:123456": "edged_session"} {
		req.Host = host
		if got := sessionCookie(req); got != want {
			t.Errorf("Host %q: cookie %q, want %q", host, got, want)
		}
	}
}
