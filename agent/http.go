package agent

// The HTTP endpoint: the face library page, Prometheus /metrics and
// /healthz.

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/edged-dev/edged/config"
	"github.com/edged-dev/edged/internal/metrics"
	"github.com/edged-dev/edged/web"
)

// HealthReport is the body of /healthz.
type HealthReport struct {
	Status  string   `json:"status"` // ok | starting | unhealthy
	Problem string   `json:"problem,omitempty"`
	Cameras []string `json:"cameras"`
	MQTT    string   `json:"mqtt"` // connected | disconnected
	UptimeS float64  `json:"uptime_s"`
}

// httpServer serves the registry and a health function on addr.
type httpServer struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

// startHTTP listens on hc.Addr and serves in the background: /metrics
// (behind the page's authentication when it has one), /healthz (open: a
// liveness probe carries no secret) and the face library page at /. With
// hc.TLSCert it serves HTTPS.
func startHTTP(hc config.HTTP, reg *metrics.Registry, health func() (HealthReport, bool), page *web.Server, log *slog.Logger) (*httpServer, error) {
	var tlsCfg *tls.Config
	if hc.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(hc.TLSCert, hc.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("http.tls_cert/tls_key: %w", err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", hc.Addr)
	if err != nil {
		return nil, fmt.Errorf("http: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", page.Protect(reg.Handler()))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		rep, ok := health()
		w.Header().Set("Content-Type", "application/json")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(rep)
	})
	mux.Handle("/", page)
	s := &httpServer{
		// No WriteTimeout: the page's live events are a long response.
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, TLSConfig: tlsCfg},
		ln:   ln,
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		var err error
		if tlsCfg != nil {
			err = s.srv.ServeTLS(ln, "", "")
		} else {
			err = s.srv.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server", "err", err)
		}
	}()
	scheme := "http"
	if tlsCfg != nil {
		scheme = "https"
	}
	log.Info("web page, metrics and health", "addr", scheme+"://"+ln.Addr().String())
	return s, nil
}

// Addr is the listening address.
func (s *httpServer) Addr() string { return s.ln.Addr().String() }

// Close stops the server, letting running requests finish for a second.
func (s *httpServer) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
	<-s.done
}
