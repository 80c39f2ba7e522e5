// Command snapshot measures pgtide's initial snapshot of a large table
// against `COPY ... TO STDOUT`, the way pg_dump reads a table, side by side
// on one throwaway PostgreSQL cluster.
//
// The table bench(id bigint primary key, a int, b text, c timestamptz,
// d numeric) is loaded with -rows rows of about 110 bytes on disk (9,000,000
// rows make about 1 GB), then vacuumed, analyzed and checkpointed. Then:
//
//   - reference: COPY bench TO STDOUT (text format) over TCP to 127.0.0.1,
//     drained by pgconn's CopyTo into a byte counter;
//   - pgtide: capture with the initial snapshot on (defaults except
//     -workers), in this process, writing to a fresh embedded JetStream
//     log; timed from starting capture (slot creation with an exported
//     snapshot, planning and reading included) until capture logs
//     "snapshot done", which it does once the log acknowledged every row
//     and the plan's state is stored as done;
//   - the two alternate, -reps times each, and the best run of each side
//     counts;
//   - informational: pgtide with each of -extra-workers, pgtide with the
//     chunk queries planned without parallel workers or a sort
//     (-serial-plans), and pg_dump of the table's data to /dev/null
//     (-pg-dump).
//
// Rates are rows per second and MB per second, MB being the table's
// pg_table_size (10^6 bytes) divided by the elapsed time.
//
// Usage:
//
//	go run ./bench/snapshot [-rows 9000000] [-reps 3] [-workers 2]
//	    [-extra-workers 1,3] [-serial-plans] [-pg-dump] [-cpuprofile file] [-keep]
//
// The last lines of the output are RESULT lines whose ratio is above 1
// when pgtide is faster than the reference. See docs/benchmarks.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/pgtide/pgtide/bench/internal/benchkit"
)

// benchSettings are the server settings of a load test: buffers and WAL
// large enough that checkpoints do not pace the load or the reads, and no
// autovacuum, which would otherwise run over the fresh table while one
// side is being measured.
var benchSettings = map[string]string{
	"autovacuum":           "off",
	"shared_buffers":       "512MB",
	"max_wal_size":         "8GB",
	"checkpoint_timeout":   "30min",
	"maintenance_work_mem": "512MB",
	"wal_compression":      "off",
}

// config holds the command-line flags.
type config struct {
	rows         int
	reps         int
	workers      int
	serialPlans  bool
	extraWorkers []int
	pgDump       bool
	cpuProfile   string
	keep         bool
}

func main() {
	var cfg config
	var extra string
	flag.IntVar(&cfg.rows, "rows", 9_000_000, "rows in the table (9000000 make about 1 GB)")
	flag.IntVar(&cfg.reps, "reps", 3, "runs of each side, alternating; the best counts")
	flag.IntVar(&cfg.workers, "workers", 2, "snapshot workers of the pgtide runs that count")
	flag.StringVar(&extra, "extra-workers", "1,3",
		"comma-separated worker counts of informational pgtide runs (empty: none)")
	flag.BoolVar(&cfg.pgDump, "pg-dump", true, "also time pg_dump of the table's data (informational)")
	flag.BoolVar(&cfg.serialPlans, "serial-plans", true,
		"also run pgtide with parallel query and sorting off for its chunk queries (informational)")
	flag.StringVar(&cfg.cpuProfile, "cpuprofile", "", "CPU profile of the first pgtide run")
	flag.BoolVar(&cfg.keep, "keep", false, "leave the cluster running and the change logs on disk")
	flag.Parse()

	var err error
	if cfg.extraWorkers, err = parseInts(extra); err == nil {
		err = cfg.check()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/snapshot:", err)
		os.Exit(2)
	}

	benchkit.Main("bench/snapshot", func(ctx context.Context) error { return run(ctx, cfg) })
}

func (cfg *config) check() error {
	switch {
	case cfg.rows <= 0:
		return errors.New("-rows must be positive")
	case cfg.reps <= 0:
		return errors.New("-reps must be positive")
	case cfg.workers <= 0:
		return errors.New("-workers must be positive")
	}
	for _, w := range cfg.extraWorkers {
		if w <= 0 {
			return errors.New("-extra-workers must list positive numbers")
		}
	}
	return nil
}

// parseInts parses "1,3" into [1 3]; "" gives none.
func parseInts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("-extra-workers: %w", err)
		}
		out = append(out, n)
	}
	return out, nil
}

// run starts the cluster, loads the table, measures both sides and prints
// the results.
func run(ctx context.Context, cfg config) (err error) {
	fmt.Printf("load average at the start: %s\n", benchkit.LoadAvg())
	pg, stop, err := benchkit.StartCluster(ctx, benchSettings, cfg.keep)
	if err != nil {
		return err
	}
	defer func() {
		if serr := stop(); serr != nil && err == nil {
			err = serr
		}
	}()

	b := &bench{cfg: cfg, pg: pg}
	if err := b.load(ctx); err != nil {
		return err
	}
	fmt.Printf("machine: %d CPUs; %s; cluster on 127.0.0.1:%d\n", numCPU(), b.serverVersion, pg.Port())
	fmt.Printf("table: %d rows, pg_table_size %.1f MB (%d bytes, %.0f bytes per row)\n\n",
		b.rows, b.mb(), b.tableBytes, float64(b.tableBytes)/float64(b.rows))

	// Alternate the sides, so that a burst of other work on the machine
	// does not hit one side only; the best run of each counts.
	var p, ref measured
	for i := 1; i <= cfg.reps; i++ {
		r, err := b.reference(ctx, i)
		if err != nil {
			return err
		}
		profile := ""
		if i == 1 {
			profile = cfg.cpuProfile
		}
		m, err := b.pgtide(ctx, cfg.workers, fmt.Sprintf(" run %d", i), profile)
		if err != nil {
			return err
		}
		if i == 1 || r.seconds < ref.seconds {
			ref = r
		}
		if i == 1 || m.seconds < p.seconds {
			p = m
		}
	}

	fmt.Println("\ninformational:")
	for _, w := range cfg.extraWorkers {
		if _, err := b.pgtide(ctx, w, "", ""); err != nil {
			return err
		}
	}
	if cfg.serialPlans {
		if err := b.serialChunkPlans(ctx, cfg.workers); err != nil {
			return err
		}
	}
	if cfg.pgDump {
		if err := b.pgDump(ctx); err != nil {
			return err
		}
	}

	// Other work on the machine skews every figure: show how busy it was.
	fmt.Printf("\nload average at the end: %s\n", benchkit.LoadAvg())
	fmt.Printf("counted: best of %d runs each: pgtide with %d workers %.2f s, COPY %.2f s\n\n",
		cfg.reps, cfg.workers, p.seconds, ref.seconds)
	pr, rr := b.rate(p), b.rate(ref)
	fmt.Printf("RESULT snapshot_1gb_rows_per_s pgtide=%.0f reference=%.0f unit=rows/s ratio=%.2f\n",
		pr, rr, pr/rr)
	pm, rm := b.mbRate(p), b.mbRate(ref)
	fmt.Printf("RESULT snapshot_1gb_mb_per_s pgtide=%.1f reference=%.1f unit=MB/s ratio=%.2f\n",
		pm, rm, pm/rm)
	return nil
}
