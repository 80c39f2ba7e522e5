package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/pgtide/pgtide/internal/config"
	"github.com/pgtide/pgtide/internal/instance"
	"github.com/pgtide/pgtide/internal/proxy"
	"github.com/pgtide/pgtide/internal/snapshot"
)

// proxyStopTimeout bounds how long the proxy waits for client sessions to
// end on shutdown before it closes them.
const proxyStopTimeout = 10 * time.Second

// proxyConfig maps the configuration to the proxy's. dataDir is the
// absolute data directory (see prepareDataDir).
func proxyConfig(cfg config.Config, dataDir string, logger *slog.Logger) proxy.Config {
	x := cfg.Proxy
	pc := proxy.Config{
		Listen:             x.Listen,
		TLSCertFile:        x.TLSCert,
		TLSKeyFile:         x.TLSKey,
		Users:              x.Users,
		DataDir:            dataDir,
		Datasets:           map[string]proxy.Dataset{},
		BootTimeout:        time.Duration(x.BootTimeout),
		HandshakeTimeout:   time.Duration(x.HandshakeTimeout),
		MaxConnections:     x.MaxConnections,
		MaxUserConnections: x.MaxUserConnections,
		Audit:              x.Audit,
		Relay:              x.Relay,
		Instances: proxy.InstanceLimits{
			Max:         x.Instances.Max,
			MaxPerUser:  x.Instances.MaxPerUser,
			IdleTimeout: time.Duration(x.Instances.IdleTimeout),
			Private:     x.Instances.Private,
			Warm:        x.Instances.Warm,
			Memory:      int64(x.Instances.Memory),
			Settings:    x.Instances.Settings,
			Clone:       x.Instances.Clone,
		},
		Logger: logger,
	}
	if x.Audit {
		pc.AuditLogger = logger.With("audit", true)
	}
	for name, d := range cfg.Datasets {
		pc.Datasets[name] = proxy.Dataset{
			Dataset:        snapshotDataset(d),
			Live:           d.Live,
			StartupScripts: d.StartupScripts,
		}
	}
	return pc
}

// snapshotDataset maps one dataset to the snapshot manager's form.
func snapshotDataset(d config.DatasetConfig) snapshot.Dataset {
	sd := snapshot.Dataset{
		Source:    d.Source,
		Database:  d.Database,
		Superuser: d.Superuser,
		Role:      d.Role,
		Keep:      d.Keep,
		Scripts:   d.Scripts,
		Salt:      d.Salt,
	}
	for _, r := range d.Rules {
		sd.Rules = append(sd.Rules, snapshot.Rule{
			Table: r.Table, Column: r.Column, Method: r.Method, Value: r.Value, Key: r.Key,
		})
	}
	return sd
}

// proxyRole is a running proxy and its snapshot scheduler. close stops
// both and waits for them.
type proxyRole struct {
	srv    *proxy.Server
	sched  *scheduler
	logger *slog.Logger
	done   chan struct{} // closed when Serve has returned
	err    error         // why Serve returned; read after done
}

// startProxy starts the proxy role: the proxy on cfg.Proxy.Listen and the
// snapshot schedule of every dataset. reg receives the metrics.
func startProxy(
	ctx context.Context, cfg config.Config, reg prometheus.Registerer, logger *slog.Logger,
) (*proxyRole, error) {
	if len(cfg.Proxy.Users) == 0 {
		return nil, usageErrorf("proxy.users is empty, so nobody could connect to the proxy: " +
			"add users (see docs/configuration.md), or set proxy.listen to \"off\"")
	}
	dataDir, err := prepareDataDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}

	logger = logger.With("component", "proxy")
	pc := proxyConfig(cfg, dataDir, logger)
	pc.Metrics = proxy.NewMetrics(reg)
	srv, err := proxy.New(ctx, pc)
	if errors.Is(err, instance.ErrNoMemoryCgroup) {
		return nil, fmt.Errorf("start proxy: proxy.instances.memory is %s, but this machine cannot "+
			"enforce it (set it to 0 for no limit): %w", cfg.Proxy.Instances.Memory, err)
	}
	if err != nil {
		return nil, fmt.Errorf("start proxy: %w", err)
	}

	if reg != nil {
		reg.MustRegister(srv.Collector())
	}

	p := &proxyRole{srv: srv, logger: logger, done: make(chan struct{})}
	p.sched = newScheduler(srv.Snapshots(), cfg.Datasets, dataDir, srv.Controller().InUse,
		newScheduleMetrics(reg), logger.With("component", "snapshots"))

	go func() {
		defer close(p.done)
		p.err = srv.Serve(context.WithoutCancel(ctx))
	}()
	p.sched.start()
	return p, nil
}

// addr returns the address clients connect to.
func (p *proxyRole) addr() string {
	return p.srv.Addr().String()
}

// stopped returns a channel closed when the proxy stopped serving.
func (p *proxyRole) stopped() <-chan struct{} { return p.done }

// failure says why the proxy stopped serving.
func (p *proxyRole) failure() error {
	if p.err == nil || errors.Is(p.err, proxy.ErrServerClosed) {
		return errors.New("the proxy stopped")
	}
	return fmt.Errorf("proxy: %w", p.err)
}

// close stops the scheduler (cancelling a snapshot in progress), then the
// proxy: client sessions get proxyStopTimeout to end, then instances stop.
func (p *proxyRole) close() {
	if p == nil {
		return
	}
	p.sched.stop()

	ctx, cancel := context.WithTimeout(context.Background(), proxyStopTimeout)
	defer cancel()
	if err := p.srv.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		p.logger.Warn("proxy shutdown failed", "err", err)
	}
	<-p.done
}

// proxyStatus is the proxy part of the status document.
type proxyStatus struct {
	proxy.Status
	Datasets []datasetStatus `json:"datasets"`
	Error    string          `json:"error,omitempty"`
}

// status returns the proxy's status document.
func (p *proxyRole) status(ctx context.Context) *proxyStatus {
	st, err := p.srv.Status(ctx)
	doc := &proxyStatus{Status: st, Datasets: p.sched.status()}
	if err != nil {
		doc.Error = err.Error()
	}
	return doc
}

func (e *env) proxyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "proxy",
		Short: "Run the offline-database proxy alone",
		Long: "proxy serves the configured datasets over the PostgreSQL protocol on\n" +
			"proxy.listen (default 127.0.0.1:6433): a client connecting to database\n" +
			"\"shop\" gets an instance booted from the newest masked snapshot of dataset\n" +
			"shop, \"shop@<snapshot>\" a given snapshot, \"shop@live\" the live server\n" +
			"read-only. It takes snapshots on each dataset's schedule and serves the\n" +
			"admin endpoints. `pgtide up` runs the proxy too when datasets are\n" +
			"configured.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := e.loadConfig(nil)
			if err != nil {
				return err
			}
			if len(cfg.Datasets) == 0 {
				return usageErrorf("no datasets configured: the proxy serves datasets listed " +
					"under datasets: in the config file (see docs/configuration.md)")
			}
			if cfg.Proxy.Listen == config.Off {
				return usageErrorf("proxy.listen is off: give the proxy an address")
			}
			return e.runNode(cmd.Context(), cfg, nodeRoles{proxy: true})
		},
	}
	cmd.AddCommand(e.hashPasswordCommand())
	return cmd
}

// datasetNames lists the configured datasets, sorted.
func datasetNames(cfg config.Config) string {
	return strings.Join(slices.Sorted(maps.Keys(cfg.Datasets)), ", ")
}
