package instance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgtide/pgtide/internal/instance/pgproc"
)

// LocalConfig configures a [Local] driver.
type LocalConfig struct {
	// DataDir is pgtide's data directory; instances live in
	// DataDir/instances. Required. When running as root, the OS user
	// postgres must be able to traverse it.
	DataDir string

	// BinDir holds the PostgreSQL programs. "" finds them.
	BinDir string

	// Settings are server parameters for every instance, over
	// [DefaultSettings].
	Settings map[string]string

	// Memory limits the memory of each instance, in bytes: its
	// postmaster and backends share one cgroup with that limit and no
	// swap, and a backend that goes over it is killed by the kernel.
	// Unless Settings sets shared_buffers, it becomes a quarter of the
	// limit. Zero means no limit. With a limit, [NewLocal] fails with
	// [ErrNoMemoryCgroup] when no cgroup memory controller is usable.
	Memory int64

	// Clone is how an instance's data directory is made from its
	// snapshot: CloneOverlay (an overlay mount, no copy; needs
	// CAP_SYS_ADMIN), CloneCopy, or CloneAuto ("", overlay when the
	// mount works, else copy).
	Clone string

	// TCP makes instances listen on a free loopback port too, with trust
	// authentication: anyone on this machine could then reach them
	// without the proxy. Meant for benchmarks and debugging only.
	TCP bool

	// Logger receives lifecycle messages. Nil discards them.
	Logger *slog.Logger
}

// DefaultSettings are the server parameters of instances: their data is
// a disposable copy, so durability is off.
var DefaultSettings = map[string]string{
	"fsync":              "off",
	"synchronous_commit": "off",
	"full_page_writes":   "off",
	"max_wal_senders":    "0",
	"wal_level":          "minimal",
	"log_min_messages":   "warning",
}

// Local runs instances as PostgreSQL processes on this machine. It is
// safe for concurrent use. Only one Local may use a data directory at a
// time: [NewLocal] fails while another process holds it.
type Local struct {
	cfg    LocalConfig
	dir    string
	runner *pgproc.Runner
	log    *slog.Logger
	lock   *os.File

	// cg places instances in memory cgroups; nil without a limit.
	cg *cgroups

	// mu guards servers.
	mu      sync.Mutex
	servers map[string]*pgproc.Server

	// overlayOnce logs once that overlays are not available.
	overlayOnce sync.Once
}

// state is an instance's state file, written before its server starts
// and updated with the postmaster's pid, so a later process can find
// what a crash left behind.
type state struct {
	ID        string    `json:"id"`
	Dataset   string    `json:"dataset"`
	Snapshot  string    `json:"snapshot"`
	Owner     int       `json:"owner_pid"`
	PID       int       `json:"pid,omitempty"`
	SocketDir string    `json:"socket_dir"`
	Cgroup    string    `json:"cgroup,omitempty"`
	Started   time.Time `json:"started"`
}

// NewLocal returns a Local driver on cfg.DataDir/instances and locks that
// directory for this process. It does not reconcile: the controller
// calls [Local.Reconcile].
func NewLocal(cfg LocalConfig) (*Local, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("instance: data directory is required")
	}

	switch cfg.Clone {
	case "", CloneAuto, CloneOverlay, CloneCopy:
	default:
		return nil, fmt.Errorf("instance: clone mode %q: want %q, %q or %q", cfg.Clone, CloneAuto, CloneOverlay, CloneCopy)
	}

	runner, err := pgproc.NewRunner(cfg.BinDir)
	if err != nil {
		return nil, err
	}

	dir, err := filepath.Abs(filepath.Join(cfg.DataDir, "instances"))
	if err != nil {
		return nil, fmt.Errorf("instance: resolve data directory: %w", err)
	}

	if err := os.MkdirAll(dir, 0o711); err != nil {
		return nil, fmt.Errorf("instance: create %s: %w", dir, err)
	}

	if err := os.Chmod(dir, 0o711); err != nil {
		return nil, fmt.Errorf("instance: chmod %s: %w", dir, err)
	}

	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("instance: open lock: %w", err)
	}

	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("instance: %s is in use by another pgtide process: %w", dir, err)
	}

	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	l := &Local{
		cfg:     cfg,
		dir:     dir,
		runner:  runner,
		log:     log,
		lock:    lock,
		servers: map[string]*pgproc.Server{},
	}

	if cfg.Memory > 0 {
		if l.cg, err = detectCgroups(dir, cfg.Memory); err != nil {
			lock.Close()
			return nil, err
		}

		log.Info("instance memory limited by cgroups",
			"cgroup_version", l.cg.version, "cgroup", l.cg.base, "memory_bytes", cfg.Memory)
	}

	return l, nil
}

// Close releases the directory lock. It does not stop instances.
func (l *Local) Close() error {
	if l.cg != nil {
		// Fails, harmlessly, while instances still run.
		l.cg.close()
	}

	return l.lock.Close()
}

// Start copies the snapshot, starts a postmaster on a private socket,
// waits for it and runs the startup scripts.
func (l *Local) Start(ctx context.Context, spec Spec) (ep Endpoint, err error) {
	dir := filepath.Join(l.dir, spec.ID)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return Endpoint{}, fmt.Errorf("instance: create %s: %w", dir, err)
	}

	defer func() {
		if err != nil {
			_ = l.Stop(context.Background(), spec.ID)
		}
	}()

	sock, err := l.socketDir(dir)
	if err != nil {
		return Endpoint{}, err
	}

	st := state{
		ID:        spec.ID,
		Dataset:   spec.Dataset,
		Snapshot:  spec.SnapshotID,
		Owner:     os.Getpid(),
		SocketDir: sock,
		Started:   time.Now().UTC(),
	}
	if l.cg != nil {
		// Recorded before the cgroup exists, so that a crash at any
		// later point leaves a state file naming it.
		st.Cgroup = l.cg.path(spec.ID)
	}

	if err := writeState(dir, st); err != nil {
		return Endpoint{}, err
	}

	// cp -a keeps the snapshot's owner, the server user, on the copy.
	if err := l.runner.Chown(dir); err != nil {
		return Endpoint{}, err
	}

	data := filepath.Join(dir, "data")
	if err := l.clone(ctx, spec.SnapshotDir, dir); err != nil {
		return Endpoint{}, err
	}

	if err := l.runner.Chown(sock); err != nil {
		return Endpoint{}, err
	}

	opts := pgproc.ServerOptions{
		DataDir:   data,
		SocketDir: sock,
		Port:      5432,
		Settings:  maps.Clone(DefaultSettings),
	}
	maps.Copy(opts.Settings, l.cfg.Settings)

	if l.cfg.Memory > 0 && l.cfg.Settings["shared_buffers"] == "" {
		// Shared memory counts against the limit: a quarter of it
		// leaves the rest to backends, as the usual sizing advice does
		// for a whole machine.
		opts.Settings["shared_buffers"] = strconv.FormatInt(l.cfg.Memory/4/1024, 10) + "kB"
	}

	if l.cfg.TCP {
		hba := filepath.Join(data, "pg_hba.conf")
		if err := appendFile(hba, "host all all 127.0.0.1/32 trust\n"); err != nil {
			return Endpoint{}, err
		}

		opts.TCP = true
		if opts.Port, err = freePort(); err != nil {
			return Endpoint{}, err
		}
	}

	var cg *cgroup
	if l.cg != nil {
		if cg, err = l.cg.create(spec.ID); err != nil {
			return Endpoint{}, err
		}
		defer cg.close()

		opts.Prepare = cg.prepare
	}

	srv, err := l.runner.Start(ctx, opts)
	if err != nil {
		return Endpoint{}, fmt.Errorf("instance: start %s: %w", spec.ID, err)
	}

	if cg != nil {
		if err := cg.started(); err != nil {
			l.log.WarnContext(ctx, "cannot finish cgroup setup of postmaster",
				"instance", spec.ID, "pid", srv.PID, "err", err)
		}
	}

	l.mu.Lock()
	l.servers[spec.ID] = srv
	l.mu.Unlock()

	st.PID = srv.PID
	if err := writeState(dir, st); err != nil {
		return Endpoint{}, err
	}

	ep = Endpoint{Host: sock, Port: opts.Port, User: spec.Role, Database: spec.Database}
	if l.cfg.TCP {
		ep.TCPAddr = net.JoinHostPort("127.0.0.1", fmt.Sprint(opts.Port))
	}

	if err := runScripts(ctx, ep, spec); err != nil {
		return Endpoint{}, err
	}

	return ep, nil
}

// runScripts runs the spec's startup scripts as its superuser.
func runScripts(ctx context.Context, ep Endpoint, spec Spec) error {
	if len(spec.StartupScripts) == 0 {
		return nil
	}

	su := ep
	su.User = spec.Superuser

	conn, err := pgconn.Connect(ctx, su.DSN())
	if err != nil {
		return fmt.Errorf("instance: connect for startup scripts: %w", err)
	}
	defer conn.Close(context.Background())

	for i, sql := range spec.StartupScripts {
		if _, err := conn.Exec(ctx, sql).ReadAll(); err != nil {
			return fmt.Errorf("instance: startup script %d: %w", i+1, err)
		}
	}

	return nil
}

// Stop stops the instance's postmaster with an immediate shutdown (its
// data is thrown away) and removes its directories.
func (l *Local) Stop(ctx context.Context, id string) error {
	l.mu.Lock()
	srv := l.servers[id]
	delete(l.servers, id)
	l.mu.Unlock()

	dir := filepath.Join(l.dir, id)

	var errs []error
	if srv != nil {
		if err := srv.Stop(ctx, syscall.SIGQUIT); err != nil {
			errs = append(errs, err)
		}
	}

	st, err := readState(dir)
	if err == nil && st.SocketDir != "" {
		_ = os.RemoveAll(st.SocketDir)
	}

	if err := unmountData(dir); err != nil {
		errs = append(errs, err)
	}

	switch {
	case st.Cgroup != "" && isInstanceCgroup(st.Cgroup, id):
		errs = append(errs, removeCgroup(st.Cgroup))
	case l.cg != nil:
		errs = append(errs, removeCgroup(l.cg.path(id)))
	}

	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, fmt.Errorf("instance: remove %s: %w", dir, err))
	}

	return errors.Join(errs...)
}

// Reconcile kills every postmaster running on a data directory under the
// instances directory and removes every instance directory not started
// by this driver. The lock taken in [NewLocal] guarantees no other live
// process owns them.
func (l *Local) Reconcile(ctx context.Context) ([]string, error) {
	l.mu.Lock()
	mine := maps.Clone(l.servers)
	l.mu.Unlock()

	entries, err := os.ReadDir(l.dir)
	if err != nil {
		return nil, fmt.Errorf("instance: list %s: %w", l.dir, err)
	}

	var errs []error
	for _, pid := range pgproc.Postmasters(l.dir) {
		owned := false
		for _, s := range mine {
			owned = owned || s.PID == pid
		}

		if !owned {
			l.log.WarnContext(ctx, "killing orphan postmaster", "pid", pid)
			errs = append(errs, pgproc.Kill(pid))
		}
	}

	var removed []string
	for _, e := range entries {
		if !e.IsDir() || mine[e.Name()] != nil {
			continue
		}

		dir := filepath.Join(l.dir, e.Name())
		if st, err := readState(dir); err == nil {
			if pgproc.Alive(st.PID) {
				errs = append(errs, pgproc.Kill(st.PID))
			}

			if st.SocketDir != "" {
				_ = os.RemoveAll(st.SocketDir)
			}

			if st.Cgroup != "" && isInstanceCgroup(st.Cgroup, e.Name()) {
				errs = append(errs, removeCgroup(st.Cgroup))

				// The base of an earlier run with a limit, once empty.
				if base := filepath.Dir(st.Cgroup); l.cg == nil || base != l.cg.base {
					_ = syscall.Rmdir(base)
				}
			}
		}

		// Unmounted before removal: removing through an overlay would
		// only whiteout the files, and the mount would stay.
		if err := unmountData(dir); err != nil {
			errs = append(errs, err)
			continue
		}

		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("instance: remove %s: %w", dir, err))
			continue
		}

		l.log.InfoContext(ctx, "removed orphan instance", "instance", e.Name())
		removed = append(removed, e.Name())
	}

	if l.cg != nil {
		gone, err := l.reconcileCgroups(ctx, mine)
		errs = append(errs, err)

		for _, id := range gone {
			if !slices.Contains(removed, id) {
				removed = append(removed, id)
			}
		}
	}

	return removed, errors.Join(errs...)
}

// reconcileCgroups removes the instance cgroups of this instances
// directory that belong to no instance in mine: those whose state file
// was already gone when a crash interrupted a stop.
func (l *Local) reconcileCgroups(ctx context.Context, mine map[string]*pgproc.Server) ([]string, error) {
	names, err := l.cg.children()
	if err != nil {
		return nil, err
	}

	var (
		removed []string
		errs    []error
	)
	for _, id := range names {
		if mine[id] != nil {
			continue
		}

		if err := removeCgroup(l.cg.path(id)); err != nil {
			errs = append(errs, err)
			continue
		}

		l.log.InfoContext(ctx, "removed orphan instance cgroup", "instance", id)
		removed = append(removed, id)
	}

	return removed, errors.Join(errs...)
}

// socketDir creates the instance's private socket directory: inside the
// instance directory, or a short temporary one when the socket path would
// exceed the platform limit.
func (l *Local) socketDir(dir string) (string, error) {
	sock := filepath.Join(dir, "sock")
	if len(sock)+len("/.s.PGSQL.65535") >= 100 {
		d, err := os.MkdirTemp("", "pgtide-")
		if err != nil {
			return "", fmt.Errorf("instance: create socket directory: %w", err)
		}

		return d, nil
	}

	if err := os.Mkdir(sock, 0o700); err != nil {
		return "", fmt.Errorf("instance: create socket directory: %w", err)
	}

	return sock, nil
}

// copyDir copies a stopped data directory, sharing blocks where the file
// system supports reflinks.
func copyDir(ctx context.Context, src, dst string) error {
	out, err := exec.CommandContext(ctx, "cp", "--reflink=auto", "-a", src, dst).CombinedOutput()
	if err != nil {
		return fmt.Errorf("instance: copy snapshot %s: %w: %s", src, err, out)
	}

	return nil
}

func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("instance: open %s: %w", path, err)
	}

	_, err = f.WriteString(text)
	if cerr := f.Close(); err == nil {
		err = cerr
	}

	if err != nil {
		return fmt.Errorf("instance: append to %s: %w", path, err)
	}

	return nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("instance: find a free port: %w", err)
	}
	defer ln.Close()

	return ln.Addr().(*net.TCPAddr).Port, nil
}

func writeState(dir string, st state) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("instance: encode state: %w", err)
	}

	tmp := filepath.Join(dir, "state.json.tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("instance: write state: %w", err)
	}

	if err := os.Rename(tmp, filepath.Join(dir, "state.json")); err != nil {
		return fmt.Errorf("instance: write state: %w", err)
	}

	return nil
}

func readState(dir string) (state, error) {
	var st state

	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return st, fmt.Errorf("instance: read state: %w", err)
	}

	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("instance: decode state: %w", err)
	}

	return st, nil
}

// SnapshotsInUse returns the IDs of snapshots that instances of live
// processes under dataDir/instances use. Another process (such as
// `pgtide snapshot prune`) uses it to spare those snapshots.
func SnapshotsInUse(dataDir string) map[string]bool {
	dir := filepath.Join(dataDir, "instances")
	entries, _ := os.ReadDir(dir)

	used := map[string]bool{}
	for _, e := range entries {
		if st, err := readState(filepath.Join(dir, e.Name())); err == nil && pgproc.Alive(st.Owner) {
			used[st.Snapshot] = true
		}
	}

	return used
}
