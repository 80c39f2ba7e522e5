// Package admin serves pgtide's operational HTTP endpoints: Prometheus
// metrics, liveness and readiness probes, and a JSON status document.
//
// # Endpoints
//
//	GET /metrics     metrics of the given registry, plus Go and process metrics
//	GET /healthz     200 "ok" while the process serves requests
//	GET /readyz      200 "ready" when Config.Ready returns nil, else 503 and the reason
//	GET /v1/status   the value of Config.Status as JSON
//
// Config.Routes adds more endpoints, such as the stream gateway's, to the
// same listener; Config.UnencryptedHTTP2 lets it speak HTTP/2 without TLS
// (h2c), as gRPC clients do.
//
// The server is meant for operators and monitoring systems; it has no
// authentication, so bind it to a private address.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// readHeaderTimeout bounds how long a client may take to send its request
// headers, so idle connections cannot pile up.
const readHeaderTimeout = 5 * time.Second

// Config configures a [Server].
type Config struct {
	// Listen is the host:port to listen on; port 0 picks a free port.
	// Required.
	Listen string

	// Logger receives lifecycle events and HTTP server errors. Nil
	// discards them.
	Logger *slog.Logger

	// Registry holds the metrics served on /metrics. The Go runtime and
	// process collectors are added to it unless it already has them.
	// Nil means a new, otherwise empty registry.
	Registry *prometheus.Registry

	// Ready reports whether the process is ready to do its work: nil when
	// it is, an error saying why not otherwise. Nil means always ready.
	Ready func() error

	// Status returns the document served on /v1/status, which must
	// marshal to JSON. It is called once per request with the request's
	// context. Nil serves an empty object.
	Status func(ctx context.Context) any

	// Routes are more endpoints served on the same listener, in order.
	// Their patterns (see [http.ServeMux]) must not conflict with the
	// endpoints above or with each other; New panics if they do.
	Routes []Route

	// UnencryptedHTTP2 serves HTTP/2 with prior knowledge (h2c) next to
	// HTTP/1.1, which gRPC clients need on a listener without TLS.
	UnencryptedHTTP2 bool
}

// Route is an endpoint added to the admin server by [Config.Routes].
type Route struct {
	// Pattern is an [http.ServeMux] pattern, such as "POST /v1/backfill"
	// or "/v1/ws".
	Pattern string

	// Handler serves the requests that match Pattern.
	Handler http.Handler

	// Help, when set, is a line about the endpoint on the index page.
	Help string
}

// Server is the admin HTTP server. Create it with [New], then call
// [Server.Start] once and [Server.Shutdown] once. Its methods are safe for
// concurrent use.
type Server struct {
	cfg    Config
	logger *slog.Logger
	srv    *http.Server

	// mu guards addr and done, which Start sets.
	mu   sync.Mutex
	addr string
	done chan struct{} // closed when Serve has returned
}

// New returns a server for cfg. It registers the Go runtime and process
// collectors with cfg.Registry; it does not listen yet.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	registerRuntime(cfg.Registry, cfg.Logger)

	s := &Server{cfg: cfg, logger: cfg.Logger}
	s.srv = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: readHeaderTimeout,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	if cfg.UnencryptedHTTP2 {
		s.srv.Protocols = new(http.Protocols)
		s.srv.Protocols.SetHTTP1(true)
		s.srv.Protocols.SetUnencryptedHTTP2(true)
	}
	return s
}

// registerRuntime adds the Go and process collectors to reg. A registry
// that already has them keeps its own.
func registerRuntime(reg *prometheus.Registry, logger *slog.Logger) {
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		var are prometheus.AlreadyRegisteredError
		if err := reg.Register(c); err != nil && !errors.As(err, &are) {
			logger.Warn("register runtime metrics failed", "err", err)
		}
	}
}

// Handler returns the HTTP handler of the admin endpoints, for tests or
// for mounting under another server.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}))
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.HandleFunc("GET /v1/status", s.status)
	mux.HandleFunc("GET /{$}", s.index)
	for _, r := range s.cfg.Routes {
		mux.Handle(r.Pattern, r.Handler)
	}
	return mux
}

// Start listens on cfg.Listen and serves in the background. It returns once
// the listener is bound, so [Server.Addr] is known, or with the listen
// error. ctx bounds the listen only.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done != nil {
		return errors.New("admin: server already started")
	}

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("admin: listen on %s: %w", s.cfg.Listen, err)
	}

	s.addr = ln.Addr().String()
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("admin server failed", "addr", ln.Addr().String(), "err", err)
		}
	}()
	s.logger.Info("admin server listening", "addr", s.addr)
	return nil
}

// Addr returns the address the server listens on, such as
// "127.0.0.1:7070", or "" before [Server.Start] succeeded.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// URL returns the base URL of the server, such as "http://127.0.0.1:7070",
// or "" before [Server.Start] succeeded.
func (s *Server) URL() string {
	addr := s.Addr()
	if addr == "" {
		return ""
	}
	return "http://" + addr
}

// Shutdown stops accepting connections, waits for active requests to end
// and for the serving goroutine to return. It returns ctx.Err() if ctx
// ends first, after closing the remaining connections. Shutdown of a server
// that was never started returns nil.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	if done == nil {
		return nil
	}

	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close()
		err = fmt.Errorf("admin: shutdown: %w", err)
	}
	<-done
	return err
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "ok")
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "not ready: %v\n", err)
			return
		}
	}
	fmt.Fprintln(w, "ready")
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	var doc any = struct{}{}
	if s.cfg.Status != nil {
		doc = s.cfg.Status(r.Context())
	}
	body, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		s.logger.Error("encode status failed", "err", err)
		http.Error(w, "encode status: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(append(body, '\n'))
}

func (s *Server) index(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprint(w, "pgtide admin\n\n"+
		"/metrics     Prometheus metrics\n"+
		"/healthz     liveness\n"+
		"/readyz      readiness\n"+
		"/v1/status   status as JSON\n")
	for _, r := range s.cfg.Routes {
		if r.Help != "" {
			fmt.Fprintf(w, "%s\n", r.Help)
		}
	}
}
