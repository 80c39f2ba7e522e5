package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// reference reads the whole table with COPY TO STDOUT in text format, as
// pg_dump does, over TCP, and discards the data. Its time runs from
// connecting to the end of the COPY.
func (b *bench) reference(ctx context.Context, n int) (measured, error) {
	server0, err := b.serverCPU()
	if err != nil {
		return measured{}, err
	}
	cpu0 := cpuTime()
	start := time.Now()
	conn, err := pgconn.Connect(ctx, b.pg.DSN("postgres"))
	if err != nil {
		return measured{}, fmt.Errorf("reference: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	var count countingWriter
	tag, err := conn.CopyTo(ctx, &count, "COPY bench TO STDOUT")
	if err != nil {
		return measured{}, fmt.Errorf("reference: copy: %w", err)
	}
	m := measured{seconds: time.Since(start).Seconds(), rows: tag.RowsAffected(), clientCPU: cpuTime() - cpu0}
	server1, err := b.serverCPU()
	if err != nil {
		return m, err
	}
	m.serverCPU = server1 - server0
	if m.rows != b.rows {
		return m, fmt.Errorf("reference: COPY sent %d rows, want %d", m.rows, b.rows)
	}
	b.report(fmt.Sprintf("COPY run %d", n), m, fmt.Sprintf("; %.0f MB of text", float64(count)/1e6))
	return m, nil
}

// countingWriter discards what it is given and counts the bytes.
type countingWriter int64

func (w *countingWriter) Write(p []byte) (int, error) {
	*w += countingWriter(len(p))
	return len(p), nil
}

var _ io.Writer = (*countingWriter)(nil)

// pgDump times pg_dump writing the table's data, in plain format, to
// /dev/null over TCP: the tool the reference stands for, start-up and
// catalog reads included.
func (b *bench) pgDump(ctx context.Context) error {
	server0, err := b.serverCPU()
	if err != nil {
		return err
	}
	cmd := b.pg.Command(ctx, "pg_dump",
		"-h", "127.0.0.1", "-p", strconv.Itoa(b.pg.Port()), "-U", "postgres", "-d", "postgres",
		"--data-only", "-t", "bench", "-f", "/dev/null")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("pg_dump: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	m := measured{seconds: time.Since(start).Seconds(), rows: b.rows,
		clientCPU: (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()}
	server1, err := b.serverCPU()
	if err != nil {
		return err
	}
	m.serverCPU = server1 - server0
	b.report("pg_dump", m, "")
	return nil
}
