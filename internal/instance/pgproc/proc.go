package pgproc

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

// PostmasterPID returns the pid recorded in dataDir/postmaster.pid, 0 when
// the file is missing or malformed.
func PostmasterPID(dataDir string) int {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}

	first, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(first))

	return pid
}

// Alive reports whether pid is a running process (zombies count as gone).
func Alive(pid int) bool {
	if pid <= 0 {
		return false
	}

	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}

	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		state := s[i+2]
		return state != 'Z' && state != 'X'
	}

	return true
}

// Postmasters lists running postgres processes whose command line holds
// a -D data directory under dir. They are servers some earlier process
// started there.
func Postmasters(dir string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}

	dir = filepath.Clean(dir) + string(os.PathSeparator)

	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}

		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}

		args := strings.Split(string(b), "\x00")
		if len(args) < 3 || filepath.Base(args[0]) != "postgres" {
			continue
		}

		for i := 0; i+1 < len(args); i++ {
			if args[i] == "-D" && strings.HasPrefix(filepath.Clean(args[i+1])+"/", dir) && Alive(pid) {
				pids = append(pids, pid)
				break
			}
		}
	}

	return pids
}

// Kill ends a postmaster that no live process owns: SIGQUIT first (an
// immediate shutdown, in which it ends its children), then SIGKILL for
// its process group after 3 s. It returns an error when the process is
// still alive 5 s after that.
func Kill(pid int) error {
	if !Alive(pid) {
		return nil
	}

	if err := syscall.Kill(pid, syscall.SIGQUIT); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("pgproc: signal postmaster %d: %w", pid, err)
	}

	if waitGone(pid, 3*time.Second) {
		return nil
	}

	killGroup(pid)
	if !waitGone(pid, 5*time.Second) {
		return fmt.Errorf("pgproc: postmaster %d still running after SIGKILL", pid)
	}

	return nil
}

func waitGone(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for Alive(pid) {
		if time.Now().After(deadline) {
			return false
		}

		time.Sleep(10 * time.Millisecond)
	}

	return true
}
