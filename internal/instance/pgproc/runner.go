package pgproc

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// ServerUser is the OS account server programs run as when the current
// process is root.
const ServerUser = "postgres"

// ErrBinariesNotFound is returned by [NewRunner] when no directory holds
// the PostgreSQL server programs.
var ErrBinariesNotFound = errors.New("pgproc: PostgreSQL server binaries not found: " +
	"install them with `apt-get install postgresql` or set the bin directory")

// Runner starts PostgreSQL programs from one bin directory, as the OS user
// postgres when the process is root. A Runner is safe for concurrent use.
type Runner struct {
	binDir string

	// uid and gid are the server user's ids; asRoot is false when the
	// process is not root and programs run as the current user.
	asRoot bool
	uid    uint32
	gid    uint32
	home   string
}

// NewRunner returns a Runner for the programs in binDir. An empty binDir
// means the newest /usr/lib/postgresql/<version>/bin, or the directory of
// pg_ctl on PATH. It returns [ErrBinariesNotFound] when the programs are
// missing and an error naming the OS user when running as root without
// the postgres account.
func NewRunner(binDir string) (*Runner, error) {
	if binDir == "" {
		binDir = findBinDir()
	}

	if binDir == "" {
		return nil, ErrBinariesNotFound
	}

	if _, err := os.Stat(filepath.Join(binDir, "postgres")); err != nil {
		return nil, fmt.Errorf("%w (looked in %s)", ErrBinariesNotFound, binDir)
	}

	r := &Runner{binDir: binDir}
	if os.Geteuid() != 0 {
		return r, nil
	}

	u, err := user.Lookup(ServerUser)
	if err != nil {
		return nil, fmt.Errorf("pgproc: running as root needs OS user %q: "+
			"create it with `useradd --system %s`: %w", ServerUser, ServerUser, err)
	}

	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("pgproc: parse uid of %s: %w", ServerUser, err)
	}

	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("pgproc: parse gid of %s: %w", ServerUser, err)
	}

	r.asRoot, r.uid, r.gid, r.home = true, uint32(uid), uint32(gid), u.HomeDir

	return r, nil
}

// findBinDir returns the newest Debian-style server bin directory, else
// the directory of pg_ctl on PATH, else "".
func findBinDir() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })

	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d
		}
	}

	if p, err := exec.LookPath("pg_ctl"); err == nil {
		return filepath.Dir(p)
	}

	return ""
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// BinDir returns the directory the programs come from.
func (r *Runner) BinDir() string { return r.binDir }

// Command returns a command running the program name from the bin
// directory (a name holding a path separator is used as is) in a process
// group of its own, as the server user when root. The environment is the
// current one without PG* variables, plus extra.
func (r *Runner) Command(ctx context.Context, name string, extraEnv []string, args ...string) *exec.Cmd {
	if !strings.ContainsRune(name, os.PathSeparator) {
		name = filepath.Join(r.binDir, name)
	}

	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = r.env(extraEnv)
	cmd.SysProcAttr = r.sysProcAttr()

	return cmd
}

func (r *Runner) sysProcAttr() *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Setpgid: true}
	if r.asRoot {
		// No supplementary groups: the child drops root's.
		attr.Credential = &syscall.Credential{Uid: r.uid, Gid: r.gid}
	}

	return attr
}

func (r *Runner) env(extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		key, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(key, "PG") {
			continue
		}

		if r.asRoot && (key == "HOME" || key == "USER" || key == "LOGNAME") {
			continue
		}

		env = append(env, kv)
	}

	if r.asRoot {
		env = append(env, "HOME="+r.home, "USER="+ServerUser, "LOGNAME="+ServerUser)
	}

	return append(env, extra...)
}

// Chown hands path, and everything below it when it is a directory, to
// the server user. It does nothing when the process is not root.
func (r *Runner) Chown(path string) error {
	if !r.asRoot {
		return nil
	}

	err := filepath.WalkDir(path, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}

		return os.Lchown(p, int(r.uid), int(r.gid))
	})
	if err != nil {
		return fmt.Errorf("pgproc: chown %s to %s: %w", path, ServerUser, err)
	}

	return nil
}

// Run runs the program name to completion and returns an error holding
// the end of its combined output when it fails.
func (r *Runner) Run(ctx context.Context, name string, extraEnv []string, args ...string) error {
	out, err := r.Command(ctx, name, extraEnv, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgproc: %s: %w: %s", name, err, tail(string(out), 2000))
	}

	return nil
}

// tail returns at most the last n bytes of s, trimmed.
func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}

	return s
}
