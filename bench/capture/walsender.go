package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// clockTicks is the unit of utime and stime in /proc/<pid>/stat (USER_HZ,
// 100 on Linux).
const clockTicks = 100

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
			if cpu, ok := procCPU(pid); ok {
				last = max(last, cpu)
			}
		}
	}()
	return func() float64 {
		cancel()
		return <-done
	}, nil
}

// procCPU returns the user plus system CPU seconds of pid.
func procCPU(pid int) (float64, bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// Fields after the parenthesised command name: state is field 3 of
	// the full line, utime 14 and stime 15.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseFloat(f[11], 64)
	stime, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return (utime + stime) / clockTicks, true
}
