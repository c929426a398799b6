package agent

// The local HTTP endpoint: Prometheus /metrics and /healthz.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/edged-dev/edged/internal/metrics"
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

// startHTTP listens on addr and serves in the background.
func startHTTP(addr string, reg *metrics.Registry, health func() (HealthReport, bool), log *slog.Logger) (*httpServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("http: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", reg.Handler())
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		rep, ok := health()
		w.Header().Set("Content-Type", "application/json")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(rep)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "edged: /metrics (Prometheus), /healthz")
	})
	s := &httpServer{
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second},
		ln:   ln,
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server", "err", err)
		}
	}()
	log.Info("metrics and health", "addr", "http://"+ln.Addr().String())
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
