package apply

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgtide/pgtide/internal/capture"
	"github.com/pgtide/pgtide/internal/change"
	"github.com/pgtide/pgtide/internal/changelog"
	"github.com/pgtide/pgtide/internal/pgtest"
)

// testEnv is a real source and target (two databases of one throwaway
// cluster, to keep tests fast), real capture into a real embedded log,
// and the applier under test.
type testEnv struct {
	pg     *pgtest.Cluster
	src    string // source DSN
	dst    string // target DSN
	log    *changelog.Log
	copts  capture.Options
	logDir string
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	pg := pgtest.Start(t)
	for _, db := range []string{"src", "dst"} {
		if err := pg.CreateDatabase(t.Context(), db); err != nil {
			t.Fatalf("create database %s: %v", db, err)
		}
	}
	e := &testEnv{pg: pg, src: pg.DSN("src"), dst: pg.DSN("dst"), logDir: t.TempDir()}
	l, err := changelog.Open(t.Context(), changelog.Config{DataDir: e.logDir, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatalf("open change log: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	e.log = l
	e.copts = capture.Options{
		Source: "src", DSN: e.src, Slot: "pgtide_src", Publication: "pgtide_src", DDL: true,
		Keyless: "full", Log: l, Schemas: []string{"public", "other"}, StatusInterval: 100 * time.Millisecond, HeartbeatInterval: time.Second,
		BatchRows: 50,
	}
	return e
}

func (e *testEnv) execSrc(t *testing.T, sql string) {
	t.Helper()
	if err := e.pg.Exec(t.Context(), "src", sql); err != nil {
		t.Fatalf("source: exec %q: %v", truncate(sql, 200), err)
	}
}

func (e *testEnv) execDst(t *testing.T, sql string) {
	t.Helper()
	if err := e.pg.Exec(t.Context(), "dst", sql); err != nil {
		t.Fatalf("target: exec %q: %v", truncate(sql, 200), err)
	}
}

// startCapture sets up the source and runs capture until the test ends.
func (e *testEnv) startCapture(t *testing.T) {
	t.Helper()
	if _, err := capture.Setup(t.Context(), e.copts); err != nil {
		t.Fatalf("capture.Setup: %v", err)
	}
	c, err := capture.New(e.copts)
	if err != nil {
		t.Fatalf("capture.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("capture.Run: %v", err)
		}
	})
}

func (e *testEnv) applyOptions() Options {
	return Options{
		Source: "src", Log: e.log, TargetDSN: e.dst, SourceDSN: e.src,
		Logger:        testLogger(),
		GroupMaxDelay: 50 * time.Millisecond,
	}
}

func testLogger() *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("PGTIDE_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// runningApplier is an applier running in a goroutine.
type runningApplier struct {
	a      *Applier
	cancel context.CancelFunc
	// done is closed when Run returned; err is then what it returned.
	done chan struct{}
	err  error
}

func (e *testEnv) startApply(t *testing.T, opts Options) *runningApplier {
	t.Helper()
	a, err := New(opts)
	if err != nil {
		t.Fatalf("apply.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningApplier{a: a, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = a.Run(ctx)
	}()
	t.Cleanup(func() { r.stop() })
	return r
}

// stop cancels the applier and returns what Run returned.
func (r *runningApplier) stop() error {
	r.cancel()
	<-r.done
	return r.err
}

// sourceEnd returns the source's current WAL position.
func (e *testEnv) sourceEnd(t *testing.T) string {
	t.Helper()
	return queryStrings(t, e.src, `SELECT pg_current_wal_insert_lsn()::text`)[0]
}

// waitApplied waits until capture confirmed the source's current position
// and the target's progress reached the log's last record. The deadline
// only bounds a failing test; it measures nothing.
func (e *testEnv) waitApplied(t *testing.T, r *runningApplier) {
	t.Helper()
	end := e.sourceEnd(t)
	deadline := time.Now().Add(90 * time.Second)
	for {
		if r != nil {
			select {
			case <-r.done:
				t.Fatalf("applier stopped: %v", r.err)
			default:
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("target did not catch up with the source (log end %s)", e.logEnd(t))
		}
		ok := queryStrings(t, e.src, `SELECT (confirmed_flush_lsn >= $1::pg_lsn)::text
			FROM pg_replication_slots WHERE slot_name = 'pgtide_src'`, end)
		if _, err := e.log.Info(t.Context(), "src"); err != nil {
			ok = nil // capture has not created the stream yet
		}
		if len(ok) == 1 && ok[0] == "true" {
			last := e.logEnd(t)
			var got []string
			if queryStrings(t, e.dst, `SELECT (to_regclass('pgtide.apply_progress') IS NOT NULL)::text`)[0] == "true" {
				got = queryStrings(t, e.dst, `SELECT lsn::text || ':' || pos::text FROM pgtide.apply_progress
					WHERE source = 'src'`)
			}
			if last == (change.ID{}) {
				return
			}
			if len(got) == 1 {
				id, err := change.ParseID(got[0])
				if err != nil {
					t.Fatal(err)
				}
				if !id.Less(last) {
					return
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *testEnv) logEnd(t *testing.T) change.ID {
	t.Helper()
	m, err := e.log.Last(t.Context(), "src")
	if err != nil {
		t.Fatalf("read the log's end: %v", err)
	}
	if m == nil {
		return change.ID{}
	}
	b, err := change.DecodeBatch(m.Data)
	if err != nil {
		t.Fatal(err)
	}
	return b.LastID()
}

// compareDatabases checks that every table of the source's user schemas
// holds the same columns and rows in the target.
func (e *testEnv) compareDatabases(t *testing.T) {
	t.Helper()
	const tablesSQL = `SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgtide')
		  AND n.nspname NOT LIKE 'pg\_toast%' ORDER BY 1`
	srcTables := queryStrings(t, e.src, tablesSQL)
	dstTables := queryStrings(t, e.dst, tablesSQL)
	if strings.Join(srcTables, ",") != strings.Join(dstTables, ",") {
		t.Errorf("tables differ:\nsource %v\ntarget %v", srcTables, dstTables)
	}
	for _, tbl := range srcTables {
		const colsSQL = `SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum)
			FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped`
		sc, dc := queryStrings(t, e.src, colsSQL, tbl), queryStrings(t, e.dst, colsSQL, tbl)
		if fmt.Sprint(sc) != fmt.Sprint(dc) {
			t.Errorf("columns of %s differ:\nsource %v\ntarget %v", tbl, sc, dc)
			continue
		}
		q := fmt.Sprintf(`SELECT count(*)::text || ' ' || coalesce(md5(string_agg(r::text, E'\n' ORDER BY r::text)), '')
			FROM %s r`, tbl)
		s, d := queryStrings(t, e.src, q)[0], queryStrings(t, e.dst, q)[0]
		if s != d {
			t.Errorf("rows of %s differ: source %s, target %s", tbl, s, d)
			if os.Getenv("PGTIDE_TEST_DEBUG") != "" {
				q := fmt.Sprintf(`SELECT r::text FROM %s r ORDER BY 1`, tbl)
				t.Logf("source:\n%s\ntarget:\n%s", strings.Join(queryStrings(t, e.src, q), "\n"),
					strings.Join(queryStrings(t, e.dst, q), "\n"))
			}
		}
	}
}

var compareSettings = map[string]string{"TimeZone": "UTC", "DateStyle": "ISO, YMD",
	"extra_float_digits": "3", "IntervalStyle": "postgres", "bytea_output": "hex"}

func queryStrings(t *testing.T, dsn, sql string, args ...any) []string {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range compareSettings {
		cfg.RuntimeParams[k] = v
	}
	conn, err := pgx.ConnectConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(t.Context(), sql, args...)
	if err != nil {
		t.Fatalf("query %q: %v", truncate(sql, 200), err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("query %q: %v", truncate(sql, 200), err)
	}
	return out
}
