package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgtide/pgtide/internal/capture"
	"github.com/pgtide/pgtide/internal/change"
	"github.com/pgtide/pgtide/internal/pgtest"
)

// bench holds the state shared by the parts of one run.
type bench struct {
	cfg           config
	pg            *pgtest.Cluster
	serverVersion string
	// logDirs are the change-log directories of the capture children,
	// removed at the end unless -keep.
	logDirs []string
}

// txEnd locates the final transaction of a workload in the WAL.
type txEnd struct {
	// commit is the start of its commit record: the commit LSN pgoutput
	// announces in Begin and pgtide stores in every batch.
	commit change.LSN
	// end is the end of the commit record, where pg_recvlogical stops
	// (--endpos).
	end change.LSN
}

// createSQL makes the benchmark table; rows are about 60 bytes on disk
// (8-byte id, 33-byte text, 4-byte int, 8-byte timestamptz, alignment).
const createSQL = `CREATE TABLE bench (id bigint PRIMARY KEY, v text, n int, t timestamptz);
CREATE EXTENSION pg_walinspect`

// insertSQL inserts rows $1 to $2; each becomes one WAL insert record and
// one pgoutput Insert message.
const insertSQL = `INSERT INTO bench (id, v, n, t)
SELECT g, md5(g::text), (g % 100000)::int, now() FROM generate_series($1::bigint, $2::bigint) AS g`

// prepare creates the table, the publications and the first pgtide slot.
func (b *bench) prepare(ctx context.Context) error {
	if err := b.pg.Exec(ctx, "postgres", createSQL); err != nil {
		return fmt.Errorf("create table: %w", err)
	}

	opts := setupOptions(b.pg.DSN("postgres"), "pgtide_1")
	if _, err := capture.Setup(ctx, opts); err != nil {
		return fmt.Errorf("capture setup: %w", err)
	}

	conn, err := pgx.Connect(ctx, b.pg.DSN("postgres"))
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	var v string
	err = conn.QueryRow(ctx, `SELECT 'PostgreSQL ' || current_setting('server_version')`).Scan(&v)
	if err != nil {
		return fmt.Errorf("read server version: %w", err)
	}
	b.serverVersion = v
	return nil
}

// createSlots creates pgoutput slots. Slots made before a workload decode
// exactly its WAL.
func (b *bench) createSlots(ctx context.Context, names ...string) error {
	for _, name := range names {
		sql := fmt.Sprintf(`SELECT pg_create_logical_replication_slot('%s', 'pgoutput')`, name)
		if err := b.pg.Exec(ctx, "postgres", sql); err != nil {
			return fmt.Errorf("create slot %s: %w", name, err)
		}
	}
	return nil
}

// dropSlots drops slots, releasing the WAL they hold.
func (b *bench) dropSlots(ctx context.Context, names ...string) error {
	for _, name := range names {
		sql := fmt.Sprintf(`SELECT pg_drop_replication_slot('%s')`, name)
		if err := b.pg.Exec(ctx, "postgres", sql); err != nil {
			return fmt.Errorf("drop slot %s: %w", name, err)
		}
	}
	return nil
}

// generate inserts rows ids first..first+rows-1 in transactions of txRows
// rows, then checkpoints so that the drains do not share the machine with
// a checkpoint. It returns where the last transaction ends.
func (b *bench) generate(ctx context.Context, first, rows, txRows int) (txEnd, error) {
	conn, err := pgx.Connect(ctx, b.pg.DSN("postgres"))
	if err != nil {
		return txEnd{}, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	start := time.Now()
	lo := first
	for ; lo+txRows < first+rows; lo += txRows {
		if _, err := conn.Exec(ctx, insertSQL, lo, lo+txRows-1); err != nil {
			return txEnd{}, fmt.Errorf("insert rows %d to %d: %w", lo, lo+txRows-1, err)
		}
	}
	end, err := lastTx(ctx, conn, lo, first+rows-1)
	if err != nil {
		return txEnd{}, err
	}

	if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
		return txEnd{}, fmt.Errorf("checkpoint: %w", err)
	}
	fmt.Printf("generated %d rows in %d transactions in %.1f s; last commit at %s, ends at %s\n",
		rows, rows/txRows, time.Since(start).Seconds(), end.commit, end.end)
	return end, nil
}

// lastTx runs the final transaction of a workload and finds its commit
// record with pg_walinspect: between the WAL position after its inserts
// and the flush position after its synchronous commit, the commit record
// of its xid.
func lastTx(ctx context.Context, conn *pgx.Conn, lo, hi int) (txEnd, error) {
	var end txEnd
	var xid, after string
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		// Flush at commit, so the commit record is readable at once.
		if _, err := tx.Exec(ctx, "SET LOCAL synchronous_commit = on"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, insertSQL, lo, hi); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT pg_current_xact_id()::text, pg_current_wal_insert_lsn()::text`).
			Scan(&xid, &after)
	})
	if err != nil {
		return end, fmt.Errorf("insert rows %d to %d: %w", lo, hi, err)
	}

	var commit, stop string
	err = conn.QueryRow(ctx, `SELECT start_lsn::text, end_lsn::text
		FROM pg_get_wal_records_info($1::pg_lsn, pg_current_wal_flush_lsn())
		WHERE resource_manager = 'Transaction' AND record_type = 'COMMIT'
			AND xid::text::bigint = $2::bigint % 4294967296`, after, xid).Scan(&commit, &stop)
	if err != nil {
		return end, fmt.Errorf("find commit record of xid %s after %s: %w", xid, after, err)
	}
	if end.commit, err = change.ParseLSN(commit); err != nil {
		return end, err
	}
	if end.end, err = change.ParseLSN(stop); err != nil {
		return end, err
	}
	return end, nil
}

// newLogDir makes an empty directory for one child's change log.
func (b *bench) newLogDir() (string, error) {
	dir, err := os.MkdirTemp("", "pgtide-bench-log-")
	if err != nil {
		return "", fmt.Errorf("make log directory: %w", err)
	}
	b.logDirs = append(b.logDirs, dir)
	return dir, nil
}

func (b *bench) removeLogDirs() {
	if b.cfg.keep {
		for _, d := range b.logDirs {
			fmt.Fprintln(os.Stderr, "kept: change log", d)
		}
		return
	}
	for _, d := range b.logDirs {
		os.RemoveAll(d)
	}
}

func numCPU() int { return runtime.NumCPU() }
