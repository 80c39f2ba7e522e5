package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	// portAttempts bounds the starts tried with a fresh free port when the
	// previous one was taken in the meantime.
	portAttempts = 5

	// logTailLines is how much of the server log a start error carries.
	logTailLines = 20

	// pgCtlTimeout is pg_ctl's -t: seconds to wait for start or stop.
	pgCtlTimeout = "60"

	// waitDelay bounds how long a server program's output pipes may stay
	// open after it exits or is killed.
	waitDelay = 5 * time.Second
)

// serverCmd builds a command for a program in BinDir that runs as the
// server user in the cluster directory, without the caller's libpq
// environment. ownGroup puts it in a new process group.
func (c *Cluster) serverCmd(
	ctx context.Context,
	ownGroup bool,
	name string,
	args ...string,
) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, name), args...)
	cmd.Dir = c.dir
	cmd.Env = c.user.env()
	cmd.WaitDelay = waitDelay
	c.user.apply(cmd, ownGroup)

	return cmd
}

// run runs a server program to completion. The error names the program
// and carries its output; callers add the "pgtest:" prefix.
func (c *Cluster) run(ctx context.Context, ownGroup bool, name string, args ...string) error {
	cmd := c.serverCmd(ctx, ownGroup, name, args...)

	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out

	c.logger.Debug("run server program", "cmd", cmd.String())

	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(out.String())
		if msg == "" {
			return fmt.Errorf("%s: %w", name, err)
		}

		return fmt.Errorf("%s: %w: %s", name, err, msg)
	}

	return nil
}

// initdb creates the data directory with the superuser postgres and trust
// authentication. It asks for the C.UTF-8 locale and falls back to
// --no-locale where the C library lacks it.
func (c *Cluster) initdb(ctx context.Context) error {
	base := []string{"-D", c.dataDir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--nosync"}

	err := c.run(ctx, false, "initdb", append(base, "--locale=C.UTF-8")...)
	if err == nil {
		return nil
	}

	if ctx.Err() != nil {
		return fmt.Errorf("pgtest: %w", err)
	}

	c.logger.Debug("initdb with C.UTF-8 failed, retrying with --no-locale", "err", err)

	// initdb removes a data directory it created when it fails; make sure.
	if rmErr := os.RemoveAll(c.dataDir); rmErr != nil {
		return fmt.Errorf("pgtest: remove data directory after failed initdb: %w", rmErr)
	}

	if err2 := c.run(ctx, false, "initdb", append(base, "--no-locale")...); err2 != nil {
		return fmt.Errorf("pgtest: %w", errors.Join(err, err2))
	}

	return nil
}

// configureAndStart writes the settings into postgresql.conf and starts
// the server. Unless the caller pinned the port, it retries with a new
// free port when the chosen one was taken between picking and binding.
func (c *Cluster) configureAndStart(
	ctx context.Context,
	overrides map[string]string,
	pickPort portPicker,
) error {
	confPath := filepath.Join(c.dataDir, "postgresql.conf")

	base, err := os.ReadFile(confPath)
	if err != nil {
		return fmt.Errorf("pgtest: read postgresql.conf: %w", err)
	}

	fixedPort := 0
	if p, ok := overrides["port"]; ok {
		fixedPort, err = strconv.Atoi(strings.TrimSpace(p))
		if err != nil || fixedPort <= 0 || fixedPort > 65535 {
			return fmt.Errorf("pgtest: invalid port setting %q", p)
		}
	}

	if dirs, ok := overrides["unix_socket_directories"]; ok {
		c.socketDir = firstSocketDir(dirs)
	}

	var errs []error
	for attempt := 1; attempt <= portAttempts; attempt++ {
		port := fixedPort
		if port == 0 {
			if port, err = pickPort(); err != nil {
				return err
			}
		}

		c.port = port

		settings := mergeSettings(defaultSettings(port, c.socketDir), overrides)

		block, err := renderSettings(settings)
		if err != nil {
			return err
		}

		// The server user must own its configuration file; WriteFile keeps
		// the owner and mode of the existing file.
		conf := append(base[:len(base):len(base)], block...)
		if err := os.WriteFile(confPath, conf, 0o600); err != nil {
			return fmt.Errorf("pgtest: write postgresql.conf: %w", err)
		}

		portTaken, err := c.startServer(ctx)
		if err == nil {
			return nil
		}

		errs = append(errs, err)
		if !portTaken || fixedPort != 0 || ctx.Err() != nil {
			break
		}

		c.logger.Debug("port taken, retrying with another", "port", port, "attempt", attempt)
	}

	return errors.Join(errs...)
}

// startServer starts the server with pg_ctl and waits until it accepts
// connections. On failure it reports whether the log shows that the port
// was already in use, and returns an error with the log's last lines.
func (c *Cluster) startServer(ctx context.Context) (portTaken bool, err error) {
	logStart := fileSize(c.logPath)

	// The postmaster must not be in our process group, or a terminal's
	// Ctrl-C would shut it down behind the owner's back. pg_ctl detaches
	// it with setsid where it can; a group of its own for pg_ctl covers
	// the rest.
	runErr := c.run(ctx, true, "pg_ctl", "-D", c.dataDir, "-l", c.logPath,
		"-w", "-t", pgCtlTimeout, "start")
	if runErr == nil {
		return false, nil
	}

	// pg_ctl may have been killed (ctx canceled) or have given up waiting
	// while the postmaster lives on: do not leave it behind.
	killErr := c.killLeftover()

	newLog := readFrom(c.logPath, logStart)
	portTaken = strings.Contains(newLog, "Address already in use") ||
		strings.Contains(newLog, "could not create any TCP/IP sockets")

	err = fmt.Errorf("pgtest: start server on port %d: %w\nlast lines of %s:\n%s",
		c.port, runErr, c.logPath, tailLines(readFrom(c.logPath, 0), logTailLines))

	return portTaken, errors.Join(err, killErr)
}

// stopServer stops a running server with a fast shutdown, killing it when
// pg_ctl fails. It returns nil when no server is running.
func (c *Cluster) stopServer(ctx context.Context) error {
	if _, err := postmasterPID(c.dataDir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}

	runErr := c.run(ctx, false, "pg_ctl", "-D", c.dataDir, "-m", "fast",
		"-w", "-t", pgCtlTimeout, "stop")
	if runErr == nil {
		return nil
	}

	c.logger.Warn("pg_ctl stop failed, killing the server", "data_dir", c.dataDir, "err", runErr)

	if err := c.killLeftover(); err != nil {
		return errors.Join(fmt.Errorf("pgtest: stop server: %w", runErr), err)
	}

	return nil
}

// killLeftover kills what a failed or canceled pg_ctl may have left
// running for this data directory: the postmaster named in
// postmaster.pid, and processes on the way to becoming one (pg_ctl's
// forked child and the shell that execs postgres), which have not written
// postmaster.pid yet.
func (c *Cluster) killLeftover() error {
	var errs []error

	pid, err := postmasterPID(c.dataDir)
	if err == nil && processAlive(pid) && servesDataDir(pid, c.dataDir) {
		if err := killPostmaster(pid); err != nil {
			errs = append(errs, err)
		}
	}

	// Every process found is dead before the next scan, so the loop ends
	// once no process of the start sequence remains to fork or exec.
	for range 10 {
		pids := startupProcesses(c.dataDir)
		if len(pids) == 0 {
			return errors.Join(errs...)
		}

		for _, pid := range pids {
			if servesDataDir(pid, c.dataDir) && processName(pid) == "postgres" {
				if err := killPostmaster(pid); err != nil {
					errs = append(errs, err)
				}

				continue
			}

			_ = syscall.Kill(pid, syscall.SIGKILL)
		}

		waitGone(5*time.Second, pids)
	}

	errs = append(errs, fmt.Errorf("pgtest: processes for %s keep running", c.dataDir))

	return errors.Join(errs...)
}

// servesDataDir reports whether the process pid is a postmaster for
// dataDir, guarding against a stale postmaster.pid whose pid has been
// reused. The postmaster keeps its command line (postgres -D <dataDir>),
// unlike its children, which rewrite theirs. Without /proc it trusts the
// pid file.
func servesDataDir(pid int, dataDir string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return !errors.Is(err, fs.ErrNotExist)
	}

	for _, arg := range bytes.Split(b, []byte{0}) {
		if string(arg) == dataDir {
			return true
		}
	}

	return false
}

// freePort asks the kernel for a free TCP port on 127.0.0.1. The port is
// free when the call returns; someone else may take it before the server
// binds it, which the start retry handles.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: find a free port: %w", err)
	}

	port := l.Addr().(*net.TCPAddr).Port

	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("pgtest: find a free port: %w", err)
	}

	return port, nil
}

// fileSize returns the size of the file at path, 0 when it is missing.
func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}

	return fi.Size()
}

// readFrom returns the file's content from offset on, "" on error.
func readFrom(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()

	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}

	b, err := io.ReadAll(f)
	if err != nil {
		return ""
	}

	return string(b)
}

// tailLines returns the last n lines of s.
func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}

	return strings.Join(lines, "\n")
}
