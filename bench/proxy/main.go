// Command proxy measures pgtide's offline-database proxy against a
// direct connection and against PgBouncer in session mode, and the time
// from connection to first result for a dataset no instance serves yet.
//
// One run:
//
//  1. starts a throwaway source cluster and fills database bench with
//     pgbench -i -s <scale> (scale 70 is about 1 GB);
//  2. takes a snapshot of it (no masking rules, so the snapshot is the
//     plain copy) and starts the proxy on it;
//  3. times pgx connect + SELECT 1 through the proxy with no instance
//     running (copy, start, connect), best of -cold-reps; the reference
//     is a plain `cp -a` of the snapshot plus a server start and the
//     same query;
//  4. times the same first connection through a proxy with a warm pool
//     (proxy.instances.warm = 1) once the pool is filled, best of
//     -cold-reps, against the same reference;
//  5. with the instance up, runs pgbench select-only (-S) and TPC-B-like
//     for -duration each, with each of -clients client counts (1: latency
//     bound; 4: both cores saturated), directly to the instance over
//     TCP, through the proxy, and through PgBouncer (session mode, on the
//     instance's Unix socket), each run from the same state (autovacuum
//     off; before each run the cleanup pgbench does without -n, a
//     checkpoint and sync(2)): -rounds rounds, each target in a rotated
//     order per round so none always runs first, and keeps each target's
//     median (single runs on 2 cores vary by ±30%).
//
// Usage:
//
//	go run ./bench/proxy [-scale 70] [-duration 10s] [-clients 1,4] [-cold-reps 3] [-rounds 3] [-keep]
//
// PgBouncer comes from the distribution: apt-get install -y pgbouncer.
// The last lines are RESULT lines; see docs/benchmarks.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgtide/pgtide/internal/instance/pgproc"
	"github.com/pgtide/pgtide/internal/pgtest"
	"github.com/pgtide/pgtide/internal/proxy"
	"github.com/pgtide/pgtide/internal/snapshot"
)

const password = "bench-secret"

func main() {
	scale := flag.Int("scale", 70, "pgbench scale of the dataset (70 ≈ 1 GB)")
	duration := flag.Duration("duration", 10*time.Second, "length of each pgbench run")
	clientList := flag.String("clients", "1,4", "pgbench client counts, comma-separated")
	coldReps := flag.Int("cold-reps", 3, "cold connects to time (best kept)")
	rounds := flag.Int("rounds", 3, "pgbench rounds over all targets (median kept)")
	keep := flag.Bool("keep", false, "keep the data directory")
	flag.Parse()

	clients, err := parseCounts(*clientList)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/proxy: -clients:", err)
		os.Exit(2)
	}

	if err := run(*scale, *duration, clients, *coldReps, *rounds, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "bench/proxy:", err)
		os.Exit(1)
	}
}

func run(scale int, duration time.Duration, clients []int, coldReps, rounds int, keep bool) error {
	ctx := context.Background()

	if _, err := exec.LookPath("pgbouncer"); err != nil {
		if _, err := os.Stat("/usr/sbin/pgbouncer"); err != nil {
			return errors.New("pgbouncer not found: install it with `apt-get install -y pgbouncer`")
		}
	}

	src, err := pgtest.StartCluster(ctx, pgtest.Options{Settings: map[string]string{
		"max_wal_size": "4GB", "checkpoint_timeout": "30min",
	}})
	if err != nil {
		return err
	}
	defer src.Stop(context.Background())

	if err := src.CreateDatabase(ctx, "bench"); err != nil {
		return err
	}

	step := time.Now()
	if out, err := src.Command(ctx, "pgbench", "-i", "-q", "-s", fmt.Sprint(scale), "bench").CombinedOutput(); err != nil {
		return fmt.Errorf("pgbench -i: %w: %s", err, out)
	}

	fmt.Printf("dataset: pgbench scale %d loaded in %s\n", scale, time.Since(step).Round(time.Second))

	dir, err := os.MkdirTemp("", "pgtide-bench-proxy-")
	if err != nil {
		return err
	}

	if !keep {
		defer os.RemoveAll(dir)
	}

	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}

	cfg := proxy.Config{
		Listen:    "127.0.0.1:0",
		DataDir:   dir,
		Users:     map[string]string{"bench": password},
		Datasets:  map[string]proxy.Dataset{"bench": {Dataset: snapshot.Dataset{Source: src.DSN("bench")}}},
		Instances: proxy.InstanceLimits{TCP: true, Settings: map[string]string{"shared_buffers": "256MB", "autovacuum": "off"}},
		Logger:    slog.New(slog.DiscardHandler),
	}

	snaps, err := snapshot.New(cfg.SnapshotConfig())
	if err != nil {
		return err
	}

	step = time.Now()
	snap, err := snaps.Create(ctx, "bench")
	if err != nil {
		return err
	}

	fmt.Printf("snapshot: %s, %.2f GB, taken in %s\n", snap.ID, float64(snap.Size)/1e9, time.Since(step).Round(time.Millisecond))

	// The source is no longer needed; stop it so it does not compete.
	_ = src.Stop(ctx)

	refCold, err := plainCold(ctx, snap, dir, coldReps)
	if err != nil {
		return err
	}

	// The warm pool runs in a proxy of its own, stopped before the one
	// measured cold: both use the data directory's instances.
	proxyWarm, err := proxyWarmConnect(ctx, cfg, coldReps)
	if err != nil {
		return err
	}

	srv, err := proxy.New(ctx, cfg)
	if err != nil {
		return err
	}

	go func() { _ = srv.Serve(context.Background()) }()
	defer srv.Shutdown(context.Background())

	proxyCold, err := proxyColdConnect(ctx, srv, coldReps)
	if err != nil {
		return err
	}

	// Keep one session open so the instance stays up for the TPS runs.
	hold, err := pgx.Connect(ctx, proxyDSN(srv))
	if err != nil {
		return err
	}
	defer hold.Close(context.Background())

	if st, err := srv.Status(ctx); err == nil && len(st.Connections) > 0 {
		fmt.Printf("pgtide relays sessions in the %s\n", st.Connections[0].Relay)
	}

	ep, err := endpointOf(srv)
	if err != nil {
		return err
	}

	bouncer, err := startBouncer(ctx, dir, ep)
	if err != nil {
		return err
	}
	defer bouncer.stop()

	targets := []target{
		{name: "direct", env: []string{"PGHOST=127.0.0.1", "PGPORT=" + ep.port, "PGUSER=pgtide_analyst"}},
		{name: "pgtide", env: proxyEnv(srv)},
		{name: "pgbouncer", env: []string{"PGHOST=127.0.0.1", "PGPORT=" + bouncer.port, "PGUSER=pgtide_analyst"}},
	}

	var lines []string
	for _, n := range clients {
		results, err := tpsRounds(ctx, ep, targets, rounds, duration, n)
		if err != nil {
			return err
		}

		lines = append(lines, tpsResults(results, n)...)
	}

	for _, l := range lines {
		fmt.Println(l)
	}

	fmt.Printf("RESULT proxy_cold_connect_seconds pgtide=%.3f reference=%.3f unit=s ratio=%.2f\n",
		proxyCold.Seconds(), refCold.Seconds(), refCold.Seconds()/proxyCold.Seconds())
	fmt.Printf("RESULT proxy_warm_connect_seconds pgtide=%.3f reference=%.3f unit=s ratio=%.2f\n",
		proxyWarm.Seconds(), refCold.Seconds(), refCold.Seconds()/proxyWarm.Seconds())

	return nil
}

func proxyDSN(srv *proxy.Server) string {
	host, port, _ := strings.Cut(srv.Addr().String(), ":")
	return fmt.Sprintf("host=%s port=%s user=bench password=%s dbname=bench sslmode=disable", host, port, password)
}

func proxyEnv(srv *proxy.Server) []string {
	host, port, _ := strings.Cut(srv.Addr().String(), ":")
	return []string{"PGHOST=" + host, "PGPORT=" + port, "PGUSER=bench", "PGPASSWORD=" + password}
}

// firstResult times pgx connect + SELECT 1 to dsn.
func firstResult(ctx context.Context, dsn string) (time.Duration, error) {
	start := time.Now()

	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)

	var one int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		return 0, err
	}

	return time.Since(start), nil
}

// proxyColdConnect times connect + SELECT 1 through the proxy while no
// instance runs, reps times, waiting for the instance to stop in between.
func proxyColdConnect(ctx context.Context, srv *proxy.Server, reps int) (time.Duration, error) {
	best := time.Duration(0)
	for i := range reps {
		d, err := firstResult(ctx, proxyDSN(srv))
		if err != nil {
			return 0, err
		}

		fmt.Printf("cold connect through pgtide #%d: %s\n", i+1, d.Round(time.Millisecond))
		if best == 0 || d < best {
			best = d
		}

		if i < reps-1 {
			if err := stopAll(ctx, srv); err != nil {
				return 0, err
			}
		}
	}

	return best, nil
}

// proxyWarmConnect starts a proxy with a warm pool of one instance, waits
// until the pool is filled, and times connect + SELECT 1 through it, reps
// times, each once the instance is back to warm (no connection).
func proxyWarmConnect(ctx context.Context, cfg proxy.Config, reps int) (time.Duration, error) {
	cfg.Instances.Warm = 1

	srv, err := proxy.New(ctx, cfg)
	if err != nil {
		return 0, err
	}

	go func() { _ = srv.Serve(context.Background()) }()
	defer srv.Shutdown(context.Background())

	step := time.Now()
	if err := waitWarm(ctx, srv); err != nil {
		return 0, err
	}

	fmt.Printf("warm pool filled in %s\n", time.Since(step).Round(time.Millisecond))

	best := time.Duration(0)
	for i := range reps {
		d, err := firstResult(ctx, proxyDSN(srv))
		if err != nil {
			return 0, err
		}

		fmt.Printf("warm connect through pgtide #%d: %s\n", i+1, d.Round(time.Millisecond))
		if best == 0 || d < best {
			best = d
		}

		if err := waitWarm(ctx, srv); err != nil {
			return 0, err
		}
	}

	return best, nil
}

// waitWarm waits up to two minutes until the proxy lists an instance in
// state warm: booted by the pool, without connections.
func waitWarm(ctx context.Context, srv *proxy.Server) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		for _, st := range srv.Controller().Status() {
			if st.State == "warm" {
				return nil
			}
		}

		if time.Now().After(deadline) {
			return fmt.Errorf("no warm instance after 2m: %+v", srv.Controller().Status())
		}

		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// plainCold times `cp -a` of the snapshot, a server start with pg_ctl -w
// and SELECT 1 over its socket: what a script without pgtide would do.
func plainCold(ctx context.Context, snap snapshot.Snapshot, dir string, reps int) (time.Duration, error) {
	runner, err := pgproc.NewRunner("")
	if err != nil {
		return 0, err
	}

	best := time.Duration(0)
	for i := range reps {
		base := filepath.Join(dir, fmt.Sprintf("plain-%d", i))
		if err := os.Mkdir(base, 0o755); err != nil {
			return 0, err
		}

		if err := runner.Chown(base); err != nil {
			return 0, err
		}

		data := filepath.Join(base, "data")
		start := time.Now()

		if out, err := exec.CommandContext(ctx, "cp", "-a", snap.DataDir, data).CombinedOutput(); err != nil {
			return 0, fmt.Errorf("cp: %w: %s", err, out)
		}

		err := runner.Run(ctx, "pg_ctl", nil, "start", "-w", "-D", data, "-l", filepath.Join(base, "log"),
			"-o", "-c listen_addresses='' -c unix_socket_directories="+base+" -c port=5432")
		if err != nil {
			return 0, err
		}

		_, err = firstResult(ctx, fmt.Sprintf("host=%s port=5432 user=postgres dbname=bench sslmode=disable", base))
		d := time.Since(start) // copy + start + first result
		_ = runner.Run(ctx, "pg_ctl", nil, "stop", "-m", "immediate", "-D", data)
		_ = os.RemoveAll(base)

		if err != nil {
			return 0, err
		}

		fmt.Printf("cold plain copy + start #%d: %s\n", i+1, d.Round(time.Millisecond))
		if best == 0 || d < best {
			best = d
		}
	}

	return best, nil
}
