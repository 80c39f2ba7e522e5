package pgtest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ErrBinariesNotFound is returned by [FindBinDir] (and so by
// [StartCluster]) when no directory holding the PostgreSQL server binaries
// can be found. Its text is a single line that says how to install them.
var ErrBinariesNotFound = errors.New("PostgreSQL server binaries not found (initdb): " +
	"install them with `apt-get install postgresql` or put their bin directory on PATH")

// requiredBinaries are the programs a cluster cannot start without.
var requiredBinaries = []string{"initdb", "postgres", "pg_ctl"}

// debianBinGlob matches the per-version bin directories of Debian's
// postgresql-common layout.
const debianBinGlob = "/usr/lib/postgresql/*/bin"

// FindBinDir returns the directory that holds the PostgreSQL server
// binaries initdb, postgres and pg_ctl. It tries, in order, the output of
// `pg_config --bindir`, the directory of initdb found on PATH (following a
// symbolic link when the link's own directory lacks the other programs),
// and the /usr/lib/postgresql/<version>/bin directory with the highest
// version number. It returns [ErrBinariesNotFound] when none of them
// holds all three programs.
func FindBinDir() (string, error) {
	if dir := pgConfigBinDir(); dir != "" && hasBinaries(dir) {
		return dir, nil
	}

	if dir := pathBinDir(); dir != "" {
		return dir, nil
	}

	if dir := newestDebianBinDir(); dir != "" {
		return dir, nil
	}

	return "", ErrBinariesNotFound
}

// pgConfigBinDir asks pg_config for its bin directory; "" when pg_config
// is missing or fails.
func pgConfigBinDir() string {
	path, err := exec.LookPath("pg_config")
	if err != nil {
		return ""
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	out, err := exec.CommandContext(ctx, path, "--bindir").Output()
	if err != nil {
		return ""
	}

	return strings.TrimSpace(string(out))
}

// pathBinDir finds initdb on PATH and returns the directory holding it
// and its companions, looking through a symbolic link when needed.
func pathBinDir() string {
	path, err := exec.LookPath("initdb")
	if err != nil {
		return ""
	}

	abs, err := filepath.Abs(path)
	if err != nil {
		return ""
	}

	if dir := filepath.Dir(abs); hasBinaries(dir) {
		return dir
	}

	// Distributions often link only some programs into /usr/bin or
	// /usr/local/bin; the link target's directory has all of them.
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return ""
	}

	if dir := filepath.Dir(real); hasBinaries(dir) {
		return dir
	}

	return ""
}

// newestDebianBinDir returns the complete bin directory under
// /usr/lib/postgresql with the highest numeric version, or "".
func newestDebianBinDir() string {
	dirs, err := filepath.Glob(debianBinGlob)
	if err != nil {
		return ""
	}

	sort.SliceStable(dirs, func(i, j int) bool {
		return versionLess(versionOf(dirs[j]), versionOf(dirs[i]))
	})

	for _, dir := range dirs {
		if hasBinaries(dir) {
			return dir
		}
	}

	return ""
}

// versionOf extracts the numeric components of the version directory in
// /usr/lib/postgresql/<version>/bin, e.g. [9 6] for "9.6". Components
// that are not numbers count as -1 so that they sort last.
func versionOf(binDir string) []int {
	name := filepath.Base(filepath.Dir(binDir))

	var parts []int
	for _, field := range strings.Split(name, ".") {
		n, err := strconv.Atoi(field)
		if err != nil {
			n = -1
		}

		parts = append(parts, n)
	}

	return parts
}

// versionLess reports whether version a sorts before version b.
func versionLess(a, b []int) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}

	return len(a) < len(b)
}

// hasBinaries reports whether dir holds every required server program as
// an executable regular file.
func hasBinaries(dir string) bool {
	for _, name := range requiredBinaries {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return false
		}
	}

	return true
}
