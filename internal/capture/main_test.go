package capture

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/pgtide/pgtide/internal/changelog"
)

// childEnv, when set, makes the test binary run a capture process for the
// crash test instead of the tests: PGTIDE_TEST_CHILD=<dsn> and
// PGTIDE_TEST_CHILD_DIR=<log data dir>.
const (
	childEnv    = "PGTIDE_TEST_CHILD"
	childDirEnv = "PGTIDE_TEST_CHILD_DIR"
	// childSnapshotEnv turns the child's initial snapshot on, throttled
	// so that kills land inside it.
	childSnapshotEnv = "PGTIDE_TEST_CHILD_SNAPSHOT"
)

// interruptSignal stops a child gracefully.
var interruptSignal = syscall.SIGTERM

func TestMain(m *testing.M) {
	if dsn := os.Getenv(childEnv); dsn != "" {
		os.Exit(runChild(dsn, os.Getenv(childDirEnv)))
	}
	os.Exit(m.Run())
}

// runChild runs capture until SIGTERM, as `pgtide capture` would.
func runChild(dsn, dir string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	l, err := changelog.Open(ctx, changelog.Config{DataDir: dir, SyncInterval: 100 * time.Millisecond})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: open log:", err)
		return 1
	}
	defer l.Close()
	opts := Options{
		Source: "src", DSN: dsn, Slot: "pgtide_src", Publication: "pgtide_src", DDL: true,
		Log: l, Logger: logger, StatusInterval: 50 * time.Millisecond, BatchRows: 7,
		ConfirmDelay: 200 * time.Millisecond, MaxPending: 64,
	}
	if os.Getenv(childSnapshotEnv) != "" {
		opts.BatchRows = 50
		opts.Snapshot = SnapshotOptions{Enabled: true, ChunkRows: 500, Workers: 2, RowsPerSecond: 4000}
	}
	c, err := New(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	if err := c.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}
