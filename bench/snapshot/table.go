package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgtide/pgtide/internal/pgtest"
)

// bench holds the state shared by the parts of one run.
type bench struct {
	cfg           config
	pg            *pgtest.Cluster
	serverVersion string
	rows          int64 // rows in the table, counted
	tableBytes    int64 // pg_table_size of the table
	runs          int   // pgtide runs so far, naming their slots
}

// measured is the outcome of one read of the table by either side.
type measured struct {
	seconds float64
	rows    int64
	// clientCPU is the reading process's user plus system CPU time (for
	// pgtide, this process during the snapshot, the embedded log's
	// server included); serverCPU the cluster's (see serverCPU).
	clientCPU, serverCPU float64
}

func (b *bench) mb() float64 { return float64(b.tableBytes) / 1e6 }

func (b *bench) rate(m measured) float64 { return float64(b.rows) / m.seconds }

func (b *bench) mbRate(m measured) float64 { return b.mb() / m.seconds }

// report prints one line of figures for a side.
func (b *bench) report(name string, m measured, extra string) {
	perM := 1e6 / float64(b.rows)
	fmt.Printf("%-32s %6.2f s = %8.0f rows/s, %6.1f MB/s; CPU s per 1M rows: client %.2f, server %.2f%s\n",
		name, m.seconds, b.rate(m), b.mbRate(m), m.clientCPU*perM, m.serverCPU*perM, extra)
}

// createSQL makes the table without its key: the key is built after the
// load, which is faster than maintaining it row by row.
const createSQL = `CREATE TABLE bench (id bigint NOT NULL, a int, b text, c timestamptz, d numeric)`

// insertSQL inserts rows $1 to $2. A row is about 110 bytes on disk: a
// 24-byte tuple header, 8 + 4 bytes of integers, 49 characters of text,
// an 8-byte timestamp and a short numeric, plus its 4-byte line pointer.
const insertSQL = `INSERT INTO bench (id, a, b, c, d)
SELECT g, (g % 1000003)::int, md5(g::text) || left(md5((g + 1)::text), 16),
	timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second', (g % 1000000) * 0.01
FROM generate_series($1::bigint, $2::bigint) AS g`

// load creates and fills the table with two connections (one per core of
// the intended machine), adds its primary key, then vacuums, analyzes and
// checkpoints it, so that neither side sets hint bits or meets a
// checkpoint.
func (b *bench) load(ctx context.Context) error {
	start := time.Now()
	if err := b.pg.Exec(ctx, "postgres", createSQL); err != nil {
		return fmt.Errorf("create table: %w", err)
	}

	const parts = 2
	per := (b.cfg.rows + parts - 1) / parts
	var wg sync.WaitGroup
	errs := make([]error, parts)
	for i := range parts {
		lo, hi := 1+i*per, min((i+1)*per, b.cfg.rows)
		if lo > hi {
			break
		}
		wg.Go(func() { errs[i] = b.insert(ctx, lo, hi) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	inserted := time.Since(start)

	conn, err := pgx.Connect(ctx, b.pg.DSN("postgres"))
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, sql := range []string{
		"ALTER TABLE bench ADD PRIMARY KEY (id)",
		"VACUUM (FREEZE, ANALYZE) bench",
		"CHECKPOINT",
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
	}

	err = conn.QueryRow(ctx, `SELECT count(*), pg_table_size('bench'),
			'PostgreSQL ' || current_setting('server_version') FROM bench`).
		Scan(&b.rows, &b.tableBytes, &b.serverVersion)
	if err != nil {
		return fmt.Errorf("measure table: %w", err)
	}
	fmt.Printf("loaded %d rows in %.1f s (inserts %.1f s; key, vacuum, analyze, checkpoint after)\n",
		b.cfg.rows, time.Since(start).Seconds(), inserted.Seconds())
	return nil
}

// insert inserts rows lo to hi on a connection of its own.
func (b *bench) insert(ctx context.Context, lo, hi int) error {
	conn, err := pgx.Connect(ctx, b.pg.DSN("postgres"))
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	if _, err := conn.Exec(ctx, insertSQL, lo, hi); err != nil {
		return fmt.Errorf("insert rows %d to %d: %w", lo, hi, err)
	}
	return nil
}
