package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgtide/pgtide/internal/admin"
	"github.com/pgtide/pgtide/internal/apply"
	"github.com/pgtide/pgtide/internal/capture"
	"github.com/pgtide/pgtide/internal/changelog"
	"github.com/pgtide/pgtide/internal/config"
	"github.com/pgtide/pgtide/internal/gateway"
)

// Shutdown bounds: how long captures get to flush, and how long the admin
// server waits for open requests.
const (
	captureStopTimeout = 30 * time.Second
	adminStopTimeout   = 10 * time.Second
)

// readyPoll is how often a node checks whether all its sources stream.
const readyPoll = 100 * time.Millisecond

// defaultExternalMaxPayload is the largest log message assumed for an
// external NATS server that does not announce its own limit.
const defaultExternalMaxPayload = 1 << 20

// nodeRoles are the roles a node runs.
type nodeRoles struct {
	// sources are captured into the change log. Without sources no log
	// is opened.
	sources []config.SourceConfig

	// proxy runs the offline-database proxy and its snapshot schedule.
	proxy bool

	// gateway serves the change log to applications: on the admin
	// listener, or on gateway.listen when set. It needs sources.
	gateway bool

	// replicas are kept in step with their sources by appliers. With
	// sources the node applies from the log it opens; without, it reads
	// the log like `log tail` (external, a running pgtide's listener, or
	// the store).
	replicas []config.ReplicaConfig
}

// node is a running pgtide process: the change log, the capture of each
// source, the offline-database proxy and the admin server. It owns every
// goroutine it starts; close stops and waits for them.
type node struct {
	cfg     config.Config
	logger  *slog.Logger
	started time.Time

	lock     *dirLock // held while an embedded log is open; nil otherwise
	log      *changelog.Log
	closeLog func() // closes a log opened for reading; nil otherwise
	reg      *prometheus.Registry
	admin    *admin.Server   // nil when admin.listen is off
	gw       *gateway.Server // nil unless the node runs the gateway
	gwURL    string          // where clients reach gw
	sources  []*sourceRunner
	replicas []*replicaRunner
	proxy    *proxyRole // nil unless the node runs the proxy

	cancel  context.CancelFunc
	wg      sync.WaitGroup
	stopped chan struct{} // closed when every source and replica has returned
}

// startNode opens the change log, starts the proxy and the admin server,
// and starts capturing each source and applying to each replica in the
// background. On error everything started so far is stopped again.
func startNode(
	ctx context.Context, cfg config.Config, roles nodeRoles, logger *slog.Logger,
) (_ *node, err error) {
	sources := roles.sources
	n := &node{
		cfg:     cfg,
		logger:  logger,
		started: time.Now(),
		reg:     prometheus.NewRegistry(),
		stopped: make(chan struct{}),
	}
	defer func() {
		if err != nil {
			n.close()
		}
	}()

	switch {
	case len(sources) > 0:
		n.log, n.lock, err = openLog(ctx, cfg, logger)
	case len(roles.replicas) > 0:
		n.log, n.closeLog, err = openLogReader(ctx, cfg, logger)
	}
	if err != nil {
		return nil, err
	}

	if roles.proxy {
		n.proxy, err = startProxy(ctx, cfg, n.reg, logger)
		if err != nil {
			return nil, err
		}
	}

	metrics := capture.NewMetrics(n.reg)
	for _, s := range sources {
		n.sources = append(n.sources, newSourceRunner(s, n.captureOptions(s, metrics), logger))
	}
	if len(roles.replicas) > 0 {
		am := apply.NewMetrics(n.reg)
		for _, r := range roles.replicas {
			// Validate has checked that the source is configured.
			src, _ := cfg.Source(r.Source)
			n.replicas = append(n.replicas, newReplicaRunner(r, applyOptions(r, src, n.log, am, logger), logger))
		}
	}

	var routes []admin.Route
	if len(n.sources) > 0 {
		routes = append(routes, admin.Route{Pattern: "POST /v1/backfill", Handler: http.HandlerFunc(n.serveBackfill),
			Help: "/v1/backfill POST {\"source\": …, \"tables\": […]} queues an online backfill"})
	}
	mounted := false
	if roles.gateway && n.log != nil {
		own := cfg.Gateway.Listen
		mounted = own == ""
		if !mounted || cfg.Admin.Listen != config.Off {
			n.gw, err = newGateway(cfg, own, n.log, logger, n.reg)
			if err != nil {
				return nil, err
			}
		} else {
			logger.Warn("gateway not served: it shares the admin listener, which is off",
				"hint", "set admin.listen, or give the gateway its own gateway.listen")
		}
		if n.gw != nil && mounted {
			routes = append(routes, gatewayRoutes(n.gw)...)
		}
	}

	if cfg.Admin.Listen != config.Off {
		n.admin = admin.New(admin.Config{
			Listen:           cfg.Admin.Listen,
			Logger:           logger.With("component", "admin"),
			Registry:         n.reg,
			Ready:            n.ready,
			Status:           func(ctx context.Context) any { return n.status(ctx) },
			Routes:           routes,
			UnencryptedHTTP2: n.gw != nil && mounted,
		})
		if err := n.admin.Start(ctx); err != nil {
			return nil, err
		}
	}
	if n.gw != nil {
		if mounted {
			n.gwURL = n.admin.URL()
		} else {
			if err := n.gw.Start(ctx); err != nil {
				return nil, err
			}
			n.gwURL = gatewayURL(cfg.Gateway, n.gw.Addr())
		}
	}

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	n.cancel = cancel
	var rolesWG sync.WaitGroup
	for _, r := range n.sources {
		rolesWG.Add(1)
		go func() {
			defer rolesWG.Done()
			r.run(runCtx)
		}()
	}
	for _, r := range n.replicas {
		rolesWG.Add(1)
		go func() {
			defer rolesWG.Done()
			r.run(runCtx)
		}()
	}
	n.wg.Add(2)
	go func() {
		defer n.wg.Done()
		rolesWG.Wait()
		if len(n.sources)+len(n.replicas) > 0 {
			close(n.stopped)
		}
	}()
	go func() {
		defer n.wg.Done()
		n.watchReady(runCtx)
	}()
	return n, nil
}

// openLog opens the change log the configuration describes: an external
// cluster, or the embedded server under data_dir, whose directory it
// locks first.
func openLog(
	ctx context.Context, cfg config.Config, logger *slog.Logger,
) (*changelog.Log, *dirLock, error) {
	lcfg := changelog.Config{
		URL:       cfg.NATS.URL,
		CredsFile: cfg.NATS.CredsFile,
		Replicas:  cfg.NATS.Replicas,
		Logger:    logger.With("component", "changelog"),
	}
	if cfg.NATS.External() {
		l, err := changelog.Open(ctx, lcfg)
		if err != nil {
			return nil, nil, fmt.Errorf("open change log: %w", err)
		}
		return l, nil, nil
	}

	lock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		if errors.Is(err, errDataDirLocked) {
			return nil, nil, fmt.Errorf("open change log: %w: stop that process or give another --data-dir",
				err)
		}
		return nil, nil, fmt.Errorf("open change log in %s: %w", cfg.DataDir, err)
	}
	lcfg.DataDir = cfg.DataDir
	lcfg.SyncInterval = time.Duration(cfg.NATS.Embedded.SyncInterval)
	lcfg.MaxPayload = int(cfg.NATS.Embedded.MaxPayload)
	if cfg.NATS.Embedded.Listen != config.Off {
		lcfg.Listen = cfg.NATS.Embedded.Listen
	}
	l, err := changelog.Open(ctx, lcfg)
	if err != nil {
		lock.release()
		return nil, nil, fmt.Errorf("open change log: %w", err)
	}
	return l, lock, nil
}

// captureOptions maps the configuration of source s to capture options.
func (n *node) captureOptions(s config.SourceConfig, m *capture.Metrics) capture.Options {
	heartbeat := time.Duration(s.HeartbeatInterval)
	if heartbeat == 0 {
		heartbeat = -1 // "off": capture takes a negative interval
	}
	return capture.Options{
		Source:            s.Name,
		DSN:               s.DSN,
		Schemas:           s.Schemas,
		Tables:            s.Tables,
		ExcludeTables:     s.ExcludeTables,
		Slot:              s.Slot,
		Publication:       s.Publication,
		Binary:            s.Binary,
		Keyless:           s.Keyless,
		DDL:               s.DDLEnabled(),
		HeartbeatInterval: heartbeat,
		StatusInterval:    time.Duration(s.StatusInterval),
		MaxRetainedWAL:    int64(s.MaxRetainedWAL),
		ConfirmDelay:      time.Duration(n.cfg.NATS.ConfirmDelay),
		MaxMessageBytes:   n.maxMessageBytes(),
		Log:               n.log,
		Retention: changelog.Retention{
			MaxAge:   time.Duration(s.Retention.MaxAge),
			MaxBytes: int64(s.Retention.MaxBytes),
		},
		Snapshot: capture.SnapshotOptions{
			Enabled:       s.Snapshot == config.SnapshotInitial,
			Tables:        s.SnapshotTables,
			Workers:       s.SnapshotWorkers,
			ChunkRows:     s.SnapshotChunkRows,
			RowsPerSecond: s.SnapshotRowsPerSecond,
		},
		Logger:  n.logger.With("component", "capture"),
		Metrics: m,
	}
}

// maxMessageBytes is the largest message the log accepts.
func (n *node) maxMessageBytes() int {
	if !n.cfg.NATS.External() {
		return int(n.cfg.NATS.Embedded.MaxPayload)
	}
	if n.log != nil {
		if mp := n.log.Conn().MaxPayload(); mp > 0 {
			return int(mp)
		}
	}
	return defaultExternalMaxPayload
}

// ready returns nil when every source streams and every replica's
// applier follows the log, or the reasons why not.
func (n *node) ready() error {
	var errs []error
	for _, r := range n.sources {
		if err := r.notReady(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, r := range n.replicas {
		if err := r.notReady(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// watchReady logs once, when every source first streams, where the
// process can be reached.
func (n *node) watchReady(ctx context.Context) {
	t := time.NewTicker(readyPoll)
	defer t.Stop()
	for n.ready() != nil {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
	attrs := []any{
		"admin_url", n.adminURL(),
		"nats_url", redactURLs(n.natsURL()),
		"sources", sourceNames(n.sourceConfigs()),
	}
	if len(n.replicas) > 0 {
		attrs = append(attrs, "replicas", n.replicaNames())
	}
	if n.gw != nil {
		attrs = append(attrs, "gateway_url", n.gwURL)
	}
	if n.proxy != nil {
		attrs = append(attrs, "proxy_addr", n.proxy.addr(), "datasets", datasetNames(n.cfg))
	}
	n.logger.Info("pgtide ready", attrs...)
}

// waitReady waits until every source streams and every replica applies.
// It fails when ctx ends first or when every source and replica has
// stopped.
func (n *node) waitReady(ctx context.Context) error {
	t := time.NewTicker(readyPoll)
	defer t.Stop()
	for {
		err := n.ready()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w", err)
		case <-n.stopped:
			return n.failure()
		case <-t.C:
		}
	}
}

// wait blocks until ctx ends, then returns nil, or until every source and
// replica has stopped or the proxy stopped serving, then returns why.
func (n *node) wait(ctx context.Context) error {
	var proxyStopped <-chan struct{} // nil: never
	if n.proxy != nil {
		proxyStopped = n.proxy.stopped()
	}
	select {
	case <-ctx.Done():
		return nil
	case <-n.stopped:
		return n.failure()
	case <-proxyStopped:
		return n.proxy.failure()
	}
}

// natsURL is the client URL of the change log, "" without one.
func (n *node) natsURL() string {
	if n.log == nil {
		return ""
	}
	return n.log.ClientURL()
}

// failure joins the errors of the sources and replicas that stopped.
func (n *node) failure() error {
	var errs []error
	for _, r := range n.sources {
		if err := r.failure(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, r := range n.replicas {
		if err := r.failure(); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		return errors.New("every source and replica stopped")
	}
	return errors.Join(errs...)
}

// close ends the gateway's streams, stops the captures and appliers and
// waits for them (at most captureStopTimeout), closes the change log, stops the
// proxy and shuts the admin server down. It is safe to call on a partly
// started node.
func (n *node) close() {
	// Streams end first: clients resume from their cursors, and open long
	// polls do not hold up the admin server's shutdown.
	if n.gw != nil {
		shutdownGateway(n.gw, n.logger)
	}
	if n.cancel != nil {
		n.cancel()
		done := make(chan struct{})
		go func() {
			n.wg.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(captureStopTimeout):
			n.logger.Error("captures did not stop in time; closing the change log anyway",
				"timeout", captureStopTimeout)
		}
	}
	switch {
	case n.closeLog != nil:
		n.closeLog()
	case n.log != nil:
		if err := n.log.Close(); err != nil {
			n.logger.Warn("close change log failed", "err", err)
		}
	}
	n.lock.release()
	n.proxy.close()
	if n.admin != nil {
		ctx, cancel := context.WithTimeout(context.Background(), adminStopTimeout)
		defer cancel()
		if err := n.admin.Shutdown(ctx); err != nil {
			n.logger.Warn("admin server shutdown failed", "err", err)
		}
	}
}

func (n *node) adminURL() string {
	if n.admin == nil {
		return ""
	}
	return n.admin.URL()
}

func (n *node) replicaNames() []string {
	names := make([]string, len(n.replicas))
	for i, r := range n.replicas {
		names[i] = r.cfg.Name
	}
	return names
}

func (n *node) sourceConfigs() []config.SourceConfig {
	out := make([]config.SourceConfig, len(n.sources))
	for i, r := range n.sources {
		out[i] = r.cfg
	}
	return out
}

// describeSources lists source names and redacted DSNs for messages.
func describeSources(sources []config.SourceConfig) string {
	parts := make([]string, len(sources))
	for i, s := range sources {
		parts[i] = s.Name + " (" + s.RedactedDSN() + ")"
	}
	return strings.Join(parts, ", ")
}

// redactURLs masks passwords and tokens in a comma-separated list of NATS
// URLs, for logs and the status document.
func redactURLs(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		switch {
		case err != nil || u.Opaque != "":
			// Not a URL, perhaps "user:password@host:port".
			if at := strings.LastIndexByte(p, '@'); at >= 0 {
				parts[i] = "xxxxx" + p[at:]
			}
		case u.User == nil:
		case hasPassword(u.User):
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
			parts[i] = u.String()
		default: // a user part alone is a token
			u.User = url.User("xxxxx")
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}

func hasPassword(u *url.Userinfo) bool {
	_, ok := u.Password()
	return ok
}
