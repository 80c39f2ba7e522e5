package pgtest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// ErrStopped is returned by [Cluster.Restart] after [Cluster.Stop].
var ErrStopped = errors.New("pgtest: cluster is stopped")

// cleanupTimeout bounds the Stop that [Start] registers with tb.Cleanup,
// which cannot use the test's context: that is canceled before cleanups run.
const cleanupTimeout = 2 * time.Minute

// Options configure a cluster. The zero value is usable.
type Options struct {
	// Settings are extra postgresql.conf parameters, by name. They
	// override the defaults (wal_level=logical, fsync=off, a free port,
	// ...). A "port" setting pins the port and turns off the retry with
	// another port when it is taken.
	Settings map[string]string

	// Logger receives lifecycle and diagnostic messages. Nil discards them.
	Logger *slog.Logger

	// Dir is the parent directory of the cluster's own directory, which
	// is created inside it and removed by [Cluster.Stop]. "" means
	// os.TempDir. When running as root, the OS user postgres must be able
	// to traverse it.
	Dir string

	// BinDir holds the server binaries. "" means [FindBinDir].
	BinDir string
}

// Cluster is a running throwaway PostgreSQL server and its directory.
//
// Its layout: the cluster directory ([Cluster.Dir]) holds the data
// directory "data", the socket directory "sock" (unless that path would be
// too long for a Unix socket, in which case the socket directory is a
// separate short temporary directory) and the server log "server.log".
//
// A Cluster is safe for concurrent use; Stop and Restart are serialized.
type Cluster struct {
	binDir    string
	dir       string // cluster directory we created; removed by Stop
	dataDir   string
	socketDir string // "" when Unix sockets are disabled by Settings
	extraDir  string // separate short socket directory we created, or ""
	logPath   string
	port      int
	user      *osUser // nil: server programs run as the current user
	logger    *slog.Logger

	// mu serializes Stop and Restart and guards removed.
	mu      sync.Mutex
	removed bool
}

// StartCluster creates and starts a new cluster. It returns
// [ErrBinariesNotFound] when the server binaries are missing, and an error
// naming the OS user postgres when running as root without that user.
// When the server does not start, the error includes the last lines of
// its log, and everything created so far is removed again.
//
// The caller must call [Cluster.Stop] to stop the server and remove its
// files. ctx bounds the start only, not the cluster's lifetime.
func StartCluster(ctx context.Context, opts Options) (*Cluster, error) {
	return startCluster(ctx, opts, freePort)
}

// Start is the test helper around [StartCluster]: it calls tb.Fatal when
// the cluster cannot be started and registers a tb.Cleanup that stops the
// server and removes its directory. At most one Options may be given.
func Start(tb testing.TB, opts ...Options) *Cluster {
	tb.Helper()

	if len(opts) > 1 {
		tb.Fatalf("pgtest.Start: got %d Options, want at most 1", len(opts))
	}

	var o Options
	if len(opts) == 1 {
		o = opts[0]
	}

	c, err := StartCluster(tb.Context(), o)
	if err != nil {
		tb.Fatal(err)
	}

	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()

		if err := c.Stop(ctx); err != nil {
			tb.Errorf("pgtest: stop cluster: %v", err)
		}
	})

	return c
}

// portPicker returns a TCP port that is free at the time of the call.
type portPicker func() (int, error)

// startCluster is StartCluster with a replaceable port picker for tests.
func startCluster(ctx context.Context, opts Options, pickPort portPicker) (_ *Cluster, err error) {
	binDir := opts.BinDir
	if binDir == "" {
		if binDir, err = FindBinDir(); err != nil {
			return nil, err
		}
	}

	user, err := serverUser()
	if err != nil {
		return nil, err
	}

	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}

	c := &Cluster{binDir: binDir, user: user, logger: logger.With("component", "pgtest")}

	if err := c.makeDirs(opts.Dir); err != nil {
		return nil, err
	}

	// From here on a failure removes what was created, including a server
	// that a canceled pg_ctl left running.
	defer func() {
		if err == nil {
			return
		}

		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()

		if stopErr := c.Stop(stopCtx); stopErr != nil {
			err = errors.Join(err, stopErr)
		}
	}()

	if err := c.initdb(ctx); err != nil {
		return nil, err
	}

	if err := c.configureAndStart(ctx, opts.Settings, pickPort); err != nil {
		return nil, err
	}

	c.logger.Info("cluster started", "data_dir", c.dataDir, "port", c.port)

	return c, nil
}

// makeDirs creates the cluster directory under parent and the socket
// directory, and hands both to the server user.
func (c *Cluster) makeDirs(parent string) error {
	dir, err := os.MkdirTemp(parent, "pgtest-")
	if err != nil {
		return fmt.Errorf("pgtest: create cluster directory: %w", err)
	}

	c.dir = dir
	c.dataDir = filepath.Join(dir, "data")
	c.logPath = filepath.Join(dir, "server.log")
	c.socketDir = filepath.Join(dir, "sock")

	// MkdirTemp creates 0700; the server user needs to reach the data
	// directory below it, and clients the socket directory.
	if err := os.Chmod(dir, 0o755); err != nil {
		return errors.Join(fmt.Errorf("pgtest: chmod cluster directory: %w", err), c.removeDirs())
	}

	if err := c.user.checkTraversable(dir); err != nil {
		return errors.Join(err, c.removeDirs())
	}

	if len(filepath.Join(c.socketDir, socketFileName)) > maxSocketPath {
		short, err := os.MkdirTemp("/tmp", "pgs-")
		if err != nil {
			err = fmt.Errorf("pgtest: create socket directory: %w", err)

			return errors.Join(err, c.removeDirs())
		}

		c.extraDir = short
		c.socketDir = short
	} else if err := os.Mkdir(c.socketDir, 0o700); err != nil {
		return errors.Join(fmt.Errorf("pgtest: create socket directory: %w", err), c.removeDirs())
	}

	if err := os.Chmod(c.socketDir, 0o755); err != nil {
		return errors.Join(fmt.Errorf("pgtest: chmod socket directory: %w", err), c.removeDirs())
	}

	for _, d := range []string{dir, c.socketDir} {
		if err := c.user.chown(d); err != nil {
			return errors.Join(err, c.removeDirs())
		}
	}

	return nil
}

// removeDirs removes the directories the cluster created.
func (c *Cluster) removeDirs() error {
	var errs []error
	for _, d := range []string{c.dir, c.extraDir} {
		if d == "" {
			continue
		}

		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, fmt.Errorf("pgtest: remove %s: %w", d, err))
		}
	}

	return errors.Join(errs...)
}

// Stop stops the server with a fast shutdown (pg_ctl stop -m fast) and
// removes every file and directory the cluster created. When pg_ctl
// cannot stop the server, Stop kills the postmaster and its children so
// that no process is left behind. Stop is idempotent: once it has
// succeeded, later calls return nil.
func (c *Cluster) Stop(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()

	if c.removed {
		return nil
	}

	stopErr := c.stopServer(ctx)

	if err := c.removeDirs(); err != nil {
		return errors.Join(stopErr, err)
	}

	if stopErr != nil {
		return stopErr
	}

	c.removed = true
	c.logger.Info("cluster stopped", "data_dir", c.dataDir)

	return nil
}

// Restart stops the server with a fast shutdown and starts it again on
// the same port with the same data. It returns [ErrStopped] after
// [Cluster.Stop], and an error with the last lines of the server log when
// the server does not come back.
func (c *Cluster) Restart(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()

	if c.removed {
		return ErrStopped
	}

	if err := c.stopServer(ctx); err != nil {
		return fmt.Errorf("pgtest: restart: %w", err)
	}

	if _, err := c.startServer(ctx); err != nil {
		return fmt.Errorf("pgtest: restart: %w", err)
	}

	c.logger.Info("cluster restarted", "data_dir", c.dataDir, "port", c.port)

	return nil
}

// BinDir returns the directory holding the server binaries in use.
func (c *Cluster) BinDir() string { return c.binDir }

// Dir returns the cluster directory, which holds the data directory and
// the server log and is removed by [Cluster.Stop]. When running as root it
// belongs to the OS user postgres, so programs started with
// [Cluster.Command] can write scratch files there.
func (c *Cluster) Dir() string { return c.dir }

// DataDir returns the server's data directory (PGDATA).
func (c *Cluster) DataDir() string { return c.dataDir }

// SocketDir returns the directory of the server's Unix socket, "" when
// Options.Settings disabled Unix sockets.
func (c *Cluster) SocketDir() string { return c.socketDir }

// LogPath returns the path of the server log written through pg_ctl -l.
func (c *Cluster) LogPath() string { return c.logPath }

// Port returns the server's port, on 127.0.0.1 and on the Unix socket.
func (c *Cluster) Port() int { return c.port }

// DSN returns a URL connection string for database over TCP to
// 127.0.0.1 as the superuser postgres, which needs no password.
func (c *Cluster) DSN(database string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable",
		c.port, url.PathEscape(database))
}

// SocketDSN returns a URL connection string for database over the
// cluster's Unix socket as the superuser postgres. The socket directory
// goes in the host query parameter, URL-encoded.
func (c *Cluster) SocketDSN(database string) string {
	return "postgres://postgres@/" + url.PathEscape(database) +
		"?host=" + queryEscape(c.socketDir) +
		"&port=" + strconv.Itoa(c.port) +
		"&sslmode=disable"
}

// queryEscape escapes a URL query value with %20 for a space: pgx decodes
// query values without turning '+' into a space.
func queryEscape(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}
