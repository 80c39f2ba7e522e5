package capture

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgtide/pgtide/internal/change"
	"github.com/pgtide/pgtide/internal/changelog"
	"github.com/pgtide/pgtide/internal/pgtest"
)

// testEnv is a real source cluster and a real embedded change log.
type testEnv struct {
	pg   *pgtest.Cluster
	dsn  string
	log  *changelog.Log
	opts Options
}

// newTestEnv starts Postgres (in a non-UTC time zone, to prove capture pins
// its own session settings) and an embedded log.
func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	pg := pgtest.Start(t, pgtest.Options{Settings: map[string]string{
		"timezone":           "America/New_York",
		"datestyle":          "SQL, DMY",
		"extra_float_digits": "0",
	}})
	e := &testEnv{pg: pg, dsn: pg.DSN("postgres")}
	e.log = openLog(t, t.TempDir())
	e.opts = Options{
		Source: "src", DSN: e.dsn, Slot: "pgtide_src", Publication: "pgtide_src",
		DDL: true, Log: e.log, StatusInterval: 100 * time.Millisecond,
		HeartbeatInterval: time.Second, BatchRows: 50,
	}
	return e
}

func openLog(t *testing.T, dir string) *changelog.Log {
	t.Helper()
	l, err := changelog.Open(t.Context(), changelog.Config{DataDir: dir})
	if err != nil {
		t.Fatalf("open change log: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func (e *testEnv) exec(t *testing.T, sql string) {
	t.Helper()
	if err := e.pg.Exec(t.Context(), "postgres", sql); err != nil {
		t.Fatalf("exec %q: %v", sql, err)
	}
}

func (e *testEnv) setup(t *testing.T) SetupResult {
	t.Helper()
	res, err := Setup(t.Context(), e.opts)
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	return res
}

// start runs capture until the test ends or the returned stop is called.
func (e *testEnv) start(t *testing.T) (stop func()) {
	t.Helper()
	_, stop = e.startCapture(t)
	return stop
}

// startCapture is start, also returning the running capture.
func (e *testEnv) startCapture(t *testing.T) (*Capture, func()) {
	t.Helper()
	c, err := New(e.opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Capture.Run: %v", err)
		}
	}
	t.Cleanup(stop)
	return c, stop
}

// records reads every record of the source's log.
func records(t *testing.T, l *changelog.Log, source string) []change.Record {
	t.Helper()
	var out []change.Record
	err := l.ReadRange(t.Context(), source, 0, 0, func(m *changelog.Message) error {
		b, err := change.DecodeBatch(m.Data)
		if err != nil {
			t.Fatalf("message %d: %v", m.Seq, err)
		}
		out = append(out, b.Records()...)
		return nil
	})
	if err != nil && !errors.Is(err, changelog.ErrStop) {
		t.Fatalf("read log: %v", err)
	}
	return out
}

// waitRecords polls the log until done accepts its records. The deadline
// only bounds a failing test; it measures nothing.
func waitRecords(t *testing.T, l *changelog.Log, source string, done func([]change.Record) bool) []change.Record {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var recs []change.Record
		if _, err := l.Info(t.Context(), source); err == nil {
			recs = records(t, l, source)
			if done(recs) {
				return recs
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("log of %q did not reach the expected state; it holds %d records", source, len(recs))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// hasLast reports whether the records end with a transaction's last record
// for the given table and op.
func countOp(recs []change.Record, table string, op change.Op) int {
	n := 0
	for _, r := range recs {
		if r.Table == table && r.Op == op {
			n++
		}
	}
	return n
}

func queryStrings(t *testing.T, dsn, sql string, args ...any) []string {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(t.Context(), sql, args...)
	if err != nil {
		t.Fatalf("query %q: %v", sql, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("query %q: %v", sql, err)
	}
	return out
}
