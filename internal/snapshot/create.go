package snapshot

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgtide/pgtide/internal/instance/pgproc"
)

// Create takes a snapshot of dataset: a base backup, masking, and the
// scrub of original values. It returns the ready snapshot, or an error
// after marking the snapshot failed and removing its files. It blocks
// until done; ctx cancels it.
func (m *Manager) Create(ctx context.Context, dataset string) (Snapshot, error) {
	ds, ok := m.cfg.Datasets[dataset]
	if !ok {
		return Snapshot{}, fmt.Errorf("%w %q", ErrUnknownDataset, dataset)
	}

	var snap Snapshot
	err := m.cat.locked(true, func(cf *catalogFile) error {
		id := newID(cf, time.Now())
		snap = Snapshot{
			ID:      id,
			Dataset: dataset,
			Created: time.Now().UTC().Truncate(time.Millisecond),
			State:   StateCreating,
			PID:     os.Getpid(),
			DataDir: filepath.Join(m.dir, id, "data"),
		}
		cf.put(snap)

		return nil
	})
	if err != nil {
		return Snapshot{}, err
	}

	log := m.log.With("snapshot", snap.ID, "dataset", dataset)
	log.InfoContext(ctx, "snapshot started")
	start := time.Now()

	if err := m.build(ctx, ds, &snap); err != nil {
		m.removeFiles(snap.ID)
		snap.State, snap.Error, snap.PID = StateFailed, err.Error(), 0
		_ = m.setState(snap)
		log.ErrorContext(ctx, "snapshot failed", "err", err)

		return snap, fmt.Errorf("snapshot %s of %s: %w", snap.ID, dataset, err)
	}

	snap.State, snap.PID = StateReady, 0
	snap.Size = dirSize(snap.DataDir)
	if err := m.setState(snap); err != nil {
		return snap, err
	}

	log.InfoContext(ctx, "snapshot ready",
		"lsn", snap.LSN,
		"size_bytes", snap.Size,
		"duration", time.Since(start).Round(time.Millisecond))

	return snap, nil
}

func (m *Manager) setState(s Snapshot) error {
	return m.cat.locked(true, func(cf *catalogFile) error {
		cf.put(s)
		return nil
	})
}

// build runs the steps after the catalog entry exists.
func (m *Manager) build(ctx context.Context, ds Dataset, snap *Snapshot) error {
	dir := filepath.Dir(snap.DataDir)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("create snapshot directory: %w", err)
	}

	if err := m.runner.Chown(dir); err != nil {
		return err
	}

	if err := m.baseBackup(ctx, ds, snap.DataDir); err != nil {
		return err
	}

	lsn, err := backupLSN(snap.DataDir)
	if err != nil {
		return err
	}

	snap.LSN = lsn
	snap.State = StateMasking
	if err := m.setState(*snap); err != nil {
		return err
	}

	if err := prepareDataDir(snap.DataDir); err != nil {
		return err
	}

	if err := m.mask(ctx, ds, snap); err != nil {
		return err
	}

	// The server stopped cleanly, so pg_resetwal may drop the WAL: it
	// still holds the rows as they were before masking.
	if err := m.runner.Run(ctx, "pg_resetwal", nil, "-D", snap.DataDir); err != nil {
		return fmt.Errorf("drop WAL: %w", err)
	}

	return nil
}

// baseBackup copies the dataset's source with pg_basebackup. The password
// goes through the environment, never the command line.
func (m *Manager) baseBackup(ctx context.Context, ds Dataset, dataDir string) error {
	cfg, err := pgconn.ParseConfig(ds.Source)
	if err != nil {
		return fmt.Errorf("parse source connection string: %w", err)
	}

	env := []string{"PGAPPNAME=pgtide-snapshot"}
	if cfg.Password != "" {
		env = append(env, "PGPASSWORD="+cfg.Password)
	}

	if cfg.TLSConfig == nil {
		env = append(env, "PGSSLMODE=disable")
	}

	args := []string{
		"-D", dataDir,
		"-X", "stream",
		"-c", "fast",
		"--no-manifest",
		"-h", cfg.Host,
		"-p", strconv.Itoa(int(cfg.Port)),
		"-U", cfg.User,
	}

	if err := m.runner.Run(ctx, "pg_basebackup", env, args...); err != nil {
		return fmt.Errorf("base backup: %w", err)
	}

	return nil
}

// backupLSN reads the start WAL location from backup_label.
func backupLSN(dataDir string) (string, error) {
	f, err := os.Open(filepath.Join(dataDir, "backup_label"))
	if err != nil {
		return "", fmt.Errorf("read backup_label: %w", err)
	}
	defer f.Close()

	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "START WAL LOCATION: "); ok {
			lsn, _, _ := strings.Cut(rest, " ")
			return lsn, nil
		}
	}

	return "", errors.New("backup_label has no START WAL LOCATION")
}

// snapshotConf replaces the source's postgresql.conf: the source's
// settings (ports, TLS files, preloaded libraries, replication) do not
// belong in an offline copy. Instances pass their own settings at start.
const snapshotConf = `# Written by pgtide when the snapshot was taken.
listen_addresses = ''
max_connections = 100
shared_buffers = 128MB
dynamic_shared_memory_type = posix
logging_collector = off
log_destination = 'stderr'
`

// snapshotHBA lets in local connections only; the socket directory of
// each server is private to the server user (and root).
const snapshotHBA = "# Written by pgtide: local connections only.\nlocal all all trust\n"

// prepareDataDir replaces configuration taken over from the source and
// removes files that must not travel with a snapshot.
func prepareDataDir(dataDir string) error {
	files := map[string]string{
		"postgresql.conf":      snapshotConf,
		"pg_hba.conf":          snapshotHBA,
		"pg_ident.conf":        "",
		"postgresql.auto.conf": "",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dataDir, name), []byte(text), 0o600); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}

	// Server logs may quote values; signal files would start a standby.
	for _, name := range []string{"log", "pg_log", "standby.signal", "recovery.signal", "current_logfiles", "backup_manifest"} {
		if err := os.RemoveAll(filepath.Join(dataDir, name)); err != nil {
			return fmt.Errorf("remove %s: %w", name, err)
		}
	}

	return nil
}

// socketDir returns a directory for a private Unix socket near base, or
// a short temporary one when the socket path would be too long.
func socketDir(base string) (string, func(), error) {
	dir := filepath.Join(base, "sock")
	if len(dir)+len("/.s.PGSQL.5432") >= 100 {
		d, err := os.MkdirTemp("", "pgtide-")
		if err != nil {
			return "", nil, fmt.Errorf("create socket directory: %w", err)
		}

		return d, func() { _ = os.RemoveAll(d) }, nil
	}

	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", nil, fmt.Errorf("create socket directory: %w", err)
	}

	return dir, func() { _ = os.RemoveAll(dir) }, nil
}

// stopClean stops srv with a fast shutdown, which ends with a checkpoint
// and a clean control file.
func stopClean(srv *pgproc.Server) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	if err := srv.Stop(ctx, syscall.SIGINT); err != nil {
		return fmt.Errorf("stop the masking server: %w", err)
	}

	return nil
}
