package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pgtide/pgtide/bench/internal/benchkit"
)

// serverCPU returns the CPU seconds the cluster's processes have used so
// far: the postmaster's own, its live children's (backends, parallel
// workers, background processes) and, through the postmaster's cutime and
// cstime, those of children that exited. The difference of two readings
// is the server's work in between, parallel query workers included.
func (b *bench) serverCPU() (float64, error) {
	data, err := os.ReadFile(filepath.Join(b.pg.DataDir(), "postmaster.pid"))
	if err != nil {
		return 0, fmt.Errorf("read postmaster.pid: %w", err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	pm, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		return 0, fmt.Errorf("postmaster.pid: %w", err)
	}
	f, ok := benchkit.ReadProcStat(pm)
	if !ok {
		return 0, fmt.Errorf("read /proc/%d/stat of the postmaster", pm)
	}
	total := f.UTime + f.STime + f.CUTime + f.CSTime
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("list processes: %w", err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if c, ok := benchkit.ReadProcStat(pid); ok && c.PPID == pm {
			total += c.CPU()
		}
	}
	return total, nil
}

// cpuTime returns this process's user plus system CPU seconds so far.
func cpuTime() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func numCPU() int { return runtime.NumCPU() }
