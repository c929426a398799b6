package web

import (
	"context"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

//go:embed static
var staticFS embed.FS

// Options configure a Server. Zero values take the documented defaults.
type Options struct {
	// Backend serves the data; required.
	Backend Backend `yaml:"-"`
	// Auth is who may use the page (LoadAuth). nil: nobody needs to log
	// in, and the server then answers only requests that arrive on a
	// loopback address (403 otherwise), whatever it is mounted on.
	Auth *Auth `yaml:"-"`
	// Secure marks the session cookie Secure: set it when the listener
	// serves TLS (http.tls_cert).
	Secure bool `yaml:"secure"`
	// SessionTTL is how long a session lives without a request. Default 12h.
	SessionTTL time.Duration `yaml:"session_ttl"`
	// MaxSessions bounds the sessions kept in memory. Default 1000.
	MaxSessions int `yaml:"max_sessions"`
	// LoginFailures is how many failed logins (or wrong bearer tokens) a
	// client address may make per LoginWindow before it gets 429 until
	// the window ends. Default 5.
	LoginFailures int `yaml:"login_failures"`
	// LoginFailuresTotal is the same over all clients together (a guesser
	// with many addresses). Default 50.
	LoginFailuresTotal int `yaml:"login_failures_total"`
	// LoginWindow is the rate limit's window. Default 1m.
	LoginWindow time.Duration `yaml:"login_window"`
	// Events is how many recent events the server keeps for pages that
	// open later. Default 200.
	Events int `yaml:"events"`
	// Logger gets a line per failed login and per internal error. Default:
	// discard.
	Logger *slog.Logger `yaml:"-"`
}

func (o *Options) fill() {
	if o.SessionTTL <= 0 {
		o.SessionTTL = 12 * time.Hour
	}
	if o.MaxSessions <= 0 {
		o.MaxSessions = 1000
	}
	if o.LoginFailures <= 0 {
		o.LoginFailures = 5
	}
	if o.LoginFailuresTotal <= 0 {
		o.LoginFailuresTotal = 50
	}
	if o.LoginWindow <= 0 {
		o.LoginWindow = time.Minute
	}
	if o.Events <= 0 {
		o.Events = 200
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Server is the web page and its JSON API, an http.Handler to mount at "/".
// It is safe for concurrent use. Close it when the daemon stops: that ends
// the event streams (an http.Server's Shutdown waits for them otherwise).
type Server struct {
	o        Options
	log      *slog.Logger
	mux      *http.ServeMux
	sess     *sessions
	lim      *limiter
	hub      *hub
	cancel   context.CancelFunc
	done     chan struct{}
	closeOne sync.Once
	now      func() time.Time
}

var _ http.Handler = (*Server)(nil)

// New returns the server and starts relaying the backend's events.
func New(o Options) (*Server, error) {
	if o.Backend == nil {
		return nil, errors.New("web: Options.Backend is required")
	}
	if o.Auth != nil && len(o.Auth.Users) == 0 && o.Auth.Token == "" {
		return nil, errors.New("web: Options.Auth has no user and no token (use nil for no authentication)")
	}
	o.fill()
	s := &Server{
		o: o, log: o.Logger.With("component", "web"),
		sess: newSessions(o.SessionTTL, o.MaxSessions),
		lim:  newLimiter(o.LoginFailures, o.LoginFailuresTotal, o.LoginWindow),
		hub:  newHub(o.Events),
		done: make(chan struct{}),
		now:  time.Now,
	}
	s.routes()
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	// Subscribed before New returns: no event after it is missed.
	events := o.Backend.Subscribe(ctx)
	go func() {
		defer close(s.done)
		s.hub.run(ctx, o.Backend, events)
	}()
	return s, nil
}

// Close stops relaying events and ends the open event streams.
func (s *Server) Close() error {
	s.closeOne.Do(func() {
		s.cancel()
		<-s.done
	})
	return nil
}

const (
	cookieName = "edged_session" // + "_<port>" when the page is reached on a port (sessionCookie)
	csrfHeader = "X-CSRF-Token"
	maxBody    = 64 << 10
	// The page loads only its own files; images may be blob:/data: (the
	// camera frame), and nothing may frame it.
	csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; " +
		"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

func setSecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w.Header())
	if s.o.Auth == nil && !localIsLoopback(r) {
		// Mounted without authentication on an address others can
		// reach: refuse rather than hand the gallery to the network.
		s.log.Warn("web: request on a non-loopback address refused: no http.auth configured", "remote", clientAddr(r))
		writeError(w, http.StatusForbidden, "auth_required", "this page is served without authentication, so only on a loopback address: configure http.auth")
		return
	}
	s.mux.ServeHTTP(w, r)
}

// Protect wraps another handler of the same listener (e.g. /metrics) in the
// page's authentication: a bearer token or a session cookie; without Auth
// it only answers on loopback addresses.
func (s *Server) Protect(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setSecurityHeaders(w.Header())
		if s.o.Auth == nil {
			if !localIsLoopback(r) {
				writeError(w, http.StatusForbidden, "auth_required", "served without authentication, so only on a loopback address: configure http.auth")
				return
			}
			h.ServeHTTP(w, r)
			return
		}
		if _, ok := s.authenticate(w, r); !ok {
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (s *Server) routes() {
	m := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	files := http.FileServerFS(static)
	m.Handle("GET /static/", http.StripPrefix("/static/", noCache(files)))
	m.HandleFunc("GET /{$}", s.page)
	m.HandleFunc("GET /index.html", s.page)

	m.HandleFunc("GET /api/session", s.handleSession)
	m.HandleFunc("POST /api/login", s.handleLogin)
	m.HandleFunc("POST /api/logout", s.api(s.handleLogout))

	m.HandleFunc("GET /api/overview", s.api(s.handleOverview))
	m.HandleFunc("GET /api/people", s.api(s.handlePeople))
	m.HandleFunc("GET /api/people/{id}", s.api(s.handlePerson))
	m.HandleFunc("POST /api/people/{id}/rename", s.api(s.handleRename))
	m.HandleFunc("DELETE /api/people/{id}", s.api(s.handleDeletePerson))
	m.HandleFunc("DELETE /api/people/{id}/samples/{sample}", s.api(s.handleRemoveSample))
	m.HandleFunc("POST /api/people/{id}/feedback", s.api(s.handleFeedback))
	m.HandleFunc("GET /api/people/{id}/thumb", s.api(s.handlePersonThumb))
	m.HandleFunc("GET /api/people/{id}/samples/{sample}/crop", s.api(s.handleSampleCrop))

	m.HandleFunc("GET /api/unknown", s.api(s.handleUnknowns))
	m.HandleFunc("POST /api/unknown/{id}/enroll", s.api(s.handleEnrollUnknown))
	m.HandleFunc("DELETE /api/unknown/{id}", s.api(s.handleDismiss))
	m.HandleFunc("GET /api/unknown/{id}/thumb", s.api(s.handleUnknownThumb))
	m.HandleFunc("GET /api/unknown/{id}/crops/{slot}", s.api(s.handleUnknownCrop))

	m.HandleFunc("GET /api/cameras", s.api(s.handleCameras))
	m.HandleFunc("GET /api/cameras/{name}/frame", s.api(s.handleFrame))

	m.HandleFunc("GET /api/model", s.api(s.handleModel))
	m.HandleFunc("POST /api/model/activate", s.api(s.handleActivate))
	m.HandleFunc("POST /api/model/rollback", s.api(s.handleRollback))
	m.HandleFunc("POST /api/model/finetune", s.api(s.handleFinetune))

	m.HandleFunc("GET /api/events", s.api(s.handleRecentEvents))
	m.HandleFunc("GET /api/events/stream", s.api(s.handleStream))
	m.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, CodeNotFound, "no such API endpoint")
	})
	s.mux = m
}

// noCache makes the browser revalidate the embedded files (they change
// with the binary, and are small).
func noCache(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}

// page serves the single page; it holds no data (the API does), so it is
// served before login too.
func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	b, err := staticFS.ReadFile("static/index.html")
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", "page missing from the binary")
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(b)
}

// caller is who made a request.
type caller struct {
	user   string
	sessID string
	sess   *session
	bearer bool
}

// authenticate finds the caller: a bearer token, else a session cookie.
// Without Auth, a session is still needed for state-changing requests
// (its CSRF token), but reading needs none. On failure it writes the
// answer and returns ok false.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (caller, bool) {
	now := s.now()
	if h := r.Header.Get("Authorization"); h != "" && s.o.Auth != nil {
		tok, ok := strings.CutPrefix(h, "Bearer ")
		client := clientAddr(r)
		if wait := s.lim.blocked(client, now); wait > 0 {
			tooMany(w, wait)
			return caller{}, false
		}
		if !ok || !s.o.Auth.checkToken(strings.TrimSpace(tok)) {
			s.lim.fail(client, now)
			s.log.Warn("web: wrong bearer token", "remote", client, "path", r.URL.Path)
			writeError(w, http.StatusUnauthorized, "unauthorized", "wrong bearer token")
			return caller{}, false
		}
		s.lim.succeed(client)
		return caller{user: "token", bearer: true}, true
	}
	if c, err := r.Cookie(sessionCookie(r)); err == nil {
		if x, ok := s.sess.get(c.Value, now); ok {
			return caller{user: x.user, sessID: c.Value, sess: x}, true
		}
	}
	if s.o.Auth == nil {
		return caller{}, true
	}
	writeError(w, http.StatusUnauthorized, "unauthorized", "log in first")
	return caller{}, false
}

// api wraps an API handler: authentication, CSRF on state-changing
// methods, no caching.
func (s *Server) api(fn func(w http.ResponseWriter, r *http.Request, c caller)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		c, ok := s.authenticate(w, r)
		if !ok {
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead && !c.bearer {
			if !s.checkCSRF(w, r, c) {
				return
			}
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			// A change, once accepted, runs to its end even when the
			// browser goes away: the user sees the outcome on reload.
			r = r.WithContext(context.WithoutCancel(r.Context()))
		}
		fn(w, r, c)
	}
}

// checkCSRF: a state-changing request from a browser carries the session's
// CSRF token in a header (a cross-site form cannot set headers, nor read
// the token) and, when the browser sends one, an Origin of this host.
func (s *Server) checkCSRF(w http.ResponseWriter, r *http.Request, c caller) bool {
	if !sameOrigin(r) {
		s.log.Warn("web: cross-origin request refused", "remote", clientAddr(r), "origin", r.Header.Get("Origin"), "path", r.URL.Path)
		writeError(w, http.StatusForbidden, "csrf", "cross-origin request refused")
		return false
	}
	tok := r.Header.Get(csrfHeader)
	if c.sess == nil || tok == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(c.sess.csrf)) != 1 {
		writeError(w, http.StatusForbidden, "csrf", "missing or wrong CSRF token: reload the page")
		return false
	}
	return true
}

// sameOrigin reports whether the Origin header, when present, names the
// host the request was sent to.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

func tooMany(w http.ResponseWriter, wait time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds()+0.999)))
	writeError(w, http.StatusTooManyRequests, "rate_limited", fmt.Sprintf("too many failed logins: try again in %d s", int(wait.Seconds()+0.999)))
}

// sessionCookie is the session cookie's name for a request. Browsers keep
// cookies per host, not per port, so two daemons on one host (two
// listeners) would overwrite each other's session and log each other out;
// the port the page was reached on keeps them apart. A Host header that is
// not a plain port number gives the bare name.
func sessionCookie(r *http.Request) string {
	_, port, err := net.SplitHostPort(r.Host)
	if err != nil || port == "" || len(port) > 5 {
		return cookieName
	}
	for _, c := range port {
		if c < '0' || c > '9' {
			return cookieName
		}
	}
	return cookieName + "_" + port
}

func (s *Server) setCookie(w http.ResponseWriter, r *http.Request, id string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie(r), Value: id, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: s.o.Secure, SameSite: http.SameSiteStrictMode,
	})
}

// sessionInfo is GET /api/session.
type sessionInfo struct {
	Auth     string `json:"auth"`               // none | password | token | password+token
	LoggedIn bool   `json:"logged_in"`          //
	User     string `json:"user,omitempty"`     //
	CSRF     string `json:"csrf,omitempty"`     // send as X-CSRF-Token on POST/DELETE
	Insecure bool   `json:"insecure,omitempty"` // a password over plain HTTP from another machine
}

// handleSession tells the page whether it must log in, and gives it its
// CSRF token. Without Auth it starts an anonymous session.
func (s *Server) handleSession(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	info := sessionInfo{Auth: s.o.Auth.mode(), Insecure: s.o.Auth != nil && !s.o.Secure && !localIsLoopback(r)}
	if c, err := r.Cookie(sessionCookie(r)); err == nil {
		if x, ok := s.sess.get(c.Value, s.now()); ok {
			info.LoggedIn, info.User, info.CSRF = true, x.user, x.csrf
		}
	}
	if !info.LoggedIn && s.o.Auth == nil {
		id, x := s.sess.create("", s.now())
		s.setCookie(w, r, id, 0)
		info.LoggedIn, info.CSRF = true, x.csrf
	}
	writeJSON(w, http.StatusOK, info)
}

type loginRequest struct {
	User     string `json:"user"`
	Password string `json:"password"`
	Token    string `json:"token"`
}

// handleLogin checks a user and password (or the token) and starts a
// session. A failure is a 401 and a log line; too many are a 429.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if !sameOrigin(r) {
		writeError(w, http.StatusForbidden, "csrf", "cross-origin request refused")
		return
	}
	if s.o.Auth == nil {
		s.handleSession(w, r)
		return
	}
	var req loginRequest
	if !decode(w, r, &req) {
		return
	}
	client, now := clientAddr(r), s.now()
	if wait := s.lim.blocked(client, now); wait > 0 {
		s.log.Warn("web: login refused: rate limited", "remote", client, "user", req.User, "retry_after", wait.Round(time.Second))
		tooMany(w, wait)
		return
	}
	user := ""
	switch {
	case req.Token != "" && s.o.Auth.checkToken(req.Token):
		user = "token"
	case req.Token == "" && req.User != "" && s.o.Auth.checkPassword(req.User, req.Password):
		user = req.User
	}
	if user == "" {
		s.lim.fail(client, now)
		s.log.Warn("web: login failed", "remote", client, "user", req.User, "token", req.Token != "")
		writeError(w, http.StatusUnauthorized, "unauthorized", "wrong user name or password")
		return
	}
	s.lim.succeed(client)
	id, x := s.sess.create(user, now)
	s.setCookie(w, r, id, 0)
	s.log.Info("web: login", "remote", client, "user", user)
	writeJSON(w, http.StatusOK, sessionInfo{Auth: s.o.Auth.mode(), LoggedIn: true, User: user, CSRF: x.csrf})
}

func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request, c caller) {
	if c.sessID != "" {
		s.sess.delete(c.sessID)
	}
	s.setCookie(w, r, "", -1)
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

// --- JSON helpers

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	var b errorBody
	b.Error.Code, b.Error.Message = code, msg
	writeJSON(w, status, b)
}

// fail answers a backend error: coded errors with their message, others
// as "internal" (logged with the request, not shown).
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, code, show := statusOf(err)
	if errors.Is(err, context.Canceled) {
		return // the browser went away
	}
	if !show {
		s.log.Error("web: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, status, code, "internal error (see the daemon's log)")
		return
	}
	writeError(w, status, code, err.Error())
}

// decode reads a JSON body into v; it answers 400 itself.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		// A JSON content type cannot be sent cross-site without a CORS
		// preflight, which this server never grants.
		writeError(w, http.StatusUnsupportedMediaType, CodeBadRequest, "want Content-Type: application/json")
		return false
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_json", "body: "+err.Error())
		return false
	}
	return true
}

// jsonLine marshals v on one line (SSE data lines must not contain
// newlines; encoding/json never writes any inside a value).
func jsonLine(v any) ([]byte, error) { return json.Marshal(v) }
