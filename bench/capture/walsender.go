package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgtide/pgtide/bench/internal/benchkit"
)

// senderInterval is how often the walsender's CPU time is sampled.
const senderInterval = 50 * time.Millisecond

// senderCPU samples the CPU time of the walsender serving slot until stop
// is called, which returns the last sample in seconds. The walsender exits
// with its connection, so the figure can miss up to one interval of work.
// It tells whether a drain was bound by the server or by its client.
func (b *bench) senderCPU(ctx context.Context, slot string) (stop func() float64, err error) {
	conn, err := pgx.Connect(ctx, b.pg.DSN("postgres"))
	if err != nil {
		return nil, fmt.Errorf("connect walsender sampler: %w", err)
	}

	sctx, cancel := context.WithCancel(ctx)
	done := make(chan float64, 1)
	go func() {
		defer conn.Close(context.WithoutCancel(ctx))
		t := time.NewTicker(senderInterval)
		defer t.Stop()
		last := 0.0
		for {
			select {
			case <-sctx.Done():
				done <- last
				return
			case <-t.C:
			}
			var pid int
			err := conn.QueryRow(sctx, `SELECT coalesce(active_pid, 0) FROM pg_replication_slots
				WHERE slot_name = $1`, slot).Scan(&pid)
			if err != nil || pid == 0 {
				continue
			}
			if st, ok := benchkit.ReadProcStat(pid); ok {
				cpu := st.CPU()
				last = max(last, cpu)
			}
		}
	}()
	return func() float64 {
		cancel()
		return <-done
	}, nil
}
