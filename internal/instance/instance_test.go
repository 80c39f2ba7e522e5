package instance

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgtide/pgtide/internal/instance/pgproc"
	"github.com/pgtide/pgtide/internal/pgtest"
	"github.com/pgtide/pgtide/internal/snapshot"
)

// fixture is one source cluster and one masked snapshot of it, shared by
// the tests of this package.
type fixture struct {
	dataDir string
	snaps   *snapshot.Manager
	snap    snapshot.Snapshot
}

var (
	fixOnce sync.Once
	fix     fixture
	fixErr  error
	fixStop func()
)

func TestMain(m *testing.M) {
	code := m.Run()
	if fixStop != nil {
		fixStop()
	}

	os.Exit(code)
}

func getFixture(t *testing.T) fixture {
	t.Helper()

	fixOnce.Do(func() {
		ctx := context.Background()

		src, err := pgtest.StartCluster(ctx, pgtest.Options{})
		if err != nil {
			fixErr = err
			return
		}

		dir, _ := os.MkdirTemp("", "pgtide-inst-")
		_ = os.Chmod(dir, 0o755)
		fixStop = func() {
			_ = src.Stop(context.Background())
			_ = os.RemoveAll(dir)
		}

		if err := src.CreateDatabase(ctx, "shop"); err != nil {
			fixErr = err
			return
		}

		if err := src.Exec(ctx, "shop", `CREATE TABLE people (id int PRIMARY KEY, email text);
			INSERT INTO people VALUES (1, 'secret.person@corp.example')`); err != nil {
			fixErr = err
			return
		}

		m, err := snapshot.New(snapshot.Config{DataDir: dir, Datasets: map[string]snapshot.Dataset{
			"shop": {Source: src.DSN("shop"), Rules: []snapshot.Rule{
				{Table: "people", Column: "email", Method: snapshot.MethodEmail, Key: "id"},
			}},
		}})
		if err != nil {
			fixErr = err
			return
		}

		snap, err := m.Create(ctx, "shop")
		fix, fixErr = fixture{dataDir: dir, snaps: m, snap: snap}, err
	})

	if fixErr != nil {
		t.Fatal(fixErr)
	}

	return fix
}

// newController returns a controller on a local driver, closed at the
// end of the test.
func newController(t *testing.T, cfg Config) (*Controller, *Local) {
	t.Helper()

	f := getFixture(t)

	drv, err := NewLocal(LocalConfig{DataDir: f.dataDir})
	if err != nil {
		t.Fatal(err)
	}

	cfg.Driver, cfg.Snapshots = drv, f.snaps

	c, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}

	t.Cleanup(func() {
		if err := c.Close(context.Background()); err != nil {
			t.Error(err)
		}

		drv.Close()
	})

	return c, drv
}

func queryEmail(t *testing.T, ep Endpoint) string {
	t.Helper()

	conn, err := pgx.Connect(t.Context(), ep.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())

	var email string
	if err := conn.QueryRow(t.Context(), "SELECT email FROM people WHERE id = 1").Scan(&email); err != nil {
		t.Fatal(err)
	}

	return email
}

func TestAcquireSharesOneBootAndStopsWhenIdle(t *testing.T) {
	c, _ := newController(t, Config{IdleTimeout: 200 * time.Millisecond, StartupScripts: map[string][]string{
		"shop": {"CREATE TABLE boot_marker AS SELECT 1 AS x"},
	}})

	var wg sync.WaitGroup
	leases := make([]*Lease, 4)
	errs := make([]error, 4)
	for i := range leases {
		wg.Go(func() {
			leases[i], errs[i] = c.Acquire(t.Context(), Request{User: "ann", Dataset: "shop"})
		})
	}
	wg.Wait()

	for i, err := range errs {
		if err != nil {
			t.Fatalf("Acquire #%d: %v", i, err)
		}

		if leases[i].InstanceID != leases[0].InstanceID {
			t.Fatalf("concurrent Acquire booted two instances: %s and %s", leases[0].InstanceID, leases[i].InstanceID)
		}
	}

	if got := queryEmail(t, leases[0].Endpoint); got != "user1@corp.example" {
		t.Fatalf("masked email = %q, want user1@corp.example", got)
	}

	if st := c.Status(); len(st) != 1 || st[0].Conns != 4 || st[0].State != "ready" {
		t.Fatalf("Status = %+v, want one ready instance with 4 connections", st)
	}

	first := leases[0].InstanceID
	for _, l := range leases {
		l.Release()
	}

	waitFor(t, func() bool { return len(c.Status()) == 0 })
	waitFor(t, func() bool {
		_, err := os.Stat(filepath.Join(getFixture(t).dataDir, "instances", first))
		return os.IsNotExist(err)
	})

	l, err := c.Acquire(t.Context(), Request{User: "ann", Dataset: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()

	if l.InstanceID == first {
		t.Fatalf("Acquire after idle stop reused instance %s", first)
	}
}

func TestAcquireLimits(t *testing.T) {
	c, _ := newController(t, Config{MaxInstances: 1, Private: true})

	l, err := c.Acquire(t.Context(), Request{User: "ann", Dataset: "shop"})
	if err != nil {
		t.Fatal(err)
	}

	var le *LimitError
	if _, err := c.Acquire(t.Context(), Request{User: "bob", Dataset: "shop"}); !errors.As(err, &le) || le.Limit != "max_instances" {
		t.Fatalf("Acquire over max_instances = %v, want a LimitError", err)
	}

	// An idle instance makes room.
	l.Release()

	l2, err := c.Acquire(t.Context(), Request{User: "bob", Dataset: "shop"})
	if err != nil {
		t.Fatalf("Acquire with an idle instance to evict: %v", err)
	}
	l2.Release()

	if _, err := c.Acquire(t.Context(), Request{User: "ann", Dataset: "nosuch"}); !errors.Is(err, snapshot.ErrUnknownDataset) {
		t.Fatalf("Acquire(nosuch) = %v, want ErrUnknownDataset", err)
	}

	if _, err := c.Acquire(t.Context(), Request{User: "ann", Dataset: "shop", Snapshot: "19990101-000000"}); !errors.Is(err, snapshot.ErrNotFound) {
		t.Fatalf("Acquire(unknown snapshot) = %v, want ErrNotFound", err)
	}
}

func TestReconcileRemovesOrphans(t *testing.T) {
	f := getFixture(t)

	drv, err := NewLocal(LocalConfig{DataDir: f.dataDir})
	if err != nil {
		t.Fatal(err)
	}

	ep, err := drv.Start(t.Context(), Spec{
		ID: "orphan-1", Dataset: "shop", SnapshotID: f.snap.ID, SnapshotDir: f.snap.DataDir,
		Database: "shop", Role: "pgtide_analyst", Superuser: "postgres",
	})
	if err != nil {
		t.Fatal(err)
	}

	if used := SnapshotsInUse(f.dataDir); !used[f.snap.ID] {
		t.Fatalf("SnapshotsInUse = %v, want %s", used, f.snap.ID)
	}

	// Forget the instance as a crash would: the lock goes, the server
	// stays.
	pid := pgproc.PostmasterPID(filepath.Join(f.dataDir, "instances", "orphan-1", "data"))
	drv.Close()

	newController(t, Config{})

	if pgproc.Alive(pid) {
		t.Fatalf("orphan postmaster %d still alive after reconcile", pid)
	}

	if _, err := os.Stat(filepath.Join(f.dataDir, "instances", "orphan-1")); !os.IsNotExist(err) {
		t.Fatalf("orphan directory still exists: %v", err)
	}

	if _, err := os.Stat(ep.Host); !os.IsNotExist(err) {
		t.Fatalf("orphan socket directory still exists: %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()

	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 30s")
		}

		time.Sleep(20 * time.Millisecond)
	}
}
