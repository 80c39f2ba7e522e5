package proxy

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"sync"
	"time"

	"github.com/pgtide/pgtide/internal/instance"
	"github.com/pgtide/pgtide/internal/proxy/scram"
	"github.com/pgtide/pgtide/internal/snapshot"
	"github.com/pgtide/pgtide/internal/sockmap"
)

// ErrServerClosed is returned by [Server.Serve] after [Server.Shutdown].
var ErrServerClosed = errors.New("proxy: server closed")

// Server is the offline-database proxy. It is safe for concurrent use.
type Server struct {
	cfg     Config
	log     *slog.Logger
	audit   *slog.Logger
	metrics *Metrics
	tls     *tls.Config
	users   map[string]scram.Verifier
	mockKey []byte // keys the mock verifiers of unknown users

	snaps *snapshot.Manager
	ctrl  *instance.Controller
	drv   *instance.Local
	ln    net.Listener
	ksock *sockmap.Relay // nil: relay in the process

	wg sync.WaitGroup // connection goroutines

	// mu guards the fields below.
	mu       sync.Mutex
	conns    map[uint64]*clientConn
	perUser  map[string]int
	cancels  map[cancelKey]backendKey
	nextID   uint64
	shutdown bool

	liveWarned map[string]bool // datasets whose superuser live role was reported
}

// New validates cfg, reconciles instances left by an earlier process,
// and binds the listener. It returns an error when the data directory is
// in use by another proxy, when the address is taken, or for the first
// problem in cfg.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:6433"
	}

	if cfg.BootTimeout <= 0 {
		cfg.BootTimeout = 60 * time.Second
	}

	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 15 * time.Second
	}

	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = 200
	}

	s := &Server{
		cfg:        cfg,
		log:        cfg.Logger,
		audit:      cfg.AuditLogger,
		metrics:    cfg.Metrics,
		conns:      map[uint64]*clientConn{},
		perUser:    map[string]int{},
		cancels:    map[cancelKey]backendKey{},
		liveWarned: map[string]bool{},
		mockKey:    make([]byte, 32),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}

	if s.audit == nil {
		s.audit = s.log
	}

	if s.metrics == nil {
		s.metrics = NewMetrics(nil)
	}

	_, _ = rand.Read(s.mockKey)

	var err error
	if s.users, err = loadUsers(cfg.Users); err != nil {
		return nil, err
	}

	if s.tls, err = tlsConfig(cfg); err != nil {
		return nil, err
	}

	if s.ksock, err = kernelRelay(cfg, s.log); err != nil {
		return nil, err
	}

	if s.snaps, err = snapshot.New(cfg.SnapshotConfig()); err != nil {
		s.closeKernelRelay()
		return nil, err
	}

	s.drv, err = instance.NewLocal(instance.LocalConfig{
		DataDir:  cfg.DataDir,
		BinDir:   cfg.BinDir,
		Settings: cfg.Instances.Settings,
		TCP:      cfg.Instances.TCP,
		Memory:   cfg.Instances.Memory,
		Clone:    cfg.Instances.Clone,
		Logger:   s.log,
	})
	if err != nil {
		s.closeKernelRelay()
		return nil, err
	}

	scripts := map[string][]string{}
	names := make([]string, 0, len(cfg.Datasets))
	for name, ds := range cfg.Datasets {
		scripts[name] = ds.StartupScripts
		names = append(names, name)
	}

	sort.Strings(names)

	s.ctrl, err = instance.New(ctx, instance.Config{
		Driver:           s.drv,
		Snapshots:        s.snaps,
		MaxInstances:     cfg.Instances.Max,
		MaxUserInstances: cfg.Instances.MaxPerUser,
		IdleTimeout:      cfg.Instances.IdleTimeout,
		BootTimeout:      cfg.BootTimeout,
		Private:          cfg.Instances.Private,
		StartupScripts:   scripts,
		Warm:             cfg.Instances.Warm,
		Datasets:         names,
		Logger:           s.log,
	})
	if err != nil {
		s.drv.Close()
		s.closeKernelRelay()

		return nil, err
	}

	if s.ln, err = net.Listen("tcp", cfg.Listen); err != nil {
		_ = s.ctrl.Close(ctx)
		s.drv.Close()
		s.closeKernelRelay()

		return nil, fmt.Errorf("proxy: listen: %w", err)
	}

	return s, nil
}

func tlsConfig(cfg Config) (*tls.Config, error) {
	if cfg.TLSConfig != nil {
		return cfg.TLSConfig, nil
	}

	if cfg.TLSCertFile == "" && cfg.TLSKeyFile == "" {
		return nil, nil
	}

	cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("proxy: load TLS certificate: %w", err)
	}

	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Snapshots returns the snapshot manager the server resolves datasets
// with.
func (s *Server) Snapshots() *snapshot.Manager { return s.snaps }

// Controller returns the server's resource controller. Its InUse method
// protects snapshots from pruning.
func (s *Server) Controller() *instance.Controller { return s.ctrl }

// Serve accepts clients until ctx ends or [Server.Shutdown] is called.
// It returns [ErrServerClosed] after Shutdown, ctx's error when ctx ended.
// Ending ctx stops accepting only; call Shutdown to end connections and
// instances.
func (s *Server) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { _ = s.ln.Close() })
	defer stop()

	s.log.InfoContext(ctx, "proxy listening", "addr", s.ln.Addr().String())

	for {
		nc, err := s.ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.shutdown
			s.mu.Unlock()

			switch {
			case closed:
				return ErrServerClosed
			case ctx.Err() != nil:
				return ctx.Err()
			}

			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}

			return fmt.Errorf("proxy: accept: %w", err)
		}

		s.mu.Lock()
		if s.shutdown {
			s.mu.Unlock()
			nc.Close()

			return ErrServerClosed
		}

		s.nextID++
		c := &clientConn{s: s, id: s.nextID, nc: nc, since: time.Now()}
		s.conns[c.id] = c
		s.wg.Add(1)
		s.mu.Unlock()

		go func() {
			defer s.wg.Done()
			c.serve(ctx)
		}()
	}
}

// Shutdown stops accepting clients, waits for connections to end until
// ctx ends (then closes them), and stops every instance. It returns ctx's
// error when connections had to be closed.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutdown = true
	s.mu.Unlock()

	_ = s.ln.Close()

	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()

	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()

		s.mu.Lock()
		for _, c := range s.conns {
			c.close()
		}
		s.mu.Unlock()
		<-done
	}

	cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if cerr := s.ctrl.Close(cctx); cerr != nil && err == nil {
		err = cerr
	}

	s.drv.Close()
	s.closeKernelRelay()

	return err
}

// Status is the admin view of the proxy.
type Status struct {
	Listen      string              `json:"listen"`
	Connections []ConnStatus        `json:"connections"`
	Instances   []instance.Status   `json:"instances"`
	Snapshots   []snapshot.Snapshot `json:"snapshots"`
}

// ConnStatus describes one client connection.
type ConnStatus struct {
	ID       uint64    `json:"id"`
	User     string    `json:"user,omitempty"`
	Database string    `json:"database,omitempty"`
	Instance string    `json:"instance,omitempty"`
	Remote   string    `json:"remote"`
	State    string    `json:"state"`           // handshake, active
	Relay    string    `json:"relay,omitempty"` // kernel, process (when active)
	Since    time.Time `json:"since"`
}

// Status returns connections, instances and snapshots.
func (s *Server) Status(ctx context.Context) (Status, error) {
	st := Status{Listen: s.ln.Addr().String(), Instances: s.ctrl.Status(), Connections: []ConnStatus{}}

	s.mu.Lock()
	for _, c := range s.conns {
		st.Connections = append(st.Connections, c.status())
	}
	s.mu.Unlock()

	sort.Slice(st.Connections, func(i, j int) bool { return st.Connections[i].ID < st.Connections[j].ID })

	snaps, err := s.snaps.List(ctx)
	st.Snapshots = snaps

	return st, err
}

// warnLiveSuperuser says once per dataset that its @live sessions run as
// a superuser, which can turn the read-only default off.
func (s *Server) warnLiveSuperuser(dataset, user string) {
	s.mu.Lock()
	warned := s.liveWarned[dataset]
	s.liveWarned[dataset] = true
	s.mu.Unlock()

	if !warned {
		s.log.Warn("live sessions run as a superuser and can turn read-only off; give datasets.<name>.live a role with pg_read_all_data only",
			"dataset", dataset, "user", user)
	}
}

func (s *Server) removeConn(c *clientConn) {
	s.mu.Lock()
	delete(s.conns, c.id)
	s.mu.Unlock()
}
