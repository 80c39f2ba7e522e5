package apply

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

// When childEnv is set, the test binary runs an applier for the crash
// test instead of the tests: PGTIDE_APPLY_CHILD=<target DSN>,
// PGTIDE_APPLY_CHILD_LOG=<log URL>.
const (
	childEnv    = "PGTIDE_APPLY_CHILD"
	childLogEnv = "PGTIDE_APPLY_CHILD_LOG"
)

func TestMain(m *testing.M) {
	if dsn := os.Getenv(childEnv); dsn != "" {
		os.Exit(runChild(dsn, os.Getenv(childLogEnv)))
	}
	os.Exit(m.Run())
}

// runChild applies until SIGTERM, as `pgtide apply` would.
func runChild(dsn, logURL string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	l, err := changelog.Open(ctx, changelog.Config{URL: logURL})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: open log:", err)
		return 1
	}
	defer l.Close()
	a, err := New(Options{
		Source: "src", Log: l, TargetDSN: dsn, Logger: logger,
		GroupMaxTx: 7, GroupMaxRows: 500, GroupMaxDelay: 20 * time.Millisecond, Pipeline: 16,
		RetryBackoff: 200 * time.Millisecond,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	if err := a.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}
