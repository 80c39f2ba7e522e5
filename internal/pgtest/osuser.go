package pgtest

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// serverUserName is the OS user that runs the server when we are root.
const serverUserName = "postgres"

// osUser is the account that server programs run as. A nil *osUser means
// "the current user": no credential switch and no chown.
type osUser struct {
	name string
	home string
	uid  uint32
	gid  uint32
}

// serverUser returns the account to run server programs as: nil when the
// process is not root, the postgres user when it is.
func serverUser() (*osUser, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}

	u, err := user.Lookup(serverUserName)
	if err != nil {
		return nil, fmt.Errorf("pgtest: running as root needs OS user %q to run the server: "+
			"create it with `useradd --system %s`: %w", serverUserName, serverUserName, err)
	}

	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("pgtest: parse uid %q of OS user %q: %w", u.Uid, u.Username, err)
	}

	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("pgtest: parse gid %q of OS user %q: %w", u.Gid, u.Username, err)
	}

	return &osUser{name: u.Username, home: u.HomeDir, uid: uint32(uid), gid: uint32(gid)}, nil
}

// chown hands path to the user; a no-op for the current user.
func (u *osUser) chown(path string) error {
	if u == nil {
		return nil
	}

	if err := os.Chown(path, int(u.uid), int(u.gid)); err != nil {
		return fmt.Errorf("pgtest: chown %s to OS user %s: %w", path, u.name, err)
	}

	return nil
}

// apply makes cmd run as the user and, with ownGroup, in a new process
// group of its own.
func (u *osUser) apply(cmd *exec.Cmd, ownGroup bool) {
	attr := &syscall.SysProcAttr{Setpgid: ownGroup}
	if u != nil {
		// Groups stays empty: the child drops root's supplementary groups.
		attr.Credential = &syscall.Credential{Uid: u.uid, Gid: u.gid}
	}

	cmd.SysProcAttr = attr
}

// checkTraversable returns an error unless the user can search (execute)
// every directory from the root down to dir, which the server needs to
// reach its data and socket directories. A nil user can always traverse.
func (u *osUser) checkTraversable(dir string) error {
	if u == nil {
		return nil
	}

	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("pgtest: resolve %s: %w", dir, err)
	}

	for p := abs; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("pgtest: stat %s: %w", p, err)
		}

		if !canSearch(fi, u.uid, u.gid) {
			return fmt.Errorf("pgtest: directory %s is not traversable by OS user %s: "+
				"use a parent directory under %s or run `chmod o+x %s`",
				p, u.name, os.TempDir(), p)
		}

		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// canSearch applies the owner/group/other execute bits of fi to uid and
// gid (supplementary groups and ACLs are ignored, which errs on the
// strict side).
func canSearch(fi os.FileInfo, uid, gid uint32) bool {
	perm := fi.Mode().Perm()

	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return perm&0o001 != 0
	}

	switch {
	case st.Uid == uid:
		return perm&0o100 != 0
	case st.Gid == gid:
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}

// env returns the environment for a program run as the user: the current
// environment without the libpq variables (PGHOST, PGPORT, PGDATA, ...),
// which would otherwise point it at some other cluster, with HOME, USER
// and LOGNAME describing the user, followed by extra.
func (u *osUser) env(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		key, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(key, "PG") {
			continue
		}

		if u != nil && (key == "HOME" || key == "USER" || key == "LOGNAME") {
			continue
		}

		env = append(env, kv)
	}

	if u != nil {
		env = append(env, "HOME="+u.home, "USER="+u.name, "LOGNAME="+u.name)
	}

	return append(env, extra...)
}
