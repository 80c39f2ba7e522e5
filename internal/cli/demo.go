package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgtide/pgtide/internal/changelog"
	"github.com/pgtide/pgtide/internal/config"
	"github.com/pgtide/pgtide/internal/demo"
	"github.com/pgtide/pgtide/internal/pgtest"
)

// demoSource names the demo's source database and its log.
const demoSource = "demo"

// demoOptions are the flags of `demo`.
type demoOptions struct {
	keep     bool
	duration time.Duration
}

func (e *env) demoCommand() *cobra.Command {
	var o demoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Watch pgtide capture a live sample database",
		Long: "demo starts a throwaway PostgreSQL server with a small shop schema, an\n" +
			"embedded change log and capture, runs a steady write workload against\n" +
			"the shop and prints every captured change until Ctrl-C (or --duration).\n" +
			"It also serves an offline copy of the shop, with customers' emails\n" +
			"masked, through the proxy (psql \"postgresql://demo:demo@127.0.0.1:6433/shop\"),\n" +
			"and keeps a second database, " + demoReplica + ", in step with the shop through an\n" +
			"applier, printing its lag every " + demoReplicaReport.String() + ".\n" +
			"On exit it stops the server and removes everything it created; the\n" +
			"change log stays with --keep or when --data-dir names its directory.\n\n" +
			"It needs the PostgreSQL server binaries (initdb, postgres, pg_ctl).",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.duration < 0 {
				return usageErrorf("--duration %s is negative", o.duration)
			}
			cfg, err := e.loadConfig(nil)
			if err != nil {
				return err
			}
			return e.runDemo(cmd.Context(), cfg, o)
		},
	}
	cmd.Flags().BoolVar(&o.keep, "keep", false, "keep the change log directory on exit")
	cmd.Flags().DurationVar(&o.duration, "duration", 0,
		"stop after the workload has run this long (0: until Ctrl-C)")
	return cmd
}

func (e *env) runDemo(ctx context.Context, cfg config.Config, o demoOptions) (err error) {
	logger := newLogger(e.demoLogConfig(cfg.Log), e.stderr)

	// The change log goes to a fresh directory unless --data-dir (or the
	// environment) names one.
	if !e.flags.changed("data-dir") && os.Getenv(config.EnvDataDir) == "" {
		dir, err := os.MkdirTemp("", "pgtide-demo-")
		if err != nil {
			return fmt.Errorf("create demo data directory: %w", err)
		}
		cfg.DataDir = dir
		// The offline database's PostgreSQL programs run as the OS user
		// postgres when the demo runs as root: let it traverse.
		if err := os.Chmod(dir, 0o711); err != nil {
			return fmt.Errorf("create demo data directory: %w", err)
		}
		defer func() {
			if o.keep {
				fmt.Fprintf(e.stdout, "kept the change log in %s\n", dir)
				return
			}
			if rmErr := os.RemoveAll(dir); rmErr != nil {
				logger.Warn("remove demo data directory failed", "dir", dir, "err", rmErr)
			}
		}()
	}

	fmt.Fprintln(e.stdout, "pgtide demo: starting a throwaway PostgreSQL server...")
	pg, err := pgtest.StartCluster(ctx, pgtest.Options{Logger: logger.With("component", "postgres")})
	if err != nil {
		return ignoreCanceled(ctx, fmt.Errorf("start PostgreSQL: %w", err))
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if stopErr := pg.Stop(stopCtx); stopErr != nil {
			logger.Warn("stop PostgreSQL failed", "err", stopErr)
		}
	}()

	if err := pg.CreateDatabase(ctx, demoSource); err != nil {
		return ignoreCanceled(ctx, fmt.Errorf("create demo database: %w", err))
	}
	dsn := pg.DSN(demoSource)
	if err := demo.CreateSchema(ctx, dsn); err != nil {
		return ignoreCanceled(ctx, err)
	}
	if err := pg.CreateDatabase(ctx, demoReplica); err != nil {
		return ignoreCanceled(ctx, fmt.Errorf("create demo replica database: %w", err))
	}

	cfg.Sources = []config.SourceConfig{{Name: demoSource, DSN: dsn, Schemas: []string{demo.Schema}}}
	cfg.ApplyDefaults()
	// The replica first: its defaults would give the offline dataset back
	// the default schedule the demo turns off.
	configureDemoReplica(&cfg, pg.DSN(demoReplica))
	configureDemoOffline(&cfg, dsn)
	if err := cfg.Validate(); err != nil {
		return newConfigError(err)
	}

	roles := nodeRoles{
		sources:  cfg.Sources,
		proxy:    cfg.ProxyEnabled(),
		gateway:  cfg.Gateway.Listen != config.Off,
		replicas: cfg.Replicas,
	}
	n, err := startNode(ctx, cfg, roles, logger)
	if err != nil {
		return ignoreCanceled(ctx, err)
	}
	defer n.close()
	if err := n.waitReady(ctx); err != nil {
		return ignoreCanceled(ctx, err)
	}

	// Changes and the offline database's readiness print concurrently.
	out := &lockedWriter{w: e.stdout}

	// Print what is captured from now on.
	info, err := n.log.Info(ctx, demoSource)
	if err != nil {
		return ignoreCanceled(ctx, fmt.Errorf("read the demo log: %w", err))
	}
	printDemoBanner(out, n, cfg, dsn)

	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	if n.proxy != nil {
		stopSnapshot := takeDemoSnapshot(ctx, n, out, logger)
		defer stopSnapshot()
	}
	stopReports := reportDemoReplica(ctx, n, out)
	err = e.runDemoWorkload(ctx, n, out, dsn, info.LastSeq+1, logger)
	fmt.Fprintln(out, "pgtide demo: stopping")
	stopReports()
	return err
}

// runDemoWorkload writes to the demo database and prints the captured
// changes until ctx ends or capture fails.
func (e *env) runDemoWorkload(
	ctx context.Context, n *node, out io.Writer, dsn string, startSeq uint64, logger *slog.Logger,
) error {
	workCtx, stop := context.WithCancel(ctx)
	defer stop()

	// Either worker failing stops the demo; errs keeps the first failure.
	errs := make(chan error, 2)
	fail := func(err error) {
		if workCtx.Err() == nil {
			errs <- err
			stop()
		}
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		w := &demo.Workload{DSN: dsn, Logger: logger.With("component", "demo")}
		if err := w.Run(workCtx); err != nil {
			fail(err)
		}
	}()
	go func() {
		defer wg.Done()
		p := newRecordPrinter(out, false)
		err := n.log.Read(workCtx, demoSource, changelog.ReadOptions{StartSeq: startSeq},
			func(m *changelog.Message) error { return printMessage(p, m) })
		fail(fmt.Errorf("read the demo log: %w", err))
	}()

	err := n.wait(workCtx)
	stop()
	wg.Wait()
	select {
	case werr := <-errs:
		return werr
	default:
	}
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// printMessage prints the records of one log message.
func printMessage(p *recordPrinter, m *changelog.Message) error {
	b, err := decodeMessage(m)
	if err != nil {
		return err
	}
	for _, r := range b.Records() {
		if err := p.print(r); err != nil {
			return err
		}
	}
	return p.flush()
}

func printDemoBanner(w io.Writer, n *node, cfg config.Config, dsn string) {
	natsURL := n.log.ClientURL()
	fmt.Fprintf(w, "\n  source      %s  %s  (schema %s)\n", demoSource, dsn, demo.Schema)
	if natsURL != "" {
		fmt.Fprintf(w, "  change log  %s  (embedded, in %s)\n", natsURL, cfg.DataDir)
	} else {
		fmt.Fprintf(w, "  change log  in-process only (nats.embedded.listen is off), in %s\n", cfg.DataDir)
	}
	if u := n.adminURL(); u != "" {
		fmt.Fprintf(w, "  admin       %s  (metrics: %s/metrics, status: %s/v1/status)\n", u, u, u)
	}
	for _, r := range n.replicas {
		fmt.Fprintf(w, "  replica     %s  %s  (kept in step by an applier)\n", r.cfg.Name, r.cfg.DSN)
	}
	if n.proxy != nil {
		fmt.Fprintf(w, "  offline db  %s  (dataset %s on the proxy, user %s, password %s)\n",
			n.proxy.addr(), demoDataset, demoUser, demoPassword)
	}

	fmt.Fprintln(w, "\nIn another terminal:")
	if natsURL != "" {
		fmt.Fprintf(w, "  pgtide log tail --nats-url %s --source %s\n", natsURL, demoSource)
	}
	if n.admin != nil {
		fmt.Fprintf(w, "  pgtide status --admin-listen %s\n", n.admin.Addr())
	}
	if n.gw != nil {
		printDemoGateway(w, n.gwURL)
	}
	fmt.Fprintf(w, "  psql '%s'\n", dsn)
	for _, r := range n.replicas {
		fmt.Fprintf(w, "  psql '%s'\n", r.cfg.DSN)
		fmt.Fprintf(w, "      the replica %s: the same rows a moment later, applied from the change log;\n"+
			"      its lag is printed every %s\n", r.cfg.Name, demoReplicaReport)
	}
	if n.proxy != nil {
		fmt.Fprintf(w, "  %s\n", demoPsqlCommand(n.proxy.addr()))
		fmt.Fprintf(w, "      an offline copy of the demo database through pgtide's proxy; shop.customers\n"+
			"      emails are masked (userN@example.com); ready once its snapshot is taken,\n"+
			"      which is printed below\n")
	}
	fmt.Fprintln(w, "\nCaptured changes (Ctrl-C stops the demo and removes what it created):")
}

// demoTable is the table the demo's gateway commands follow.
const demoTable = demo.Schema + ".orders"

// printDemoGateway prints commands that read the demo's changes through
// the stream gateway at url: a long poll, a Server-Sent Events stream and
// `pgtide tail`.
func printDemoGateway(w io.Writer, url string) {
	query := fmt.Sprintf("%s/v1/changes?source=%s&tables=%s", url, demoSource, demoTable)
	fmt.Fprintf(w, "  curl '%s&from=now&timeout=30s'\n", query)
	fmt.Fprintln(w, "      long poll: the next orders as JSON, with the cursor to poll from next")
	fmt.Fprintf(w, "  curl -N -H 'Accept: text/event-stream' '%s'\n", query)
	fmt.Fprintln(w, "      the same as a Server-Sent Events stream")
	if url == "http://"+config.DefaultAdminListen {
		// tail's defaults: the admin listener, and the only source it has.
		fmt.Fprintf(w, "  pgtide tail %s\n", demoTable)
	} else {
		fmt.Fprintf(w, "  pgtide tail --url %s %s\n", url, demoTable)
	}
	fmt.Fprintln(w, "      the same, readable, through the Go client")
}

// demoLogConfig quiets the demo's logs to warnings, so they do not drown
// the changes it prints, unless a log level was asked for.
func (e *env) demoLogConfig(c config.LogConfig) config.LogConfig {
	if e.flags.changed("log-level") || e.flags.configFile != "" || os.Getenv(config.EnvLogLevel) != "" {
		return c
	}
	c.Level = "warn"
	return c
}

// ignoreCanceled returns nil when ctx has ended (the demo was stopped
// while starting), else err.
func ignoreCanceled(ctx context.Context, err error) error {
	if ctx.Err() != nil && !errors.Is(err, errDataDirLocked) {
		return nil
	}
	return err
}
