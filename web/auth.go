package web

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Auth says who may use the page: users with bcrypt-hashed passwords
// (log in on the page, then a session cookie), a bearer token (scripts,
// Prometheus; also accepted once on the login form), or both.
type Auth struct {
	// Users maps a user name to a bcrypt hash ($2a$, $2b$ or $2y$).
	Users map[string][]byte
	// Token is the bearer token; "" for none.
	Token string
}

// MinTokenLen is the shortest bearer token accepted: 32 characters of a
// random token are well beyond guessing at the login rate limit.
const MinTokenLen = 32

// LoadAuth reads the password file ("user:bcrypt-hash" lines, as written
// by `htpasswd -nB user`; blank lines and # comments are skipped) and the
// token file (one line). Either path may be empty; both empty gives nil
// (no authentication).
func LoadAuth(passwordFile, tokenFile string) (*Auth, error) {
	if passwordFile == "" && tokenFile == "" {
		return nil, nil
	}
	a := &Auth{Users: map[string][]byte{}}
	if passwordFile != "" {
		b, err := os.ReadFile(passwordFile)
		if err != nil {
			return nil, fmt.Errorf("http.auth.password_file: %w", err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for n := 1; sc.Scan(); n++ {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			user, hash, ok := strings.Cut(line, ":")
			if !ok || user == "" {
				return nil, fmt.Errorf("http.auth.password_file %s line %d: want user:bcrypt-hash", passwordFile, n)
			}
			if _, err := bcrypt.Cost([]byte(hash)); err != nil {
				return nil, fmt.Errorf("http.auth.password_file %s line %d (user %q): not a bcrypt hash (htpasswd -nB %s): %w", passwordFile, n, user, user, err)
			}
			a.Users[user] = []byte(hash)
		}
		if len(a.Users) == 0 {
			return nil, fmt.Errorf("http.auth.password_file %s: no user", passwordFile)
		}
	}
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, fmt.Errorf("http.auth.token_file: %w", err)
		}
		a.Token = strings.TrimSpace(string(b))
		if len(a.Token) < MinTokenLen || strings.ContainsAny(a.Token, " \t\r\n") {
			return nil, fmt.Errorf("http.auth.token_file %s: want one token of at least %d characters without spaces (e.g. openssl rand -hex 32)", tokenFile, MinTokenLen)
		}
	}
	return a, nil
}

// mode names the configured methods for the page ("none", "password",
// "token", "password+token").
func (a *Auth) mode() string {
	switch {
	case a == nil:
		return "none"
	case len(a.Users) > 0 && a.Token != "":
		return "password+token"
	case len(a.Users) > 0:
		return "password"
	}
	return "token"
}

// dummyHash is compared against when the user does not exist, so a wrong
// user name costs as long as a wrong password (no user enumeration by
// timing).
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("edged-no-such-user"), bcrypt.MinCost)

// checkPassword reports whether user and password match.
func (a *Auth) checkPassword(user, password string) bool {
	hash, ok := a.Users[user]
	if !ok {
		_ = bcrypt.CompareHashAndPassword(dummyHash, []byte(password))
		return false
	}
	return bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil
}

// checkToken compares in constant time (over hashes, so the length does
// not leak either).
func (a *Auth) checkToken(tok string) bool {
	if a.Token == "" || tok == "" {
		return false
	}
	x, y := sha256.Sum256([]byte(tok)), sha256.Sum256([]byte(a.Token))
	return subtle.ConstantTimeCompare(x[:], y[:]) == 1
}

// session is a logged-in (or, without auth, anonymous) browser.
type session struct {
	user    string
	csrf    string
	expires time.Time
}

// sessions are kept in memory: a restart logs everyone out, which is the
// safe direction.
type sessions struct {
	mu  sync.Mutex
	m   map[string]*session
	ttl time.Duration
	max int
}

func newSessions(ttl time.Duration, max int) *sessions {
	return &sessions{m: map[string]*session{}, ttl: ttl, max: max}
}

func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // the system has no randomness: nothing is safe
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// create starts a session and returns its id.
func (s *sessions) create(user string, now time.Time) (string, *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= s.max {
		s.pruneLocked(now)
	}
	for len(s.m) >= s.max { // still full: drop the one closest to expiry
		var oldest string
		for id, x := range s.m {
			if oldest == "" || x.expires.Before(s.m[oldest].expires) {
				oldest = id
			}
		}
		delete(s.m, oldest)
	}
	id := randomToken()
	x := &session{user: user, csrf: randomToken(), expires: now.Add(s.ttl)}
	s.m[id] = x
	return id, x
}

// get returns the live session with the id and extends it.
func (s *sessions) get(id string, now time.Time) (*session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	x, ok := s.m[id]
	if !ok {
		return nil, false
	}
	if now.After(x.expires) {
		delete(s.m, id)
		return nil, false
	}
	x.expires = now.Add(s.ttl)
	return x, true
}

func (s *sessions) delete(id string) {
	s.mu.Lock()
	delete(s.m, id)
	s.mu.Unlock()
}

func (s *sessions) pruneLocked(now time.Time) {
	for id, x := range s.m {
		if now.After(x.expires) {
			delete(s.m, id)
		}
	}
}

// limiter counts failed logins per client address and in total; a client
// over its limit is refused (even with the right password) until its
// window ends, so guessing runs at most Limit tries per Window.
type limiter struct {
	mu          sync.Mutex
	perClient   int
	total       int
	window      time.Duration
	clients     map[string]*failures
	all         failures
	maxTracked  int
	lastCleanup time.Time
}

type failures struct {
	n     int
	start time.Time
}

func newLimiter(perClient, total int, window time.Duration) *limiter {
	return &limiter{perClient: perClient, total: total, window: window, clients: map[string]*failures{}, maxTracked: 10000}
}

// blocked returns how long the client must wait (0: may try).
func (l *limiter) blocked(client string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if f := l.clients[client]; f != nil && f.n >= l.perClient {
		if wait := f.start.Add(l.window).Sub(now); wait > 0 {
			return wait
		}
	}
	if l.all.n >= l.total {
		if wait := l.all.start.Add(l.window).Sub(now); wait > 0 {
			return wait
		}
	}
	return 0
}

// fail records a failed attempt.
func (l *limiter) fail(client string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastCleanup) > l.window || len(l.clients) > l.maxTracked {
		for c, f := range l.clients {
			if now.Sub(f.start) > l.window {
				delete(l.clients, c)
			}
		}
		l.lastCleanup = now
	}
	f := l.clients[client]
	if f == nil || now.Sub(f.start) > l.window {
		f = &failures{start: now}
		if len(l.clients) < l.maxTracked {
			l.clients[client] = f
		}
	}
	f.n++
	if now.Sub(l.all.start) > l.window {
		l.all = failures{start: now}
	}
	l.all.n++
}

// succeed forgets the client's failures.
func (l *limiter) succeed(client string) {
	l.mu.Lock()
	delete(l.clients, client)
	l.mu.Unlock()
}

// clientAddr is the client's IP: the connection's peer. Headers such as
// X-Forwarded-For are not trusted (anyone can send them).
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// localIsLoopback reports whether the request arrived on a loopback
// address of this machine.
func localIsLoopback(r *http.Request) bool {
	addr, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return false
	}
	host, _, err := net.SplitHostPort(addr.String())
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
