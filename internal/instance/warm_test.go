package instance

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgtide/pgtide/internal/snapshot"
)

// bootMarker is a startup script whose table shows that the scripts ran.
var bootMarker = map[string][]string{"shop": {"CREATE TABLE boot_marker AS SELECT 1 AS x"}}

// bootCount returns how many boots c started.
func bootCount(c *Controller) int {
	c.mu.Lock()
	defer c.mu.Unlock()

	return c.boots
}

// waitWarm waits until c lists exactly n instances of snapshotID in
// state warm and returns them, sorted by ID.
func waitWarm(t *testing.T, c *Controller, snapshotID string, n int) []Status {
	t.Helper()

	var warm []Status
	waitFor(t, func() bool {
		warm = warm[:0]
		for _, st := range c.Status() {
			if st.State == "warm" && st.Warm && st.Snapshot == snapshotID {
				warm = append(warm, st)
			}
		}

		return len(warm) == n
	})

	return warm
}

// instanceByID returns the status of instance id, or false.
func instanceByID(c *Controller, id string) (Status, bool) {
	for _, st := range c.Status() {
		if st.ID == id {
			return st, true
		}
	}

	return Status{}, false
}

// assertBootMarker fails unless the startup script ran in the instance.
func assertBootMarker(t *testing.T, ep Endpoint) {
	t.Helper()

	conn, err := pgx.Connect(t.Context(), ep.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())

	var x int
	if err := conn.QueryRow(t.Context(), "SELECT x FROM boot_marker").Scan(&x); err != nil || x != 1 {
		t.Fatalf("SELECT x FROM boot_marker = %d, %v; want 1 (startup scripts ran at boot)", x, err)
	}
}

// readySnapshots returns n ready snapshots of shop, oldest first, the
// last one the newest, taking new ones when there are fewer.
func readySnapshots(t *testing.T, n int) []snapshot.Snapshot {
	t.Helper()

	f := getFixture(t)

	all, err := f.snaps.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}

	var ready []snapshot.Snapshot
	for _, s := range all {
		if s.Dataset == "shop" && s.State == snapshot.StateReady {
			ready = append(ready, s)
		}
	}

	for len(ready) < n {
		s, err := f.snaps.Create(t.Context(), "shop")
		if err != nil {
			t.Fatal(err)
		}

		ready = append(ready, s)
	}

	sort.Slice(ready, func(i, j int) bool { return ready[i].ID < ready[j].ID })

	return ready[len(ready)-n:]
}

func TestWarmSharedServesWithoutBoot(t *testing.T) {
	newest, err := getFixture(t).snaps.Resolve("shop", "")
	if err != nil {
		t.Fatal(err)
	}

	c, _ := newController(t, Config{
		Warm: 1, Datasets: []string{"shop"}, IdleTimeout: 50 * time.Millisecond, StartupScripts: bootMarker,
	})

	warm := waitWarm(t, c, newest.ID, 1)[0]
	boots := bootCount(c)

	l, err := c.Acquire(t.Context(), Request{User: "ann", Dataset: "shop"})
	if err != nil {
		t.Fatal(err)
	}

	if l.InstanceID != warm.ID || bootCount(c) != boots {
		t.Fatalf("Acquire = instance %s after %d boots; want the warm instance %s after %d boots",
			l.InstanceID, bootCount(c), warm.ID, boots)
	}

	if st, _ := instanceByID(c, warm.ID); st.State != "ready" || !st.Warm || st.Conns != 1 {
		t.Fatalf("Status of the used warm instance = %+v; want ready, warm, one connection", st)
	}

	if got := queryEmail(t, l.Endpoint); got != "user1@corp.example" {
		t.Fatalf("masked email = %q, want user1@corp.example", got)
	}

	assertBootMarker(t, l.Endpoint)
	l.Release()

	// The warm instance arms no idle timer: it outlives IdleTimeout.
	c.mu.Lock()
	armed := c.byKey[sharedKey("shop", newest.ID)].idle != nil
	c.mu.Unlock()

	if armed {
		t.Fatal("the warm instance armed an idle timer after its last connection")
	}

	time.Sleep(4 * c.cfg.IdleTimeout)

	if st, ok := instanceByID(c, warm.ID); !ok || st.State != "warm" {
		t.Fatalf("after IdleTimeout the warm instance is %+v (listed: %v); want it still warm", st, ok)
	}
}

func TestWarmPrivateSpareClaimedAndReplaced(t *testing.T) {
	newest, err := getFixture(t).snaps.Resolve("shop", "")
	if err != nil {
		t.Fatal(err)
	}

	c, _ := newController(t, Config{
		Warm: 1, Datasets: []string{"shop"}, Private: true, StartupScripts: bootMarker,
		WarmInterval: time.Hour, // only kicks refill: the test counts boots
	})

	spare := waitWarm(t, c, newest.ID, 1)[0]
	if spare.Owner != "" || bootCount(c) != 1 {
		t.Fatalf("spare = %+v after %d boots; want an unowned spare after one boot", spare, bootCount(c))
	}

	for i, user := range []string{"ann", "bob"} {
		l, err := c.Acquire(t.Context(), Request{User: user, Dataset: "shop"})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Release()

		if l.InstanceID != spare.ID {
			t.Fatalf("Acquire(%s) = instance %s; want the spare %s", user, l.InstanceID, spare.ID)
		}

		if st, _ := instanceByID(c, spare.ID); st.Owner != user || st.Warm || st.State != "ready" {
			t.Fatalf("claimed spare = %+v; want owner %s, ready, not warm", st, user)
		}

		assertBootMarker(t, l.Endpoint)

		// The pool boots a replacement; the claim itself booted nothing.
		next := waitWarm(t, c, newest.ID, 1)[0]
		if next.ID == spare.ID || bootCount(c) != i+2 {
			t.Fatalf("replacement = %s after %d boots; want a new spare after %d boots", next.ID, bootCount(c), i+2)
		}

		spare = next
	}
}

func TestWarmMovesToNewSnapshot(t *testing.T) {
	f := getFixture(t)

	for _, private := range []bool{false, true} {
		name := map[bool]string{false: "shared", true: "private"}[private]
		t.Run(name, func(t *testing.T) {
			old, err := f.snaps.Resolve("shop", "")
			if err != nil {
				t.Fatal(err)
			}

			c, _ := newController(t, Config{
				Warm: 1, Datasets: []string{"shop"}, Private: private,
				IdleTimeout: 100 * time.Millisecond, WarmInterval: 50 * time.Millisecond,
			})

			w1 := waitWarm(t, c, old.ID, 1)[0]

			// A connection on the old snapshot keeps its instance up.
			l, err := c.Acquire(t.Context(), Request{User: "ann", Dataset: "shop"})
			if err != nil {
				t.Fatal(err)
			}

			held := l.InstanceID
			if held != w1.ID {
				t.Fatalf("Acquire = %s, want the warm instance %s", held, w1.ID)
			}

			if private {
				// The claimed spare is replaced on the old snapshot.
				w1 = waitWarm(t, c, old.ID, 1)[0]
			}

			snap, err := f.snaps.Create(t.Context(), "shop")
			if err != nil {
				t.Fatal(err)
			}

			w2 := waitWarm(t, c, snap.ID, 1)[0]

			// An old spare goes at once; the instance with a connection
			// stays.
			if private {
				waitFor(t, func() bool { _, ok := instanceByID(c, w1.ID); return !ok })
			}

			if st, ok := instanceByID(c, held); !ok || st.Warm || st.Conns != 1 {
				t.Fatalf("old instance with a connection = %+v (listed: %v); want kept, not warm", st, ok)
			}

			// Without connections, the old instance stops after IdleTimeout.
			l.Release()
			waitFor(t, func() bool { _, ok := instanceByID(c, held); return !ok })

			l, err = c.Acquire(t.Context(), Request{User: "bob", Dataset: "shop"})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Release()

			if l.InstanceID != w2.ID || l.Snapshot != snap.ID {
				t.Fatalf("Acquire after rotation = %s@%s; want the warm instance %s@%s",
					l.InstanceID, l.Snapshot, w2.ID, snap.ID)
			}
		})
	}
}

func TestWarmEvictedAtCap(t *testing.T) {
	snaps := readySnapshots(t, 3)
	newest := snaps[2].ID

	for _, private := range []bool{false, true} {
		name := map[bool]string{false: "shared", true: "private"}[private]
		t.Run(name, func(t *testing.T) {
			c, _ := newController(t, Config{
				Warm: 1, Datasets: []string{"shop"}, Private: private, MaxInstances: 2,
				IdleTimeout: time.Hour, WarmInterval: 50 * time.Millisecond,
			})

			warm := waitWarm(t, c, newest, 1)[0]

			// An idle instance used before the warm one: least recently
			// used, yet not the first to go.
			l, err := c.Acquire(t.Context(), Request{User: "ann", Dataset: "shop", Snapshot: snaps[0].ID})
			if err != nil {
				t.Fatal(err)
			}

			idle := l.InstanceID
			l.Release()

			if !private {
				if l, err = c.Acquire(t.Context(), Request{User: "ann", Dataset: "shop"}); err != nil {
					t.Fatal(err)
				}

				if l.InstanceID != warm.ID {
					t.Fatalf("Acquire = %s, want the warm instance %s", l.InstanceID, warm.ID)
				}

				l.Release()
			}

			// At the cap, a request the warm instance cannot serve
			// stops it.
			l, err = c.Acquire(t.Context(), Request{User: "ann", Dataset: "shop", Snapshot: snaps[1].ID})
			if err != nil {
				t.Fatalf("Acquire(%s) at the cap with a warm instance: %v", snaps[1].ID, err)
			}
			defer l.Release()

			_, idleKept := instanceByID(c, idle)
			_, warmKept := instanceByID(c, warm.ID)
			if st := c.Status(); len(st) != 2 || !idleKept || warmKept {
				t.Fatalf("Status = %+v; want %s and %s, the warm %s stopped", st, idle, l.InstanceID, warm.ID)
			}

			// The pool refills once a slot is free, never above the cap.
			if err := c.StopIdle(t.Context()); err != nil {
				t.Fatal(err)
			}

			if again := waitWarm(t, c, newest, 1)[0]; again.ID == warm.ID {
				t.Fatalf("warm instance %s listed again after its eviction", warm.ID)
			}

			if st := c.Status(); len(st) != 2 {
				t.Fatalf("Status = %+v; want two instances under max_instances 2", st)
			}
		})
	}
}
