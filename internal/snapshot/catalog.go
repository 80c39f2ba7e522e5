package snapshot

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"
)

// States of a snapshot.
const (
	StateCreating = "creating"
	StateMasking  = "masking"
	StateReady    = "ready"
	StateFailed   = "failed"
	StateDeleting = "deleting"
)

// Snapshot is one catalog entry.
type Snapshot struct {
	// ID is unique among all snapshots and sorts by creation time.
	ID      string    `json:"id"`
	Dataset string    `json:"dataset"`
	Created time.Time `json:"created"`

	// LSN is the WAL position the copy is consistent at (the backup's
	// start location).
	LSN string `json:"lsn,omitempty"`

	// Size is the data directory's size in bytes, once ready.
	Size  int64  `json:"size"`
	State string `json:"state"`

	// Error says why a failed snapshot failed.
	Error string `json:"error,omitempty"`

	// PID is the process creating the snapshot, while it does.
	PID int `json:"pid,omitempty"`

	// DataDir is the snapshot's PostgreSQL data directory.
	DataDir string `json:"data_dir"`
}

// catalogFile is the JSON document on disk.
type catalogFile struct {
	Version   int        `json:"version"`
	Snapshots []Snapshot `json:"snapshots"`
}

// catalog is the JSON file plus its lock file. Every access takes an
// exclusive flock, so processes sharing the data directory see one
// consistent catalog.
type catalog struct {
	dir string
}

func (c catalog) path() string { return filepath.Join(c.dir, "catalog.json") }

// locked runs fn with the catalog file read, and writes it back
// atomically (temporary file, fsync, rename) when write is true.
func (c catalog) locked(write bool, fn func(*catalogFile) error) error {
	lf, err := os.OpenFile(filepath.Join(c.dir, "catalog.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("snapshot: open catalog lock: %w", err)
	}
	defer lf.Close()

	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("snapshot: lock catalog: %w", err)
	}

	var cf catalogFile
	b, err := os.ReadFile(c.path())
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("snapshot: read catalog: %w", err)
	default:
		if err := json.Unmarshal(b, &cf); err != nil {
			return fmt.Errorf("snapshot: catalog %s is corrupt: %w", c.path(), err)
		}
	}

	if err := fn(&cf); err != nil {
		return err
	}

	if !write {
		return nil
	}

	cf.Version = 1
	sort.Slice(cf.Snapshots, func(i, j int) bool { return cf.Snapshots[i].ID < cf.Snapshots[j].ID })

	out, err := json.MarshalIndent(cf, "", "  ")
	if err != nil {
		return fmt.Errorf("snapshot: encode catalog: %w", err)
	}

	return writeAtomic(c.path(), out)
}

// writeAtomic replaces path with data so readers see the old or the new
// file, never a part.
func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"

	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("snapshot: write %s: %w", tmp, err)
	}

	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}

	if cerr := f.Close(); err == nil {
		err = cerr
	}

	if err != nil {
		return fmt.Errorf("snapshot: write %s: %w", tmp, err)
	}

	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("snapshot: replace %s: %w", path, err)
	}

	return nil
}

// put inserts or replaces s by ID.
func (cf *catalogFile) put(s Snapshot) {
	for i := range cf.Snapshots {
		if cf.Snapshots[i].ID == s.ID {
			cf.Snapshots[i] = s
			return
		}
	}

	cf.Snapshots = append(cf.Snapshots, s)
}

func (cf *catalogFile) get(id string) (Snapshot, bool) {
	for _, s := range cf.Snapshots {
		if s.ID == id {
			return s, true
		}
	}

	return Snapshot{}, false
}

func (cf *catalogFile) remove(id string) {
	out := cf.Snapshots[:0]
	for _, s := range cf.Snapshots {
		if s.ID != id {
			out = append(out, s)
		}
	}

	cf.Snapshots = out
}
