package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/pgtide/pgtide/internal/changelog"
	pgtidev1 "github.com/pgtide/pgtide/proto/pgtide/v1"
)

// Server is the stream gateway: an HTTP handler for long polling, SSE and
// WebSocket, and a gRPC service, over one change log. Create it with New;
// mount [Server.Handler] on an existing listener or run [Server.Serve].
// A Server is safe for concurrent use.
type Server struct {
	cfg     Config
	log     *changelog.Log
	logger  *slog.Logger
	metrics *metrics
	auth    *authenticator
	grpc    *grpc.Server
	handler http.Handler

	// ctx is the lifetime of the server's hubs and streams; cancel ends
	// them on Shutdown.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // hubs

	// mu guards the fields below.
	mu      sync.Mutex
	hubs    map[string]*hub
	httpSrv *http.Server
	ln      net.Listener
	served  chan error
}

// New returns a gateway over log. logger may be nil (logs are discarded),
// and so may reg (no metrics are registered). It fails on an invalid
// configuration: a malformed token digest, JWT key or grant.
func New(cfg Config, log *changelog.Log, logger *slog.Logger, reg prometheus.Registerer) (*Server, error) {
	if log == nil {
		return nil, errors.New("gateway: no change log")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	auth, err := newAuthenticator(cfg)
	if err != nil {
		return nil, err
	}

	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:     cfg,
		log:     log,
		logger:  logger.With("component", "gateway"),
		metrics: newMetrics(reg),
		auth:    auth,
		ctx:     ctx,
		cancel:  cancel,
		hubs:    make(map[string]*hub),
	}
	s.grpc = grpc.NewServer()
	pgtidev1.RegisterGatewayServer(s.grpc, &grpcService{s: s})

	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/changes", s.handleChanges)
	mux.HandleFunc("GET /v1/ws", s.handleWebSocket)
	mux.HandleFunc("GET /v1/groups/{group}/changes", s.handleGroupFetch)
	mux.HandleFunc("POST /v1/groups/{group}/ack", s.handleGroupAck)
	s.handler = s.cors(mux)
	return s, nil
}

// Handler returns the gateway's HTTP handler: /v1/changes (long poll, or
// SSE with Accept: text/event-stream), /v1/ws, /v1/groups/…, and gRPC
// requests (HTTP/2 with content type application/grpc). gRPC needs a
// server that speaks HTTP/2: TLS, or http.Server.Protocols with
// unencrypted HTTP/2 enabled.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			s.grpc.ServeHTTP(w, r)
			return
		}
		s.handler.ServeHTTP(w, r)
	})
}

// Start listens on the configured address and serves in the background
// until [Server.Shutdown]. See [Server.Addr] for the address taken.
func (s *Server) Start(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("gateway: listen on %s: %w", s.cfg.Listen, err)
	}
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return s.ctx },
		Protocols:         new(http.Protocols),
	}
	srv.Protocols.SetHTTP1(true)
	if s.cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(s.cfg.TLSCert, s.cfg.TLSKey)
		if err != nil {
			ln.Close()
			return fmt.Errorf("gateway: tls: %w", err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		srv.Protocols.SetHTTP2(true)
		ln = tls.NewListener(ln, srv.TLSConfig)
		srv.TLSConfig.NextProtos = []string{"h2", "http/1.1"}
	} else {
		srv.Protocols.SetUnencryptedHTTP2(true)
	}

	s.mu.Lock()
	s.httpSrv, s.ln, s.served = srv, ln, make(chan error, 1)
	s.mu.Unlock()
	go func() {
		err := srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.served <- err
	}()
	s.logger.Info("gateway listening", "addr", ln.Addr().String())
	return nil
}

// Serve listens and serves until ctx ends, then shuts down, giving open
// streams five seconds to end. It returns nil after a clean shutdown.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.Start(ctx); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case err := <-s.served:
		return err
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return s.Shutdown(sctx)
}

// Addr returns the address Start listens on, or "" before Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Shutdown ends every stream (clients resume from their last cursor),
// stops the listener started by Start and waits for the log readers. It
// returns ctx.Err() if ctx ends first.
func (s *Server) Shutdown(ctx context.Context) error {
	s.cancel()
	s.mu.Lock()
	srv := s.httpSrv
	s.mu.Unlock()

	var err error
	if srv != nil {
		err = srv.Shutdown(ctx)
	}
	s.grpc.Stop()

	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return err
}

// hubFor returns the hub of source, starting it on first use.
func (s *Server) hubFor(ctx context.Context, source string) (*hub, error) {
	s.mu.Lock()
	h := s.hubs[source]
	s.mu.Unlock()
	if h != nil {
		return h, nil
	}

	st, err := s.log.Info(ctx, source)
	if err != nil {
		return nil, s.logError(source, err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if h := s.hubs[source]; h != nil {
		return h, nil
	}
	if s.ctx.Err() != nil {
		return nil, errorf(CodeUnavailable, "the gateway is shutting down")
	}
	logger := s.logger.With("source", source)
	h = newHub(s.log, source, st.LastSeq+1, s.cfg.CacheMessages, s.cfg.CacheBytes, func(err error) {
		s.metrics.errors.WithLabelValues("log_read").Inc()
		logger.Warn("read change log", "err", err)
	})
	s.hubs[source] = h
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		h.run(s.ctx)
	}()
	return h, nil
}

// logError translates an error of the change log.
func (s *Server) logError(source string, err error) error {
	var ge *Error
	if errors.As(err, &ge) {
		return ge
	}
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return errorf(CodeUnknownSource, "source %q has no change log (is it captured?)", source)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	s.metrics.errors.WithLabelValues(CodeUnavailable).Inc()
	return &Error{Code: CodeUnavailable, Message: "change log unavailable: " + err.Error(), err: err}
}

// checkTables fails with unknown_table for a table named without wildcard
// that the log has never held a change of.
func (s *Server) checkTables(ctx context.Context, h *hub, p *plan) error {
	for _, f := range p.filters {
		if strings.Contains(f, "*") || h.knows(f) {
			continue
		}
		st, err := s.log.JetStream().Stream(ctx, changelog.StreamName(p.source))
		if err != nil {
			return s.logError(p.source, err)
		}
		_, err = st.GetLastMsgForSubject(ctx, f)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			schema, table, _ := changelog.ParseSubject(p.source, f)
			return errorf(CodeUnknownTable, "the log of %q holds no change of table %s.%s (is it captured?)", p.source, schema, table)
		}
		if err != nil {
			return s.logError(p.source, err)
		}
	}
	return nil
}

// subscribe checks sub for id and returns a positioned reader and the
// cursor of its starting position.
func (s *Server) subscribe(ctx context.Context, id *identity, sub Subscription) (*reader, string, error) {
	p, err := compile(sub, id)
	if err != nil {
		return nil, "", err
	}
	h, err := s.hubFor(ctx, p.source)
	if err != nil {
		return nil, "", err
	}
	if err := s.checkTables(ctx, h, p); err != nil {
		return nil, "", err
	}
	rd := &reader{srv: s, hub: h, p: p}
	start, err := rd.start(ctx, p.from)
	if err != nil {
		return nil, "", err
	}
	return rd, start, nil
}

// delivered records the delivery of evs over transport.
func (s *Server) delivered(transport string, evs []*event) {
	now := time.Now()
	n := 0
	lag := s.metrics.lag.WithLabelValues(transport)
	for _, ev := range evs {
		if ev.op != opCommit {
			n++
			lag.Observe(now.Sub(ev.commitTime).Seconds())
		}
	}
	s.metrics.delivered.WithLabelValues(transport).Add(float64(n))
}

// streamContext returns a context that ends with parent or with the
// server.
func (s *Server) streamContext(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	stop := context.AfterFunc(s.ctx, cancel)
	return ctx, func() {
		stop()
		cancel()
	}
}
