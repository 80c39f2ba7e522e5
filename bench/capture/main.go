// Command capture measures pgtide's capture against pg_recvlogical, side by
// side on one throwaway PostgreSQL cluster.
//
// Two figures come out of one run:
//
//   - throughput: a backlog of single-row INSERTs, committed in
//     transactions of -tx-rows rows, drained once by pgtide capture into
//     the embedded JetStream log and once by pg_recvlogical (pgoutput,
//     same publications, same WAL), both over TCP; the best of -reps
//     drains of each is kept;
//   - memory: one transaction of -rows5m rows drained by each, measured
//     as the peak resident set size of the draining process; pgtide
//     drains it twice, alone (the figure) and with a reader following
//     the log's tail (for comparison).
//
// Both drains run in child processes: pg_recvlogical is one, and pgtide
// capture runs in a copy of this program started for the purpose, so
// that its peak RSS is its own and a CPU profile covers only the drain.
//
// Usage:
//
//	go run ./bench/capture [-rows 1000000] [-tx-rows 1000] [-rows5m 5000000]
//	    [-reps 2] [-batch-rows n] [-cpuprofile file] [-cpuprofile5m file]
//	    [-memprofile5m file] [-verify] [-keep]
//
// The last lines of the output are RESULT lines, one per figure, whose
// ratio is above 1 when pgtide does better than the reference. See
// docs/benchmarks.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/pgtide/pgtide/bench/internal/benchkit"
	"github.com/pgtide/pgtide/internal/capture"
)

// Names shared by the parent and its capture children.
const (
	source      = "bench"
	publication = "pgtide_bench"
)

// benchSettings are the server settings of a load test: large enough
// buffers and WAL that checkpoints and spills do not pace the drains, and
// no autovacuum, whose run over the fresh backlog would otherwise compete
// with whichever drain comes first.
var benchSettings = map[string]string{
	"autovacuum":                "off",
	"shared_buffers":            "256MB",
	"max_wal_size":              "4GB",
	"checkpoint_timeout":        "30min",
	"logical_decoding_work_mem": "64MB",
	"wal_compression":           "off",
}

// config holds the command-line flags.
type config struct {
	rows, txRows, rows5m, reps int
	batchRows                  int
	cpuProfile, cpuProfile5m   string
	memProfile5m               string
	keep, verify               bool
}

func main() {
	if spec := os.Getenv(childEnv); spec != "" {
		if err := runChild(spec); err != nil {
			fmt.Fprintln(os.Stderr, "capture child:", err)
			os.Exit(1)
		}
		return
	}

	var cfg config
	flag.IntVar(&cfg.rows, "rows", 1_000_000, "rows in the throughput backlog")
	flag.IntVar(&cfg.txRows, "tx-rows", 1000, "rows per transaction of the backlog")
	flag.IntVar(&cfg.rows5m, "rows5m", 5_000_000, "rows of the memory run's transaction (0 skips it)")
	flag.IntVar(&cfg.reps, "reps", 2, "throughput drains of each side; the best counts")
	flag.IntVar(&cfg.batchRows, "batch-rows", 0, "capture's BatchRows (0: its default)")
	flag.StringVar(&cfg.cpuProfile, "cpuprofile", "",
		"CPU profile of pgtide's throughput drains: `file` for run 1, file.N for run N")
	flag.StringVar(&cfg.cpuProfile5m, "cpuprofile5m", "", "CPU profile of pgtide's memory-run drain")
	flag.StringVar(&cfg.memProfile5m, "memprofile5m", "",
		"heap profiles taken when pgtide's memory-run drains end: `file`, file.tail")
	flag.BoolVar(&cfg.verify, "verify", false, "count the log's records after each pgtide drain (not timed)")
	flag.BoolVar(&cfg.keep, "keep", false, "leave the cluster running and the log directories on disk")
	flag.Parse()

	if err := cfg.check(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/capture:", err)
		os.Exit(2)
	}

	benchkit.Main("bench/capture", func(ctx context.Context) error { return run(ctx, cfg) })
}

func (cfg *config) check() error {
	switch {
	case cfg.rows <= 0 || cfg.txRows <= 0:
		return errors.New("-rows and -tx-rows must be positive")
	case cfg.rows%cfg.txRows != 0:
		return fmt.Errorf("-rows %d is not a multiple of -tx-rows %d", cfg.rows, cfg.txRows)
	case cfg.rows5m < 0:
		return errors.New("-rows5m must not be negative")
	case cfg.reps <= 0:
		return errors.New("-reps must be positive")
	}
	return nil
}

// run starts the cluster, runs both parts and prints the results.
func run(ctx context.Context, cfg config) (err error) {
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
	if err := b.prepare(ctx); err != nil {
		return err
	}
	defer b.removeLogDirs()

	fmt.Printf("machine: %d CPUs, %s; cluster on 127.0.0.1:%d; load average %s\n",
		numCPU(), b.serverVersion, pg.Port(), benchkit.LoadAvg())

	tp, err := b.throughput(ctx)
	if err != nil {
		return err
	}

	var mem *memResult
	if cfg.rows5m > 0 {
		if mem, err = b.memory(ctx); err != nil {
			return err
		}
	}

	// Other work on the machine skews every figure: show how busy it was.
	fmt.Printf("\nload average at the end: %s\n\n", benchkit.LoadAvg())
	fmt.Printf("RESULT capture_%s_rows_%d_per_tx pgtide=%.0f reference=%.0f unit=rows/s ratio=%.2f\n",
		countName(cfg.rows), cfg.txRows, tp.pgtide, tp.reference, tp.pgtide/tp.reference)
	if mem != nil {
		fmt.Printf("RESULT capture_%s_row_tx_peak_rss pgtide=%.0f reference=%.0f unit=MiB ratio=%.2f\n",
			countName(cfg.rows5m), mem.pgtide, mem.reference, mem.reference/mem.pgtide)
	}
	return nil
}

// countName writes 1000000 as "1m" and 5000 as "5k" for figure names.
func countName(n int) string {
	switch {
	case n%1_000_000 == 0:
		return fmt.Sprintf("%dm", n/1_000_000)
	case n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}

// setupOptions are the capture options Setup needs; the children fill in
// the log.
func setupOptions(dsn, slot string) capture.Options {
	return capture.Options{
		Source:      source,
		DSN:         dsn,
		Slot:        slot,
		Publication: publication,
		DDL:         false,
	}
}
