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
)

// clockTicks is the unit of utime and stime in /proc/<pid>/stat (USER_HZ,
// 100 on Linux).
const clockTicks = 100

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
	f, ok := procStat(pm)
	if !ok {
		return 0, fmt.Errorf("read /proc/%d/stat of the postmaster", pm)
	}
	total := f.utime + f.stime + f.cutime + f.cstime
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("list processes: %w", err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if c, ok := procStat(pid); ok && c.ppid == pm {
			total += c.utime + c.stime
		}
	}
	return total / clockTicks, nil
}

// stat holds the fields of /proc/<pid>/stat this program uses, times in
// clock ticks.
type stat struct {
	ppid                         int
	utime, stime, cutime, cstime float64
}

// procStat reads /proc/<pid>/stat.
func procStat(pid int) (stat, bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return stat{}, false
	}
	// Fields after the parenthesised command name: state is field 3 of
	// the full line, ppid 4, utime 14, stime 15, cutime 16, cstime 17.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return stat{}, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 15 {
		return stat{}, false
	}
	var st stat
	var errs [5]error
	st.ppid, errs[0] = strconv.Atoi(f[1])
	st.utime, errs[1] = strconv.ParseFloat(f[11], 64)
	st.stime, errs[2] = strconv.ParseFloat(f[12], 64)
	st.cutime, errs[3] = strconv.ParseFloat(f[13], 64)
	st.cstime, errs[4] = strconv.ParseFloat(f[14], 64)
	for _, err := range errs {
		if err != nil {
			return stat{}, false
		}
	}
	return st, true
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

// loadAvg returns the 1, 5 and 15 minute load averages, "?" if unknown.
func loadAvg() string {
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
