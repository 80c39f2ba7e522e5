// Package benchkit holds what pgtide's side-by-side benchmarks share: a
// load-test cluster's lifecycle and readings of the machine (/proc).
package benchkit

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pgtide/pgtide/internal/pgtest"
)

// clockTicks is the unit of the times in /proc/<pid>/stat (USER_HZ, 100
// on Linux).
const clockTicks = 100

// ProcStat is the CPU part of /proc/<pid>/stat, times in seconds.
type ProcStat struct {
	PPID                         int
	UTime, STime, CUTime, CSTime float64
}

// CPU returns the process's own user plus system seconds.
func (s ProcStat) CPU() float64 { return s.UTime + s.STime }

// ReadProcStat reads /proc/<pid>/stat; false when the process is gone or
// the file is not what Linux writes.
func ReadProcStat(pid int) (ProcStat, bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ProcStat{}, false
	}
	// Fields after the parenthesised command name: state is field 3 of
	// the full line, ppid 4, utime 14, stime 15, cutime 16, cstime 17.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ProcStat{}, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 15 {
		return ProcStat{}, false
	}
	var st ProcStat
	var errs [5]error
	st.PPID, errs[0] = strconv.Atoi(f[1])
	st.UTime, errs[1] = strconv.ParseFloat(f[11], 64)
	st.STime, errs[2] = strconv.ParseFloat(f[12], 64)
	st.CUTime, errs[3] = strconv.ParseFloat(f[13], 64)
	st.CSTime, errs[4] = strconv.ParseFloat(f[14], 64)
	for _, err := range errs {
		if err != nil {
			return ProcStat{}, false
		}
	}
	st.UTime, st.STime = st.UTime/clockTicks, st.STime/clockTicks
	st.CUTime, st.CSTime = st.CUTime/clockTicks, st.CSTime/clockTicks
	return st, true
}

// LoadAvg returns the 1, 5 and 15 minute load averages, "?" if unknown.
func LoadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// StartCluster starts a throwaway cluster with settings for a benchmark.
// The returned stop removes it, or with keep leaves it running and says
// how to stop it.
func StartCluster(ctx context.Context, settings map[string]string, keep bool) (*pgtest.Cluster, func() error, error) {
	pg, err := pgtest.StartCluster(ctx, pgtest.Options{Settings: settings})
	if err != nil {
		return nil, nil, fmt.Errorf("start cluster: %w", err)
	}
	stop := func() error {
		if keep && ctx.Err() == nil {
			fmt.Fprintf(os.Stderr, "kept: cluster %s (dsn %s); stop it with "+
				"%s/pg_ctl -D %s stop, as the OS user owning it\n",
				pg.Dir(), pg.DSN("postgres"), pg.BinDir(), pg.DataDir())
			return nil
		}
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := pg.Stop(sctx); err != nil {
			return fmt.Errorf("stop cluster: %w", err)
		}
		return nil
	}
	return pg, stop, nil
}

// Main runs a benchmark until it returns or SIGINT/SIGTERM arrives, and
// exits: 1 on an error, 130 when interrupted (its clusters are stopped by
// then), 0 otherwise. name prefixes the messages, e.g. "bench/capture".
func Main(name string, run func(ctx context.Context) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	interrupted := ctx.Err() != nil
	stop()
	switch {
	case err == nil:
		return
	case interrupted:
		fmt.Fprintln(os.Stderr, name+": interrupted; cluster stopped")
		os.Exit(130)
	default:
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}
