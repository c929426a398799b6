// Package web is edged's web page: the face library (people and unknown
// faces to name), live events, cameras and the model, served as one
// http.Handler with its JSON API and its embedded static files (plain
// HTML, CSS and JavaScript: no build step).
//
// # Usage
//
//	auth, err := web.LoadAuth(cfg.HTTP.Auth.PasswordFile, cfg.HTTP.Auth.TokenFile) // nil: none
//	srv, err := web.New(web.Options{Backend: b, Auth: auth, Secure: tls, Logger: log})
//	defer srv.Close()
//	mux.Handle("/", srv)                       // the page and /api/...
//	mux.Handle("/metrics", srv.Protect(metrics)) // optional: the same auth
//
// The data comes from a Backend; package web/backend implements it over
// the daemon's service layer, the same calls the MQTT commands make.
//
// # Security
//
// Without Auth the server answers only requests that arrive on a loopback
// address. With it, the page logs in with a user and bcrypt-hashed
// password (or the token) and gets a session cookie (HttpOnly,
// SameSite=Strict, Secure under TLS); scripts send "Authorization: Bearer
// <token>". Failed logins are logged, answered 401 and rate-limited per
// client address and in total (429 with Retry-After). Every state-changing
// request from a browser carries the session's CSRF token in the
// X-CSRF-Token header and a JSON body. Every response carries a strict
// Content-Security-Policy and X-Content-Type-Options: nosniff. docs/web.md
// is the user's guide.
package web
