package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgtide/pgtide/internal/pgtest"
)

// sharedPG is one PostgreSQL cluster for the tests of this package; each
// test uses its own database.
var sharedPG *pgtest.Cluster

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	pg, err := pgtest.StartCluster(ctx, pgtest.Options{})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start PostgreSQL for the cli tests:", err)
		os.Exit(1)
	}
	sharedPG = pg

	code := m.Run()
	if err := pg.Stop(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "stop PostgreSQL:", err)
	}
	os.Exit(code)
}

// dbSeq makes database names unique across repeated runs (-count).
var dbSeq atomic.Int64

// createDB creates a database for the test, named prefix and a number,
// and returns its name and DSN.
func createDB(t *testing.T, prefix string) (name, dsn string) {
	t.Helper()
	name = fmt.Sprintf("%s_%d", prefix, dbSeq.Add(1))
	if err := sharedPG.CreateDatabase(t.Context(), name); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	return name, sharedPG.DSN(name)
}

func execSQL(t *testing.T, db, sql string) {
	t.Helper()
	if err := sharedPG.Exec(t.Context(), db, sql); err != nil {
		t.Fatalf("exec %q in %s: %v", sql, db, err)
	}
}

// writeConfig writes a configuration file for the test.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pgtide.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// syncBuffer is a bytes.Buffer safe for a command writing while the test
// reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// result is the outcome of one command run.
type result struct {
	code           int
	stdout, stderr string
}

// run runs the command line args to completion.
func run(t *testing.T, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Main(t.Context(), args, &stdout, &stderr)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// mustRun runs args and fails the test unless the command succeeds.
func mustRun(t *testing.T, args ...string) result {
	t.Helper()
	r := run(t, args...)
	if r.code != 0 {
		t.Fatalf("pgtide %s: %s", strings.Join(args, " "), r)
	}
	return r
}
