package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// lockFileName is the file in the data directory that a process holding
// the embedded change log keeps locked.
const lockFileName = "pgtide.lock"

// errDataDirLocked is matched by the error of lockDataDir when another
// process (or another open log in this process) holds the lock.
var errDataDirLocked = errors.New("data directory in use")

// dirLock is an exclusive lock on a data directory. The embedded NATS
// server does not lock its store, and two servers writing one store would
// corrupt it, so every pgtide process that opens the store takes this lock
// first.
type dirLock struct {
	f *os.File
}

// lockDataDir creates dir if needed and locks it. When the lock is taken
// it returns an error matching errDataDirLocked that names the holder's
// process id when known.
func lockDataDir(dir string) (*dirLock, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	path := filepath.Join(dir, lockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}

	locked, err := tryLock(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if !locked {
		holder := readHolder(f)
		f.Close()
		return nil, fmt.Errorf("%w: %s is locked by %s", errDataDirLocked, dir, holder)
	}

	// Record the holder for the message above; the lock, not the file's
	// content, is what counts.
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &dirLock{f: f}, nil
}

func readHolder(f *os.File) string {
	buf := make([]byte, 32)
	n, _ := f.ReadAt(buf, 0)
	pid := strings.TrimSpace(string(buf[:n]))
	if _, err := strconv.Atoi(pid); err != nil {
		return "another pgtide process"
	}
	return "pgtide process " + pid
}

// release unlocks the directory. The lock file stays.
func (l *dirLock) release() {
	if l == nil || l.f == nil {
		return
	}
	unlock(l.f)
	l.f.Close()
	l.f = nil
}
