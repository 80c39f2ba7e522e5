package cli

import (
	"fmt"
	"os"
	"path/filepath"
)

// prepareDataDir returns the absolute path of the data directory of the
// offline databases, creating it when missing. PostgreSQL programs run as
// the OS user postgres when pgtide runs as root, and that user must
// traverse the directory and its parents to reach snapshots and
// instances: the directory gets the search bit for others (not the read
// bit), and an untraversable parent is an error that says what to do.
func prepareDataDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("resolve data directory %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o711); err != nil {
		return "", fmt.Errorf("create data directory: %w", err)
	}
	if os.Geteuid() != 0 {
		return abs, nil
	}

	fi, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("data directory: %w", err)
	}
	if fi.Mode().Perm()&0o001 == 0 {
		if err := os.Chmod(abs, fi.Mode().Perm()|0o001); err != nil {
			return "", fmt.Errorf("let the postgres user traverse %s: %w", abs, err)
		}
	}

	for p := filepath.Dir(abs); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return "", fmt.Errorf("data directory parent: %w", err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return "", fmt.Errorf("the OS user postgres, which runs the offline databases' "+
				"PostgreSQL programs, cannot traverse %s (mode %04o): choose a data_dir "+
				"outside it, or allow it with chmod o+x %s", p, fi.Mode().Perm(), p)
		}
		if p == filepath.Dir(p) {
			return abs, nil
		}
	}
}
