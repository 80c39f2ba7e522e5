package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pgtide/pgtide/internal/apply"
	"github.com/pgtide/pgtide/internal/capture"
	"github.com/pgtide/pgtide/internal/change"
	"github.com/pgtide/pgtide/internal/changelog"
	"github.com/pgtide/pgtide/internal/pgtest"
)

// benchCase is one backlog shape.
type benchCase struct {
	name   string
	db     string // source database; targets are native_<db> and pgtide_<db>
	rows   int
	txRows int
}

const tableSQL = `CREATE TABLE bench_rows (id bigint PRIMARY KEY, a int NOT NULL, b text, c timestamptz);
CREATE TABLE bench_done (id int PRIMARY KEY);`

func (c benchCase) nativeDB() string { return "native_" + c.db }
func (c benchCase) pgtideDB() string { return "pgtide_" + c.db }
func (c benchCase) slot() string     { return "native_" + c.db }

func (c benchCase) captureOptions(src *pgtest.Cluster, lg *changelog.Log) capture.Options {
	return capture.Options{
		Source: c.db, DSN: src.DSN(c.db), Slot: "pgtide_" + c.db, Publication: "pgtide_" + c.db,
		Log: lg, HeartbeatInterval: -1,
	}
}

// prepare creates the source database with both slots and publications,
// and the two target databases with the schema; the subscription is
// created disabled.
func (c benchCase) prepare(ctx context.Context, src, dst *pgtest.Cluster) error {
	if err := src.CreateDatabase(ctx, c.db); err != nil {
		return err
	}
	if err := src.Exec(ctx, c.db, tableSQL+`
		CREATE PUBLICATION native_pub FOR TABLE bench_rows, bench_done;`); err != nil {
		return fmt.Errorf("prepare the source: %w", err)
	}
	if err := src.Exec(ctx, c.db, `SELECT pg_create_logical_replication_slot('`+c.slot()+`', 'pgoutput')`); err != nil {
		return fmt.Errorf("create the native slot: %w", err)
	}
	if _, err := capture.Setup(ctx, c.captureOptions(src, nil)); err != nil {
		return fmt.Errorf("pgtide setup: %w", err)
	}
	for _, db := range []string{c.nativeDB(), c.pgtideDB()} {
		if err := dst.CreateDatabase(ctx, db); err != nil {
			return err
		}
		if err := dst.Exec(ctx, db, tableSQL); err != nil {
			return err
		}
	}
	// CREATE SUBSCRIPTION cannot run inside a transaction block, so it
	// goes alone.
	return dst.Exec(ctx, c.nativeDB(), fmt.Sprintf(`CREATE SUBSCRIPTION native_sub CONNECTION '%s'
		PUBLICATION native_pub WITH (copy_data = false, create_slot = false, slot_name = '%s', enabled = false)`,
		src.DSN(c.db), c.slot()))
}

// generate writes the backlog and the marker row.
func (c benchCase) generate(ctx context.Context, src *pgtest.Cluster) error {
	conn, err := pgx.Connect(ctx, src.DSN(c.db))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if c.txRows == 1 {
		for i := range c.rows {
			if _, err := conn.Exec(ctx, `INSERT INTO bench_rows VALUES ($1, $2, md5($3), now())`, i, i%1000, fmt.Sprint(i)); err != nil {
				return err
			}
		}
	} else {
		for lo := 0; lo < c.rows; lo += c.txRows {
			hi := min(lo+c.txRows, c.rows) - 1
			if _, err := conn.Exec(ctx, `INSERT INTO bench_rows SELECT g, g % 1000, md5(g::text), now()
				FROM generate_series($1::bigint, $2::bigint) g`, lo, hi); err != nil {
				return err
			}
		}
	}
	_, err = conn.Exec(ctx, `INSERT INTO bench_done VALUES (1)`)
	return err
}

// captureBacklog runs pgtide capture until the log holds the whole backlog
// (its slot has confirmed the source's current position). Not timed.
func (c benchCase) captureBacklog(ctx context.Context, src *pgtest.Cluster, dir string) (*changelog.Log, error) {
	lg, err := changelog.Open(ctx, changelog.Config{DataDir: dir})
	if err != nil {
		return nil, err
	}
	cp, err := capture.New(c.captureOptions(src, lg))
	if err != nil {
		lg.Close()
		return nil, err
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- cp.Run(cctx) }()
	defer func() {
		cancel()
		<-done
	}()
	conn, err := pgx.Connect(ctx, src.DSN(c.db))
	if err != nil {
		lg.Close()
		return nil, err
	}
	defer conn.Close(context.Background())
	var end string
	if err := conn.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&end); err != nil {
		lg.Close()
		return nil, err
	}
	t0 := time.Now()
	for {
		var ok bool
		err := conn.QueryRow(ctx, `SELECT confirmed_flush_lsn >= $1::pg_lsn FROM pg_replication_slots
			WHERE slot_name = $2`, end, "pgtide_"+c.db).Scan(&ok)
		if err != nil {
			lg.Close()
			return nil, err
		}
		if ok {
			break
		}
		select {
		case err := <-done:
			lg.Close()
			return nil, fmt.Errorf("capture stopped: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	info, err := lg.Info(ctx, c.db)
	if err != nil {
		lg.Close()
		return nil, err
	}
	fmt.Printf("pgtide capture wrote %d messages to the log in %.2fs (not timed)\n", info.Msgs, time.Since(t0).Seconds())
	return lg, nil
}

// nativeDrain enables the subscription and waits for the marker row.
func (c benchCase) nativeDrain(ctx context.Context, dst *pgtest.Cluster) (time.Duration, error) {
	conn, err := pgx.Connect(ctx, dst.DSN(c.nativeDB()))
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	t0 := time.Now()
	if _, err := conn.Exec(ctx, `ALTER SUBSCRIPTION native_sub ENABLE`); err != nil {
		return 0, err
	}
	for {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM bench_done`).Scan(&n); err != nil {
			return 0, err
		}
		if n > 0 {
			d := time.Since(t0)
			_, err := conn.Exec(ctx, `ALTER SUBSCRIPTION native_sub DISABLE`)
			return d, err
		}
		if time.Since(t0) > 10*time.Minute {
			return 0, fmt.Errorf("the subscriber did not catch up in 10 minutes")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// pgtideDrain runs the applier until its progress reaches the log's last
// record.
func (c benchCase) pgtideDrain(ctx context.Context, src, dst *pgtest.Cluster, lg *changelog.Log) (time.Duration, error) {
	m, err := lg.Last(ctx, c.db)
	if err != nil || m == nil {
		return 0, fmt.Errorf("read the log's end: %v", err)
	}
	b, err := change.DecodeBatch(m.Data)
	if err != nil {
		return 0, err
	}
	end := b.LastID()

	metrics := apply.NewMetrics(nil)
	a, err := apply.New(apply.Options{
		Source: c.db, Log: lg, TargetDSN: dst.DSN(c.pgtideDB()),
		Logger:               slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel()})),
		SequenceSyncInterval: -1,
		Metrics:              metrics,
		ReadBatch:            readBatch,
	})
	if err != nil {
		return 0, err
	}
	if profile != nil {
		if err := pprof.StartCPUProfile(profile); err == nil {
			defer pprof.StopCPUProfile()
		}
	}
	actx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	t0 := time.Now()
	go func() { done <- a.Run(actx) }()
	defer func() {
		cancel()
		<-done
	}()
	var ready, first time.Duration
	for {
		if ready == 0 && a.Ready() {
			ready = time.Since(t0)
		}
		if first == 0 && a.Status().Applied.LSN != 0 {
			first = time.Since(t0)
			fmt.Printf("pgtide: ready after %v, first commit after %v\n", ready, first)
		}
		if !a.Status().Applied.Less(end) {
			d := time.Since(t0)
			fmt.Printf("pgtide: %.0f target transactions for %.0f source transactions\n",
				testutil.ToFloat64(metrics.Groups), testutil.ToFloat64(metrics.Transactions))
			return d, nil
		}
		select {
		case err := <-done:
			return 0, fmt.Errorf("applier stopped: %v", err)
		case <-time.After(time.Millisecond):
		}
	}
}

// verify checks both targets hold every row.
func (c benchCase) verify(ctx context.Context, dst *pgtest.Cluster) error {
	for _, db := range []string{c.nativeDB(), c.pgtideDB()} {
		conn, err := pgx.Connect(ctx, dst.DSN(db))
		if err != nil {
			return err
		}
		var n int
		err = conn.QueryRow(ctx, `SELECT count(*) FROM bench_rows`).Scan(&n)
		conn.Close(context.Background())
		if err != nil {
			return err
		}
		if n != c.rows {
			return fmt.Errorf("%s holds %d rows, want %d", db, n, c.rows)
		}
	}
	return nil
}

func logLevel() slog.Level {
	if os.Getenv("PGTIDE_BENCH_DEBUG") != "" {
		return slog.LevelDebug
	}
	return slog.LevelWarn
}
