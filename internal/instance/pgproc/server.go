package pgproc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ServerOptions describe one server to start.
type ServerOptions struct {
	// DataDir is the data directory (PGDATA), owned by the server user.
	DataDir string

	// SocketDir is the directory of the Unix socket, owned by the server
	// user. Required: pgtide reaches its servers through their socket.
	SocketDir string

	// Port names the socket (.s.PGSQL.<port>) and, with TCP, the
	// loopback port. Zero means 5432.
	Port int

	// TCP makes the server listen on 127.0.0.1:Port as well. Off by
	// default: the socket directory's permissions are the access control.
	TCP bool

	// Settings are extra server parameters passed with -c, by name.
	Settings map[string]string

	// LogFile receives the server's output. "" means DataDir/../server.log.
	LogFile string

	// Prepare, when not nil, is called with the postmaster's command just
	// before it starts. It may change the command (its path, arguments,
	// environment or SysProcAttr), for example to start the server inside
	// a cgroup. An error stops the start.
	Prepare func(cmd *exec.Cmd) error
}

// Server is a running postmaster started by [Runner.Start]. It is safe
// for concurrent use.
type Server struct {
	// PID is the postmaster's process id.
	PID int

	opts ServerOptions
	done chan struct{} // closed when the postmaster has exited
}

// SocketPath returns the path of the server's Unix socket.
func (s *Server) SocketPath() string {
	return filepath.Join(s.opts.SocketDir, ".s.PGSQL."+strconv.Itoa(s.opts.Port))
}

// Port returns the socket's port number.
func (s *Server) Port() int { return s.opts.Port }

// Done returns a channel closed when the postmaster has exited.
func (s *Server) Done() <-chan struct{} { return s.done }

// Start starts a postmaster on opts and waits until it accepts
// connections (crash recovery included) or ctx ends. When the server
// does not come up, it is killed and the error holds the end of its log.
func (r *Runner) Start(ctx context.Context, opts ServerOptions) (*Server, error) {
	if opts.Port == 0 {
		opts.Port = 5432
	}

	if opts.LogFile == "" {
		opts.LogFile = filepath.Join(filepath.Dir(opts.DataDir), "server.log")
	}

	logf, err := os.OpenFile(opts.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("pgproc: open server log: %w", err)
	}
	defer logf.Close()

	listen := ""
	if opts.TCP {
		listen = "127.0.0.1"
	}

	args := []string{
		"-D", opts.DataDir,
		"-c", "listen_addresses=" + listen,
		"-c", "port=" + strconv.Itoa(opts.Port),
		"-c", "unix_socket_directories=" + opts.SocketDir,
		"-c", "unix_socket_permissions=0700",
	}
	for k, v := range opts.Settings {
		args = append(args, "-c", k+"="+v)
	}

	// The postmaster outlives ctx: only the start is bounded by it.
	cmd := r.Command(context.Background(), "postgres", nil, args...)
	cmd.Stdout, cmd.Stderr = logf, logf

	if opts.Prepare != nil {
		if err := opts.Prepare(cmd); err != nil {
			return nil, fmt.Errorf("pgproc: prepare postgres: %w", err)
		}
	}

	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("pgproc: start postgres: %w", err)
	}

	s := &Server{PID: cmd.Process.Pid, opts: opts, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(s.done)
	}()

	if err := s.waitReady(ctx); err != nil {
		_ = s.Stop(context.Background(), syscall.SIGQUIT)
		return nil, fmt.Errorf("%w: %s", err, tailFile(opts.LogFile, 1500))
	}

	return s, nil
}

// waitReady polls postmaster.pid until its status line says "ready".
func (s *Server) waitReady(ctx context.Context) error {
	pidFile := filepath.Join(s.opts.DataDir, "postmaster.pid")

	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()

	for {
		if b, err := os.ReadFile(pidFile); err == nil {
			lines := strings.Split(string(b), "\n")
			if len(lines) >= 8 && strings.TrimSpace(lines[7]) == "ready" &&
				strings.TrimSpace(lines[0]) == strconv.Itoa(s.PID) {
				return nil
			}
		}

		select {
		case <-s.done:
			return errors.New("pgproc: postgres exited during startup")
		case <-ctx.Done():
			return fmt.Errorf("pgproc: wait for postgres to accept connections: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// Stop sends sig to the postmaster (SIGINT: fast shutdown, a clean stop
// with a checkpoint; SIGQUIT: immediate shutdown, for throwaway data) and
// waits for it to exit. When ctx ends first, or after 10 s, the process
// group is killed with SIGKILL.
func (s *Server) Stop(ctx context.Context, sig syscall.Signal) error {
	select {
	case <-s.done:
		return nil
	default:
	}

	if err := syscall.Kill(s.PID, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("pgproc: signal postmaster %d: %w", s.PID, err)
	}

	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()

	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
	case <-timer.C:
	}

	killGroup(s.PID)
	<-s.done

	return fmt.Errorf("pgproc: postmaster %d killed after shutdown timed out", s.PID)
}

// killGroup sends SIGKILL to the process group led by pid and to pid.
func killGroup(pid int) {
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

// tailFile returns the end of the file at path, for error messages.
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}

	return "server log: " + tail(string(b), n)
}
