package pgtest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// postmasterPID reads the postmaster's process id from the first line of
// postmaster.pid in dataDir. The error wraps fs.ErrNotExist when the file
// is missing, i.e. the server is not running.
func postmasterPID(dataDir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0, fmt.Errorf("pgtest: read postmaster.pid: %w", err)
	}

	first, _, _ := strings.Cut(string(b), "\n")

	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pgtest: bad pid %q in postmaster.pid", first)
	}

	return pid, nil
}

// procStat returns the state letter and parent pid of pid from
// /proc/<pid>/stat, and ok=false when that cannot be read.
func procStat(pid int) (state byte, ppid int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}

	// The command name is in parentheses and may hold spaces or
	// parentheses itself; the fields we want follow the last ')'.
	s := string(b)

	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, false
	}

	fields := strings.Fields(s[i+1:])
	if len(fields) < 2 || len(fields[0]) != 1 {
		return 0, 0, false
	}

	ppid, err = strconv.Atoi(fields[1])
	if err != nil {
		return 0, 0, false
	}

	return fields[0][0], ppid, true
}

// processAlive reports whether pid names a running process. Zombies count
// as gone: they hold no resources but a process table slot, and a parent
// that never reaps (a container's init) keeps them around indefinitely.
func processAlive(pid int) bool {
	if state, _, ok := procStat(pid); ok {
		return state != 'Z' && state != 'X'
	}

	if _, err := os.Stat("/proc/self/stat"); err == nil {
		// /proc works, so the missing entry means the process is gone.
		return false
	}

	err := syscall.Kill(pid, 0)

	return err == nil || errors.Is(err, syscall.EPERM)
}

// childPIDs lists the live processes whose parent is pid. It returns nil
// where /proc is not available.
func childPIDs(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}

	var children []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}

		state, ppid, ok := procStat(child)
		if ok && ppid == pid && state != 'Z' && state != 'X' {
			children = append(children, child)
		}
	}

	return children
}

// killPostmaster ends a postmaster that pg_ctl could not stop, together
// with its children. SIGQUIT first asks for an immediate shutdown, in
// which the postmaster ends its children itself; SIGKILL follows for the
// postmaster and every child still alive when that does not work. It
// takes no context on purpose: it runs when the caller's context may
// already be over, and leaving a server behind is worse than waiting a
// few seconds.
func killPostmaster(pid int) error {
	if !processAlive(pid) {
		return nil
	}

	children := childPIDs(pid)

	if err := syscall.Kill(pid, syscall.SIGQUIT); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("pgtest: send SIGQUIT to postmaster %d: %w", pid, err)
	}

	if waitGone(5*time.Second, append([]int{pid}, children...)) {
		return nil
	}

	all := append([]int{pid}, children...)
	all = append(all, childPIDs(pid)...)
	for _, p := range all {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}

	if !waitGone(5*time.Second, all) {
		return fmt.Errorf("pgtest: postmaster %d or its children still running after SIGKILL", pid)
	}

	return nil
}

// waitGone polls until none of pids is alive or the timeout passes, and
// reports whether all of them are gone.
func waitGone(timeout time.Duration, pids []int) bool {
	deadline := time.Now().Add(timeout)

	for {
		alive := false
		for _, p := range pids {
			if processAlive(p) {
				alive = true
				break
			}
		}

		if !alive {
			return true
		}

		if time.Now().After(deadline) {
			return false
		}

		time.Sleep(20 * time.Millisecond)
	}
}

// startupNames are the programs that take part in starting a server:
// pg_ctl forks, its child runs the shell, the shell execs postgres.
var startupNames = map[string]bool{
	"pg_ctl":   true,
	"sh":       true,
	"dash":     true,
	"bash":     true,
	"postgres": true,
}

// startupProcesses lists live processes, other than this one, that are
// running one of startupNames with dataDir in their command line. It
// returns nil where /proc is not available.
func startupProcesses(dataDir string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}

	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() || !startupNames[processName(pid)] {
			continue
		}

		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), dataDir) && processAlive(pid) {
			pids = append(pids, pid)
		}
	}

	return pids
}

// processName returns the command name of pid (/proc/<pid>/comm), "" when
// it cannot be read.
func processName(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return ""
	}

	return strings.TrimSpace(string(b))
}
