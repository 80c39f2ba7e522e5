package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/pgtide/pgtide/internal/capture"
	"github.com/pgtide/pgtide/internal/changelog"
)

// Names of the capture source and its publication.
const (
	source      = "bench"
	publication = "pgtide_bench"
)

// pgtide takes one initial snapshot of the table with capture running in
// this process, into a fresh embedded log, with the given number of
// workers. Its time runs from starting capture (which creates the slot
// and its exported snapshot, then plans the chunks) until capture logs
// "snapshot done", after the log acknowledged every row and the plan's
// done state was stored. Opening the log and Setup are not timed.
func (b *bench) pgtide(ctx context.Context, workers int, label, cpuProfile string) (measured, error) {
	b.runs++
	slot := fmt.Sprintf("pgtide_snap_%d", b.runs)
	dir, err := os.MkdirTemp("", "pgtide-bench-snapshot-")
	if err != nil {
		return measured{}, fmt.Errorf("make log directory: %w", err)
	}
	defer func() {
		if b.cfg.keep {
			fmt.Fprintln(os.Stderr, "kept: change log", dir)
			return
		}
		os.RemoveAll(dir)
	}()

	ev := newEvents()
	opts := capture.Options{
		Source:      source,
		DSN:         b.pg.DSN("postgres"),
		Slot:        slot,
		Publication: publication,
		Snapshot:    capture.SnapshotOptions{Enabled: true, Workers: workers},
		Logger:      slog.New(ev),
	}
	if _, err := capture.Setup(ctx, opts); err != nil {
		return measured{}, fmt.Errorf("capture setup: %w", err)
	}
	lg, err := changelog.Open(ctx, changelog.Config{DataDir: dir})
	if err != nil {
		return measured{}, fmt.Errorf("open change log: %w", err)
	}
	defer lg.Close()
	opts.Log = lg
	c, err := capture.New(opts)
	if err != nil {
		return measured{}, fmt.Errorf("new capture: %w", err)
	}

	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return measured{}, fmt.Errorf("create CPU profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return measured{}, fmt.Errorf("start CPU profile: %w", err)
		}
		defer pprof.StopCPUProfile() // a second stop does nothing
	}
	server0, err := b.serverCPU()
	if err != nil {
		return measured{}, err
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	cpu0 := cpuTime()
	start := time.Now()
	go func() { done <- c.Run(runCtx) }()

	select {
	case <-ev.done:
	case err := <-done:
		return measured{}, fmt.Errorf("capture ended before the snapshot was done: %v (%s)", err, ev.problems())
	case <-ctx.Done():
		return measured{}, ctx.Err()
	}
	m := measured{seconds: time.Since(start).Seconds(), clientCPU: cpuTime() - cpu0}
	server1, err := b.serverCPU()
	if err != nil {
		return m, err
	}
	m.serverCPU = server1 - server0
	if cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	planned := ev.at("snapshot started").Sub(start).Seconds()
	// Only what capture reported during the snapshot counts: stopping it
	// below may log warnings of its own.
	problems := ev.problems()

	// Check the outcome; none of this is timed.
	st := c.Status()
	if st.Snapshot != nil {
		m.rows = st.Snapshot.RowsDone
	}
	cancel()
	if err := <-done; err != nil {
		return m, fmt.Errorf("capture: %w", err)
	}
	if err := checkDone(ctx, lg); err != nil {
		return m, err
	}
	if m.rows != b.rows {
		return m, fmt.Errorf("pgtide snapshot read %d rows, want %d", m.rows, b.rows)
	}
	info, err := lg.Info(ctx, source)
	if err != nil {
		return m, fmt.Errorf("log info: %w", err)
	}
	if problems != "" {
		return m, fmt.Errorf("capture reported problems during the snapshot: %s", problems)
	}
	if err := b.pg.Exec(ctx, "postgres", fmt.Sprintf("SELECT pg_drop_replication_slot('%s')", slot)); err != nil {
		return m, fmt.Errorf("drop slot %s: %w", slot, err)
	}

	b.report(fmt.Sprintf("pgtide %d worker%s%s", workers, plural(workers), label), m, fmt.Sprintf(
		"; slot+plan %.2f s; log %d messages, %.0f MB", planned, info.Msgs, float64(info.Bytes)/1e6))
	return m, nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// checkDone reads the snapshot plan's state from the log's state bucket.
func checkDone(ctx context.Context, lg *changelog.Log) error {
	data, err := lg.GetState(ctx, "snapshot."+source)
	if err != nil {
		return fmt.Errorf("read snapshot state: %w", err)
	}
	var plan struct {
		State string `json:"state"`
	}
	if err := json.Unmarshal(data, &plan); err != nil {
		return fmt.Errorf("decode snapshot state %q: %w", data, err)
	}
	if plan.State != "done" {
		return fmt.Errorf("snapshot state is %q, want done", plan.State)
	}
	return nil
}

// events is a slog.Handler that notes when capture logged each message,
// signals "snapshot done", and keeps warnings and errors. It is safe for
// concurrent use.
type events struct {
	done chan struct{}

	mu       sync.Mutex // guards the fields below
	times    map[string]time.Time
	warnings []string
}

func newEvents() *events {
	return &events{done: make(chan struct{}), times: map[string]time.Time{}}
}

func (e *events) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (e *events) Handle(_ context.Context, r slog.Record) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, seen := e.times[r.Message]; !seen {
		e.times[r.Message] = r.Time
		if r.Message == "snapshot done" {
			close(e.done)
		}
	}
	if r.Level >= slog.LevelWarn {
		var attrs []string
		r.Attrs(func(a slog.Attr) bool {
			attrs = append(attrs, a.String())
			return true
		})
		e.warnings = append(e.warnings, r.Message+" "+strings.Join(attrs, " "))
	}
	return nil
}

func (e *events) WithAttrs([]slog.Attr) slog.Handler { return e }

func (e *events) WithGroup(string) slog.Handler { return e }

// at returns when msg was first logged (zero if never).
func (e *events) at(msg string) time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.times[msg]
}

// problems returns the warnings and errors logged so far, "" if none.
func (e *events) problems() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return strings.Join(e.warnings, "; ")
}

// serialChunkPlans runs pgtide once more with the server told, through
// role settings that its snapshot workers' sessions inherit, to plan chunk
// queries without parallel workers and without a sort: an index scan in
// key order. It shows what the chunk queries' default plan (a parallel
// bitmap heap scan feeding a sort) costs.
func (b *bench) serialChunkPlans(ctx context.Context, workers int) error {
	const set = `ALTER ROLE postgres SET max_parallel_workers_per_gather = 0;
ALTER ROLE postgres SET enable_sort = off`
	if err := b.pg.Exec(ctx, "postgres", set); err != nil {
		return fmt.Errorf("set role settings: %w", err)
	}
	_, err := b.pgtide(ctx, workers, ", serial plans", "")
	if rerr := b.pg.Exec(ctx, "postgres", "ALTER ROLE postgres RESET ALL"); rerr != nil && err == nil {
		err = fmt.Errorf("reset role settings: %w", rerr)
	}
	return err
}
