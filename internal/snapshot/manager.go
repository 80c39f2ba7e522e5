package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/pgtide/pgtide/internal/instance/pgproc"
)

// Errors returned by [Manager] methods.
var (
	// ErrUnknownDataset means the dataset is not configured.
	ErrUnknownDataset = errors.New("snapshot: unknown dataset")

	// ErrNotFound means no snapshot has the requested ID, or the dataset
	// has no ready snapshot yet.
	ErrNotFound = errors.New("snapshot: not found")
)

// Manager takes, lists and prunes snapshots. It is safe for concurrent
// use, and several processes may use managers on the same data directory.
type Manager struct {
	cfg    Config
	dir    string
	cat    catalog
	runner *pgproc.Runner
	log    *slog.Logger
}

// New returns a Manager for cfg, creating DataDir/snapshots. Datasets are
// validated; the first problem is returned.
func New(cfg Config) (*Manager, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("snapshot: data directory is required")
	}

	for name, ds := range cfg.Datasets {
		if err := ds.Validate(name); err != nil {
			return nil, err
		}

		if !identRE.MatchString(ds.RoleName()) || !identRE.MatchString(ds.superuser()) {
			return nil, fmt.Errorf("snapshot: dataset %s: bad role name", name)
		}
	}

	runner, err := pgproc.NewRunner(cfg.BinDir)
	if err != nil {
		return nil, err
	}

	dir, err := filepath.Abs(filepath.Join(cfg.DataDir, "snapshots"))
	if err != nil {
		return nil, fmt.Errorf("snapshot: resolve data directory: %w", err)
	}

	// 0711: the server user must traverse into its snapshots' data
	// directories, nobody else needs to list them.
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return nil, fmt.Errorf("snapshot: create %s: %w", dir, err)
	}

	if err := os.Chmod(dir, 0o711); err != nil {
		return nil, fmt.Errorf("snapshot: chmod %s: %w", dir, err)
	}

	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	return &Manager{cfg: cfg, dir: dir, cat: catalog{dir: dir}, runner: runner, log: log}, nil
}

// Dataset returns the configuration of the named dataset.
func (m *Manager) Dataset(name string) (Dataset, bool) {
	ds, ok := m.cfg.Datasets[name]
	return ds, ok
}

// Database returns the database inside the named dataset's snapshots
// that clients reach.
func (m *Manager) Database(dataset string) string {
	return m.cfg.Datasets[dataset].database(dataset)
}

// List returns every snapshot in the catalog, oldest first. Snapshots
// whose creating process died are marked failed first.
func (m *Manager) List(ctx context.Context) ([]Snapshot, error) {
	if err := m.reapStale(ctx); err != nil {
		return nil, err
	}

	var out []Snapshot
	err := m.cat.locked(false, func(cf *catalogFile) error {
		out = append(out, cf.Snapshots...)
		return nil
	})

	return out, err
}

// Resolve returns the snapshot of dataset with the given ID, or the
// newest ready one when id is "". It returns [ErrUnknownDataset] or an
// error wrapping [ErrNotFound].
func (m *Manager) Resolve(dataset, id string) (Snapshot, error) {
	if _, ok := m.cfg.Datasets[dataset]; !ok {
		return Snapshot{}, fmt.Errorf("%w %q", ErrUnknownDataset, dataset)
	}

	var found Snapshot
	err := m.cat.locked(false, func(cf *catalogFile) error {
		for _, s := range cf.Snapshots {
			if s.Dataset != dataset || s.State != StateReady {
				continue
			}

			if id == s.ID || (id == "" && s.ID > found.ID) {
				found = s
			}
		}

		return nil
	})
	if err != nil {
		return Snapshot{}, err
	}

	if found.ID == "" {
		if id == "" {
			return Snapshot{}, fmt.Errorf("%w: dataset %s has no ready snapshot", ErrNotFound, dataset)
		}

		return Snapshot{}, fmt.Errorf("%w: dataset %s has no ready snapshot %q", ErrNotFound, dataset, id)
	}

	return found, nil
}

// reapStale marks snapshots whose creating process is gone as failed and
// removes their files.
func (m *Manager) reapStale(ctx context.Context) error {
	var stale []Snapshot
	err := m.cat.locked(true, func(cf *catalogFile) error {
		for i, s := range cf.Snapshots {
			busy := s.State == StateCreating || s.State == StateMasking || s.State == StateDeleting
			if busy && !pgproc.Alive(s.PID) {
				if s.State != StateDeleting {
					s.Error = "the process taking the snapshot died"
				}

				s.State, s.PID = StateFailed, 0
				cf.Snapshots[i] = s
				stale = append(stale, s)
			}
		}

		return nil
	})
	if err != nil {
		return err
	}

	for _, s := range stale {
		m.log.WarnContext(ctx, "snapshot left behind by a dead process", "snapshot", s.ID, "dataset", s.Dataset)
		m.removeFiles(s.ID)
	}

	return nil
}

// removeFiles deletes a snapshot's directory, killing a server a dead
// process may have left running on it.
func (m *Manager) removeFiles(id string) {
	dir := filepath.Join(m.dir, id)
	for _, pid := range pgproc.Postmasters(dir) {
		_ = pgproc.Kill(pid)
	}

	_ = os.RemoveAll(dir)
}

// newID returns an ID no snapshot has, from the current second.
func newID(cf *catalogFile, now time.Time) string {
	base := now.UTC().Format("20060102-150405")

	id := base
	for n := 2; ; n++ {
		if _, taken := cf.get(id); !taken {
			return id
		}

		id = fmt.Sprintf("%s-%d", base, n)
	}
}

// dirSize sums the sizes of regular files below dir.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}

		return nil
	})

	return n
}

func pidSelf() int { return os.Getpid() }
