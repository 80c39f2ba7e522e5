package instance

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgtide/pgtide/internal/instance/pgproc"
)

const testMemory = 256 << 20

// requireRoot fails the test unless it runs as root: cgroups are
// created under the test's own cgroup, which needs root here.
func requireRoot(t *testing.T) {
	t.Helper()

	if os.Geteuid() != 0 {
		t.Fatal("memory limit tests need root to create cgroups: run them with sudo")
	}
}

// newMemoryLocal returns a Local driver with a testMemory limit, closed
// at the end of the test.
func newMemoryLocal(t *testing.T) *Local {
	t.Helper()
	requireRoot(t)

	drv, err := NewLocal(LocalConfig{DataDir: getFixture(t).dataDir, Memory: testMemory})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { drv.Close() })

	return drv
}

// startInstance starts instance id of the fixture's snapshot on drv and
// stops it at the end of the test.
func startInstance(t *testing.T, drv *Local, id string) Endpoint {
	t.Helper()

	f := getFixture(t)
	ep, err := drv.Start(t.Context(), Spec{
		ID: id, Dataset: "shop", SnapshotID: f.snap.ID, SnapshotDir: f.snap.DataDir,
		Database: "shop", Role: "pgtide_analyst", Superuser: "postgres",
	})
	if err != nil {
		t.Fatal(err)
	}

	t.Cleanup(func() { _ = drv.Stop(context.Background(), id) })

	return ep
}

// cgroupStat returns the number after key in the flat-keyed cgroup file
// name ("oom_kill 1"), or the whole file as a number when key is "".
func cgroupStat(t *testing.T, dir, name, key string) int64 {
	t.Helper()

	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}

	text := strings.TrimSpace(string(b))
	for line := range strings.SplitSeq(text, "\n") {
		k, v, ok := strings.Cut(line, " ")
		if key == "" {
			v, ok = text, true
		} else if !ok || k != key {
			continue
		}

		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			t.Fatalf("%s/%s: %q is not a number", dir, name, v)
		}

		return n
	}

	t.Fatalf("%s/%s has no %q: %s", dir, name, key, text)
	return 0
}

// cgroupHas reports whether pid is in the cgroup dir.
func cgroupHas(t *testing.T, dir string, pid int) bool {
	t.Helper()

	pids, err := cgroupPIDs(dir)
	if err != nil {
		t.Fatal(err)
	}

	return slices.Contains(pids, pid)
}

func oomScoreAdj(t *testing.T, pid int) string {
	t.Helper()

	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/oom_score_adj", pid))
	if err != nil {
		t.Fatal(err)
	}

	return strings.TrimSpace(string(b))
}

// TestLocalMemoryLimit boots an instance with a 256 MiB limit, checks
// that its processes are in its cgroup with that limit, and runs a query
// that needs about 512 MiB: the kernel kills the backend inside the
// cgroup, the postmaster restarts the others and serves again. Stop
// removes the cgroup.
func TestLocalMemoryLimit(t *testing.T) {
	drv := newMemoryLocal(t)
	ep := startInstance(t, drv, "mem-1")
	cg := drv.cg.path("mem-1")

	limitFile, peakFile, eventsFile := "memory.limit_in_bytes", "memory.max_usage_in_bytes", "memory.oom_control"
	if drv.cg.version == 2 {
		limitFile, peakFile, eventsFile = "memory.max", "memory.peak", "memory.events"
	}

	if got := cgroupStat(t, cg, limitFile, ""); got != testMemory {
		t.Fatalf("%s/%s = %d, want %d", cg, limitFile, got, testMemory)
	}

	postmaster := pgproc.PostmasterPID(filepath.Join(drv.dir, "mem-1", "data"))
	if !cgroupHas(t, cg, postmaster) {
		t.Fatalf("postmaster %d is not in cgroup %s", postmaster, cg)
	}

	if got, want := oomScoreAdj(t, postmaster), oomScoreAdj(t, os.Getpid()); got != want {
		t.Errorf("postmaster oom_score_adj = %s, want %s (pgtide's own)", got, want)
	}

	conn, err := pgx.Connect(t.Context(), ep.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())

	var (
		backend       int
		sharedBuffers string
	)
	if err := conn.QueryRow(t.Context(), "SELECT pg_backend_pid(), current_setting('shared_buffers')").
		Scan(&backend, &sharedBuffers); err != nil {
		t.Fatal(err)
	}

	if !cgroupHas(t, cg, backend) {
		t.Fatalf("backend %d is not in cgroup %s", backend, cg)
	}

	if got, want := oomScoreAdj(t, backend), strconv.Itoa(childOOMScoreAdj); got != want {
		t.Errorf("backend oom_score_adj = %s, want %s", got, want)
	}

	if sharedBuffers != "64MB" {
		t.Errorf("shared_buffers = %s, want 64MB (a quarter of the limit)", sharedBuffers)
	}

	oomBefore := cgroupStat(t, cg, eventsFile, "oom_kill")

	// string_agg doubles its buffer up to 512 MiB: twice the limit.
	var n int64
	err = conn.QueryRow(t.Context(),
		"SELECT length(string_agg(repeat('x', 64 * 1024 * 1024), '')) FROM generate_series(1, 8)").Scan(&n)
	if err == nil {
		t.Fatalf("query of 512 MiB succeeded (length %d) under a 256 MiB limit", n)
	}

	if !conn.IsClosed() {
		t.Errorf("connection still open after the query failed with %v", err)
	}

	t.Logf("query over the limit: %v", err)

	if got := cgroupStat(t, cg, eventsFile, "oom_kill"); got <= oomBefore {
		t.Errorf("oom_kill count %d after the query, want more than %d", got, oomBefore)
	}

	if peak := cgroupStat(t, cg, peakFile, ""); peak > testMemory {
		t.Errorf("cgroup peak usage %d is over the limit %d", peak, testMemory)
	} else {
		t.Logf("cgroup peak usage %d MiB", peak>>20)
	}

	// The postmaster survives, reinitializes and serves again.
	var again *pgx.Conn
	waitFor(t, func() bool {
		again, err = pgx.Connect(t.Context(), ep.DSN())
		return err == nil
	})
	defer again.Close(context.Background())

	if err := again.QueryRow(t.Context(), "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		t.Fatal(err)
	}

	if !pgproc.Alive(postmaster) || !cgroupHas(t, cg, backend) {
		t.Fatalf("after the kill: postmaster %d alive %v, new backend %d in cgroup %v",
			postmaster, pgproc.Alive(postmaster), backend, cgroupHas(t, cg, backend))
	}

	again.Close(context.Background())

	if err := drv.Stop(t.Context(), "mem-1"); err != nil {
		t.Fatal(err)
	}

	if _, err := os.Stat(cg); !os.IsNotExist(err) {
		t.Fatalf("cgroup %s still exists after Stop: %v", cg, err)
	}
}

// TestReconcileRemovesOrphanCgroups leaves an instance running as a
// crash would, plus a cgroup whose instance directory is gone, and
// checks that the next driver's reconciliation removes both cgroups.
func TestReconcileRemovesOrphanCgroups(t *testing.T) {
	drv := newMemoryLocal(t)
	startInstance(t, drv, "mem-orphan")

	orphan := drv.cg.path("mem-orphan")
	postmaster := pgproc.PostmasterPID(filepath.Join(drv.dir, "mem-orphan", "data"))

	bare := drv.cg.path("mem-bare")
	if err := os.Mkdir(bare, 0o755); err != nil {
		t.Fatal(err)
	}

	drv.Close()

	next := newMemoryLocal(t)

	removed, err := next.Reconcile(t.Context())
	if err != nil {
		t.Fatal(err)
	}

	slices.Sort(removed)
	if !slices.Equal(removed, []string{"mem-bare", "mem-orphan"}) {
		t.Errorf("Reconcile removed %v, want [mem-bare mem-orphan]", removed)
	}

	if pgproc.Alive(postmaster) {
		t.Errorf("orphan postmaster %d still alive", postmaster)
	}

	for _, dir := range []string{orphan, bare} {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("orphan cgroup %s still exists: %v", dir, err)
		}
	}

	base := next.cg.base
	next.Close()

	if _, err := os.Stat(base); !os.IsNotExist(err) {
		t.Errorf("base cgroup %s still exists after Close: %v", base, err)
	}
}

// TestLocalCgroupV2Placement starts an instance inside a cgroup v2
// without a memory limit: on machines whose memory controller is on v1
// only, this still checks the clone3 placement of the postmaster.
func TestLocalCgroupV2Placement(t *testing.T) {
	requireRoot(t)

	mountinfo, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}

	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}

	v2Path, _ := parseSelfCgroup(string(self))

	var parent string
	for _, m := range parseMountinfo(string(mountinfo)) {
		if m.v2 {
			if parent, err = cgroupDir(m, v2Path); err != nil {
				t.Fatal(err)
			}
		}
	}

	if parent == "" {
		t.Fatal("no cgroup2 file system mounted: mount one with `mount -t cgroup2 none /sys/fs/cgroup/unified`")
	}

	drv, err := NewLocal(LocalConfig{DataDir: getFixture(t).dataDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { drv.Close() })

	uid, gid, err := serverUserIDs()
	if err != nil {
		t.Fatal(err)
	}

	drv.cg = &cgroups{version: 2, base: filepath.Join(parent, cgroupBaseName(t.TempDir())), uid: uid, gid: gid}
	if err := drv.cg.makeBase(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drv.cg.close)

	ep := startInstance(t, drv, "v2-1")
	cg := drv.cg.path("v2-1")

	postmaster := pgproc.PostmasterPID(filepath.Join(drv.dir, "v2-1", "data"))
	if !cgroupHas(t, cg, postmaster) {
		t.Fatalf("postmaster %d is not in cgroup %s", postmaster, cg)
	}

	if got := queryEmail(t, ep); got != "user1@corp.example" {
		t.Fatalf("email = %q through an instance in a cgroup v2", got)
	}

	if err := drv.Stop(t.Context(), "v2-1"); err != nil {
		t.Fatal(err)
	}

	if _, err := os.Stat(cg); !os.IsNotExist(err) {
		t.Fatalf("cgroup %s still exists after Stop: %v", cg, err)
	}
}
