// Command apply measures pgtide's apply against PostgreSQL's native
// logical replication, on one machine and the same backlog.
//
// Two cases: -one-row one-row transactions, and -rows rows in transactions
// of -tx-rows rows. For each case a fresh source database receives the
// backlog while neither consumer runs: native replication's slot and
// pgtide's slot exist before it is written, so both must drain the same
// WAL. Then, on a second cluster:
//
//   - native: a subscription (copy_data = false, on the prepared slot) is
//     enabled; the time runs from ALTER SUBSCRIPTION ... ENABLE until the
//     marker row written after the backlog appears in the subscriber;
//   - pgtide: capture first writes the backlog into the embedded log (not
//     timed); the time runs from starting the applier until its progress
//     reaches the log's last record (the same marker transaction).
//
// Both targets are databases of the same throwaway cluster with the same
// settings; the row counts are checked after each drain.
//
// Usage:
//
//	go run ./bench/apply [-reps 3] [-one-row 10000] [-rows 1000000]
//	    [-tx-rows 1000] [-read-batch n] [-cpuprofile file]
//
// Each case runs -reps times (fresh databases each time, native first);
// the best rate of each side is kept. The output ends with one RESULT line
// per case; ratio is pgtide's rate over native's. See docs/benchmarks.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/pgtide/pgtide/bench/internal/benchkit"
	"github.com/pgtide/pgtide/internal/pgtest"
)

// benchSettings keep checkpoints and autovacuum from pacing one drain and
// not the other.
var benchSettings = map[string]string{
	"autovacuum":                      "off",
	"shared_buffers":                  "256MB",
	"max_wal_size":                    "4GB",
	"checkpoint_timeout":              "30min",
	"logical_decoding_work_mem":       "64MB",
	"max_replication_slots":           "20",
	"max_wal_senders":                 "20",
	"max_logical_replication_workers": "8",
}

type config struct {
	reps       int
	oneRow     int
	rows       int
	txRows     int
	cpuProfile string
}

func main() {
	var cfg config
	flag.IntVar(&cfg.reps, "reps", 3, "drains of each case by each side; the best of each is kept")
	flag.IntVar(&cfg.oneRow, "one-row", 10000, "one-row transactions in the first case (0 skips it)")
	flag.IntVar(&cfg.rows, "rows", 1000000, "rows in the second case (0 skips it)")
	flag.IntVar(&cfg.txRows, "tx-rows", 1000, "rows per transaction in the second case")
	flag.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write a CPU profile of the first pgtide drain to this file")
	flag.IntVar(&readBatch, "read-batch", 0, "log messages the applier pulls at a time (0: its default)")
	flag.Parse()
	benchkit.Main("bench/apply", func(ctx context.Context) error { return run(ctx, cfg) })
}

func run(ctx context.Context, cfg config) (err error) {
	if cfg.txRows <= 0 || cfg.oneRow < 0 || cfg.rows < 0 || cfg.reps <= 0 {
		return errors.New("-one-row and -rows must not be negative, -tx-rows and -reps must be positive")
	}
	src, err := pgtest.StartCluster(ctx, pgtest.Options{Settings: benchSettings})
	if err != nil {
		return fmt.Errorf("start the source cluster: %w", err)
	}
	defer src.Stop(context.Background())
	// The subscriber's launcher waits wal_retrieve_retry_interval (5s by
	// default) between starts of apply workers; a short one keeps that
	// wait out of native replication's figure.
	dstSettings := map[string]string{"wal_retrieve_retry_interval": "50ms"}
	for k, v := range benchSettings {
		dstSettings[k] = v
	}
	dst, err := pgtest.StartCluster(ctx, pgtest.Options{Settings: dstSettings})
	if err != nil {
		return fmt.Errorf("start the target cluster: %w", err)
	}
	defer dst.Stop(context.Background())

	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		profile = f
	}

	var results []string
	cases := []benchCase{
		{name: "apply_10k_one_row_tx", db: "onerow", rows: cfg.oneRow, txRows: 1},
		{name: "apply_1m_rows_1000_per_tx", db: "batched", rows: cfg.rows, txRows: cfg.txRows},
	}
	for _, c := range cases {
		if c.rows == 0 {
			continue
		}
		var best drainResult
		for rep := range cfg.reps {
			rc := c
			rc.db = fmt.Sprintf("%s%d", c.db, rep)
			res, err := rc.run(ctx, src, dst)
			if err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			best.native = max(best.native, res.native)
			best.pgtide = max(best.pgtide, res.pgtide)
		}
		results = append(results, fmt.Sprintf("RESULT %s pgtide=%.0f reference=%.0f unit=rows/s ratio=%.2f",
			c.name, best.pgtide, best.native, best.pgtide/best.native))
	}
	for _, r := range results {
		fmt.Println(r)
	}
	return nil
}

// profile, when set, receives a CPU profile of the pgtide drains.
var profile *os.File

// readBatch is the applier's ReadBatch.
var readBatch int

// drainResult holds the rates, in rows/s, of one drain by each side.
type drainResult struct{ native, pgtide float64 }

func (c benchCase) run(ctx context.Context, src, dst *pgtest.Cluster) (drainResult, error) {
	fmt.Printf("== %s: %d rows in transactions of %d\n", c.name, c.rows, c.txRows)
	if err := c.prepare(ctx, src, dst); err != nil {
		return drainResult{}, err
	}
	t0 := time.Now()
	if err := c.generate(ctx, src); err != nil {
		return drainResult{}, err
	}
	fmt.Printf("backlog written in %.2fs\n", time.Since(t0).Seconds())

	logDir, err := os.MkdirTemp("", "pgtide-bench-apply-")
	if err != nil {
		return drainResult{}, err
	}
	defer os.RemoveAll(logDir)
	lg, err := c.captureBacklog(ctx, src, logDir)
	if err != nil {
		return drainResult{}, err
	}
	defer lg.Close()

	native, err := c.nativeDrain(ctx, dst)
	if err != nil {
		return drainResult{}, fmt.Errorf("native: %w", err)
	}
	nativeRate := float64(c.rows) / native.Seconds()
	fmt.Printf("native replication: %.3fs, %.0f rows/s\n", native.Seconds(), nativeRate)

	pg, err := c.pgtideDrain(ctx, src, dst, lg)
	if err != nil {
		return drainResult{}, fmt.Errorf("pgtide: %w", err)
	}
	pgRate := float64(c.rows) / pg.Seconds()
	fmt.Printf("pgtide apply:       %.3fs, %.0f rows/s\n", pg.Seconds(), pgRate)

	if err := c.verify(ctx, dst); err != nil {
		return drainResult{}, err
	}
	return drainResult{native: nativeRate, pgtide: pgRate}, nil
}
