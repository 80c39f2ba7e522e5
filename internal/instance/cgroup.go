package instance

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pgtide/pgtide/internal/instance/pgproc"
)

// ErrNoMemoryCgroup is returned by [NewLocal] when a memory limit is
// configured and no cgroup memory controller can enforce it. The error
// wrapping it says what was tried and why it did not work.
var ErrNoMemoryCgroup = errors.New("instance: no usable cgroup memory controller for the memory limit")

// cgroupRemoveTimeout bounds how long removing an instance's cgroup
// waits for its processes to go.
const cgroupRemoveTimeout = 5 * time.Second

// childOOMScoreAdj is the OOM score adjustment of an instance's
// processes other than the postmaster. Raised above the postmaster's,
// it makes the kernel pick a backend rather than the postmaster when the
// cgroup runs out of memory (killing the postmaster would end the
// instance instead of one session). Raising needs no privilege, unlike
// lowering the postmaster's to -1000 as the PostgreSQL manual suggests,
// which needs CAP_SYS_RESOURCE (missing in many containers).
const childOOMScoreAdj = 500

// v1JoinScript is the wrapper that starts the postmaster inside a cgroup
// v1: it writes its own pid to the cgroup's cgroup.procs ($0), then
// execs the server ("$@") under the same pid.
const v1JoinScript = `echo $$ >"$0" && exec "$@"`

// cgroups makes one memory cgroup per instance below base:
// <parent>/pgtide-<hash of the instances directory>, where parent is the
// cgroup pgtide runs in (v1, or v2 in the root cgroup) or, on v2, its
// parent (see v2Parent). Instances thus stay under the limits of the
// cgroups above pgtide, and two data directories never see each
// other's cgroups. It is immutable and safe for concurrent use.
type cgroups struct {
	// version is 1 (a v1 memory hierarchy) or 2 (the unified hierarchy).
	version int

	// base holds the instances' cgroups, one directory per instance ID.
	base string

	// limit is the memory limit of each instance in bytes. Zero places
	// processes without limiting them.
	limit int64

	// uid and gid own a v1 cgroup.procs while the server user joins it;
	// -1 when pgtide is not root and the server runs as pgtide's user.
	uid, gid int
}

// cgroupMount is one cgroup file system from /proc/self/mountinfo.
type cgroupMount struct {
	root  string // the hierarchy path mounted
	point string // where it is mounted
	v2    bool
	opts  []string // super options: v1 controller names
}

// detectCgroups finds a cgroup memory controller for instances of the
// instances directory dir: cgroup v2 when the memory controller is
// enabled for the children of the cgroup pgtide runs in or of its
// parent, else a cgroup v1 memory hierarchy. It creates the base cgroup. The error wraps
// [ErrNoMemoryCgroup] when neither works.
func detectCgroups(dir string, limit int64) (*cgroups, error) {
	mountinfo, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("%w: read mounts: %v", ErrNoMemoryCgroup, err)
	}

	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("%w: read /proc/self/cgroup: %v", ErrNoMemoryCgroup, err)
	}

	c, err := pickCgroups(string(mountinfo), string(self), cgroupBaseName(dir), limit)
	if err != nil {
		return nil, err
	}

	c.uid, c.gid = -1, -1
	if os.Geteuid() == 0 {
		if c.uid, c.gid, err = serverUserIDs(); err != nil {
			return nil, err
		}
	}

	return c, nil
}

// cgroupBaseName names the base cgroup of an instances directory.
func cgroupBaseName(dir string) string {
	sum := sha256.Sum256([]byte(dir))
	return "pgtide-" + hex.EncodeToString(sum[:4])
}

// pickCgroups chooses the hierarchy from the text of /proc/self/mountinfo
// and /proc/self/cgroup and creates the base cgroup name in it.
func pickCgroups(mountinfo, self, name string, limit int64) (*cgroups, error) {
	mounts := parseMountinfo(mountinfo)
	v2Path, v1Path := parseSelfCgroup(self)

	var reasons []string
	for _, m := range mounts {
		if !m.v2 {
			continue
		}

		parent, err := v2Parent(m, v2Path)
		if err == nil {
			c := &cgroups{version: 2, base: filepath.Join(parent, name), limit: limit}
			if err = c.makeBase(); err == nil {
				return c, nil
			}
		}

		reasons = append(reasons, fmt.Sprintf("cgroup v2 at %s: %v", m.point, err))
	}

	for _, m := range mounts {
		if m.v2 || !slices.Contains(m.opts, "memory") {
			continue
		}

		parent, err := cgroupDir(m, v1Path)
		if err == nil {
			c := &cgroups{version: 1, base: filepath.Join(parent, name), limit: limit}
			if err = c.makeBase(); err == nil {
				return c, nil
			}
		}

		reasons = append(reasons, fmt.Sprintf("cgroup v1 memory at %s: %v", m.point, err))
	}

	if len(reasons) == 0 {
		reasons = append(reasons, "no cgroup file system is mounted (mount cgroup2 on /sys/fs/cgroup)")
	}

	return nil, fmt.Errorf("%w: %s", ErrNoMemoryCgroup, strings.Join(reasons, "; "))
}

// parseMountinfo returns the cgroup and cgroup2 mounts in the text of
// /proc/self/mountinfo.
func parseMountinfo(text string) []cgroupMount {
	var mounts []cgroupMount

	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		// id parent major:minor root point options [optional...] - type source super
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}

		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 3 || (g[0] != "cgroup" && g[0] != "cgroup2") {
			continue
		}

		mounts = append(mounts, cgroupMount{
			root:  unescapeMount(f[3]),
			point: unescapeMount(f[4]),
			v2:    g[0] == "cgroup2",
			opts:  strings.Split(g[2], ","),
		})
	}

	return mounts
}

// unescapeMount undoes the octal escapes (\040 for a space) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}

	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3

				continue
			}
		}

		b.WriteByte(s[i])
	}

	return b.String()
}

// parseSelfCgroup returns the cgroup of this process in the unified
// hierarchy and in the v1 memory hierarchy, "" when it has none, from
// the text of /proc/self/cgroup.
func parseSelfCgroup(text string) (v2, v1Memory string) {
	for line := range strings.SplitSeq(text, "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}

		switch {
		case parts[0] == "0" && parts[1] == "":
			v2 = parts[2]
		case slices.Contains(strings.Split(parts[1], ","), "memory"):
			v1Memory = parts[2]
		}
	}

	return v2, v1Memory
}

// cgroupDir returns the directory of the cgroup at path (as in
// /proc/self/cgroup) inside mount m.
func cgroupDir(m cgroupMount, path string) (string, error) {
	if path == "" {
		return "", errors.New("this process is in no cgroup of this hierarchy")
	}

	if path == "/.." || strings.HasPrefix(path, "/../") {
		return "", fmt.Errorf("this process's cgroup %s is outside its cgroup namespace", path)
	}

	rel, err := filepath.Rel(m.root, path)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("this process's cgroup %s is not below the mounted %s", path, m.root)
	}

	dir := filepath.Join(m.point, rel)
	if _, err := os.Stat(dir); err != nil {
		return "", fmt.Errorf("this process's cgroup: %w", err)
	}

	return dir, nil
}

// v2Parent returns the v2 cgroup that instance cgroups go under: the
// cgroup at path (this process's) when the memory controller is enabled
// for its children, as in the root cgroup; else its parent when the
// controller is enabled there, as for a systemd service (in a slice, or
// with Delegate=yes in a subgroup of its own). A cgroup with processes,
// such as this process's own in most cases, cannot enable it.
func v2Parent(m cgroupMount, path string) (string, error) {
	own, err := cgroupDir(m, path)
	if err != nil {
		return "", err
	}

	if checkV2Memory(own) == nil {
		return own, nil
	}

	parent := filepath.Dir(own)
	if own != filepath.Clean(m.point) && checkV2Memory(parent) == nil {
		return parent, nil
	}

	return "", fmt.Errorf("the memory controller is enabled neither for the children of %s "+
		"nor for those of its parent (see cgroup.subtree_control; \"+memory\" can be enabled "+
		"only in a cgroup that holds no processes)", own)
}

// checkV2Memory returns an error unless the memory controller is
// enabled for the children of the v2 cgroup dir.
func checkV2Memory(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
	if err != nil {
		return err
	}

	if !slices.Contains(strings.Fields(string(b)), "memory") {
		return fmt.Errorf("memory is not in %s", filepath.Join(dir, "cgroup.subtree_control"))
	}

	return nil
}

// makeBase creates the base cgroup and, on v2, enables the memory
// controller for its children.
func (c *cgroups) makeBase() error {
	if err := os.Mkdir(c.base, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("create cgroup: %w", err)
	}

	if c.version == 1 || c.limit == 0 {
		return nil
	}

	if err := checkV2Memory(c.base); err == nil {
		return nil
	}

	if err := writeCgroupFile(c.base, "cgroup.subtree_control", "+memory"); err != nil {
		_ = syscall.Rmdir(c.base)
		return err
	}

	return nil
}

// path returns the directory of instance id's cgroup.
func (c *cgroups) path(id string) string {
	return filepath.Join(c.base, id)
}

// create makes the cgroup of instance id and sets its limit.
func (c *cgroups) create(id string) (*cgroup, error) {
	g := &cgroup{dir: c.path(id), version: c.version, uid: c.uid, gid: c.gid}
	if err := os.Mkdir(g.dir, 0o755); err != nil {
		return nil, fmt.Errorf("instance: create cgroup: %w", err)
	}

	if err := c.setLimit(g.dir); err != nil {
		_ = removeCgroup(g.dir)
		return nil, fmt.Errorf("instance: cgroup %s: %w", g.dir, err)
	}

	return g, nil
}

// setLimit writes the memory limit, with swap off, into the cgroup dir.
func (c *cgroups) setLimit(dir string) error {
	if c.limit == 0 {
		return nil
	}

	limit := strconv.FormatInt(c.limit, 10)
	if c.version == 2 {
		if err := writeCgroupFile(dir, "memory.max", limit); err != nil {
			return err
		}

		return writeCgroupFileIfExists(dir, "memory.swap.max", "0")
	}

	if err := writeCgroupFile(dir, "memory.limit_in_bytes", limit); err != nil {
		return err
	}

	// memory.memsw caps memory and swap together; present only with
	// swap accounting. Equal to the memory limit, it allows no swap.
	return writeCgroupFileIfExists(dir, "memory.memsw.limit_in_bytes", limit)
}

// children lists the names of the cgroups below base.
func (c *cgroups) children() ([]string, error) {
	entries, err := os.ReadDir(c.base)
	if err != nil {
		return nil, fmt.Errorf("instance: list cgroups: %w", err)
	}

	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}

	return names, nil
}

// close removes the base cgroup when no instance cgroup is left in it.
func (c *cgroups) close() {
	_ = syscall.Rmdir(c.base)
}

// cgroup is the cgroup of one instance being started.
type cgroup struct {
	dir      string
	version  int
	uid, gid int
	fd       *os.File // the directory, for clone3 into a v2 cgroup
}

// prepare makes cmd start inside the cgroup, before the server
// allocates anything. On cgroup v2 the child is cloned straight into it
// (clone3 with CLONE_INTO_CGROUP). Cgroup v1 has no such call: the
// command becomes /bin/sh running v1JoinScript, which moves itself in and
// execs the server under the same pid; as root, cgroup.procs is handed
// to the server user for that moment (see started). Either way every
// child of the postmaster sets its own OOM score adjustment to
// childOOMScoreAdj through PG_OOM_ADJUST_FILE.
func (g *cgroup) prepare(cmd *exec.Cmd) error {
	cmd.Env = append(cmd.Env,
		"PG_OOM_ADJUST_FILE=/proc/self/oom_score_adj",
		"PG_OOM_ADJUST_VALUE="+strconv.Itoa(childOOMScoreAdj))

	if g.version == 2 {
		fd, err := os.OpenFile(g.dir, os.O_RDONLY|syscall.O_DIRECTORY, 0)
		if err != nil {
			return fmt.Errorf("open cgroup: %w", err)
		}

		g.fd = fd
		cmd.SysProcAttr.UseCgroupFD = true
		cmd.SysProcAttr.CgroupFD = int(fd.Fd())

		return nil
	}

	procs := filepath.Join(g.dir, "cgroup.procs")
	if g.uid >= 0 {
		if err := os.Chown(procs, g.uid, g.gid); err != nil {
			return fmt.Errorf("hand %s to %s: %w", procs, pgproc.ServerUser, err)
		}
	}

	cmd.Args = append([]string{"/bin/sh", "-c", v1JoinScript, procs, cmd.Path}, cmd.Args[1:]...)
	cmd.Path = "/bin/sh"

	return nil
}

// started runs once the postmaster is up: on cgroup v1 it takes
// cgroup.procs back from the server user, so that no process of that
// user can move itself in later.
func (g *cgroup) started() error {
	if g.version == 1 && g.uid >= 0 {
		return os.Chown(filepath.Join(g.dir, "cgroup.procs"), 0, 0)
	}

	return nil
}

// close releases the cgroup's directory descriptor.
func (g *cgroup) close() {
	if g.fd != nil {
		g.fd.Close()
		g.fd = nil
	}
}

// cgroupPIDs returns the processes in the cgroup dir.
func cgroupPIDs(dir string) ([]int, error) {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil, err
	}

	var pids []int
	for f := range strings.FieldsSeq(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}

	return pids, nil
}

// removeCgroup removes the cgroup dir, killing (SIGKILL) the processes
// still in it. A cgroup that does not exist is not an error.
func removeCgroup(dir string) error {
	deadline := time.Now().Add(cgroupRemoveTimeout)
	for {
		err := syscall.Rmdir(dir)
		if err == nil || errors.Is(err, syscall.ENOENT) {
			return nil
		}

		if !errors.Is(err, syscall.EBUSY) {
			return fmt.Errorf("instance: remove cgroup %s: %w", dir, err)
		}

		if time.Now().After(deadline) {
			return fmt.Errorf("instance: remove cgroup %s: processes still in it after %s: %w",
				dir, cgroupRemoveTimeout, err)
		}

		// cgroup.kill (Linux 5.14, v2 only) ends every process at once;
		// otherwise each pid is signalled.
		if !exists(filepath.Join(dir, "cgroup.kill")) || writeCgroupFile(dir, "cgroup.kill", "1") != nil {
			pids, _ := cgroupPIDs(dir)
			for _, pid := range pids {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}

		time.Sleep(10 * time.Millisecond)
	}
}

// isInstanceCgroup reports whether dir looks like the cgroup of instance
// id made by [cgroups.create], before a path read from a state file is
// used to kill processes.
func isInstanceCgroup(dir, id string) bool {
	return filepath.IsAbs(dir) && filepath.Base(dir) == id &&
		strings.HasPrefix(filepath.Base(filepath.Dir(dir)), "pgtide-") &&
		exists(filepath.Join(dir, "cgroup.procs"))
}

func writeCgroupFile(dir, name, value string) error {
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(value), 0); err != nil {
		return fmt.Errorf("write %q to %s: %w", value, path, err)
	}

	return nil
}

func writeCgroupFileIfExists(dir, name, value string) error {
	if !exists(filepath.Join(dir, name)) {
		return nil
	}

	return writeCgroupFile(dir, name, value)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// serverUserIDs returns the uid and gid of the OS user servers run as.
func serverUserIDs() (uid, gid int, err error) {
	u, err := user.Lookup(pgproc.ServerUser)
	if err != nil {
		return 0, 0, fmt.Errorf("instance: look up OS user %s: %w", pgproc.ServerUser, err)
	}

	if uid, err = strconv.Atoi(u.Uid); err == nil {
		gid, err = strconv.Atoi(u.Gid)
	}

	if err != nil {
		return 0, 0, fmt.Errorf("instance: ids of OS user %s: %w", pgproc.ServerUser, err)
	}

	return uid, gid, nil
}
