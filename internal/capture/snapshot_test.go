package capture

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgtide/pgtide/internal/change"
)

const snapshotSchema = `
CREATE TABLE items (id bigint PRIMARY KEY, name text, qty int);
CREATE TABLE pairs (a int, b text, v int, PRIMARY KEY (a, b));
CREATE TABLE notes (body text);
INSERT INTO items SELECT g, 'item ' || g, g % 100 FROM generate_series(1, 6000) g;
INSERT INTO pairs SELECT g % 50, 'k' || g, g FROM generate_series(1, 3000) g;
INSERT INTO notes SELECT 'note ' || g FROM generate_series(1, 500) g;
ANALYZE;
`

// snapshotWorkload writes to the snapshotted tables until stop is closed.
func snapshotWorkload(t *testing.T, dsn string, stop <-chan struct{}) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Errorf("workload: %v", err)
		return
	}
	defer conn.Close(ctx)
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	next := 100000
	for {
		select {
		case <-stop:
			return
		default:
		}
		id := 1 + rng.IntN(6000)
		var err error
		switch rng.IntN(5) {
		case 0:
			next++
			_, err = conn.Exec(ctx, `INSERT INTO items VALUES ($1, 'new', 1)`, next)
		case 1:
			_, err = conn.Exec(ctx, `DELETE FROM items WHERE id = $1`, id)
		case 2:
			_, err = conn.Exec(ctx, `UPDATE pairs SET v = v + 1 WHERE a = $1`, rng.IntN(50))
		case 3:
			_, err = conn.Exec(ctx, `INSERT INTO notes VALUES ('late')`)
		default:
			_, err = conn.Exec(ctx, `UPDATE items SET qty = qty + 1, id = id + 200000 WHERE id = $1`, id)
		}
		if err != nil {
			t.Errorf("workload: %v", err)
			return
		}
		time.Sleep(time.Millisecond)
	}
}

func checkSnapshotResult(t *testing.T, dsn string, recs []change.Record) {
	t.Helper()
	m := newMemReplica(t)
	m.apply(recs)
	compareTable(t, m, dsn, "items", []string{"id", "name", "qty"})
	compareTable(t, m, dsn, "pairs", []string{"a", "b", "v"})
	compareTable(t, m, dsn, "notes", []string{"body"})
	for k, n := range m.reads {
		if n > 1 && k[:5] != "notes" {
			t.Errorf("row %s was read %d times by the snapshot, want once", k, n)
		}
	}
	if countOp(recs, "items", change.OpRead) == 0 || countOp(recs, "notes", change.OpRead) == 0 {
		t.Errorf("no read records: %d items, %d notes", countOp(recs, "items", change.OpRead), countOp(recs, "notes", change.OpRead))
	}
}

func TestInitialSnapshotWithConcurrentWrites(t *testing.T) {
	e := newTestEnv(t)
	e.opts.Snapshot = SnapshotOptions{Enabled: true, ChunkRows: 700, Workers: 2, RowsPerSecond: 20000}
	e.exec(t, snapshotSchema)
	if res := e.setup(t); !res.SlotDeferred {
		t.Errorf("Setup with a snapshot created the slot itself")
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { snapshotWorkload(t, e.dsn, stop) })
	e.start(t)
	time.Sleep(1500 * time.Millisecond) // the workload runs during the snapshot
	close(stop)
	wg.Wait()
	e.exec(t, `INSERT INTO items VALUES (-1, 'marker', 0)`)

	recs := waitRecords(t, e.log, "src", func(r []change.Record) bool {
		last := len(r) - 1
		return last >= 0 && r[last].Op == change.OpInsert && string(r[last].New[0].Data) == "-1"
	})
	checkSnapshotResult(t, e.dsn, recs)
	for i := 1; i < len(recs); i++ {
		if !recs[i-1].ID.Less(recs[i].ID) {
			t.Fatalf("record %d id %s does not follow %s", i, recs[i].ID, recs[i-1].ID)
		}
		if recs[i].Op == change.OpRead && recs[i-1].Op != change.OpRead {
			t.Fatalf("read record %s after streamed %s", recs[i].ID, recs[i-1].ID)
		}
	}
}

// TestSnapshotResumesAfterKill kills capture during its snapshot, with
// writes going on, and checks every row is still read exactly once and
// the log reproduces the source.
func TestSnapshotResumesAfterKill(t *testing.T) {
	e := newTestEnv(t)
	e.opts.Snapshot = SnapshotOptions{Enabled: true}
	e.exec(t, snapshotSchema)
	e.setup(t)
	dir := t.TempDir()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { snapshotWorkload(t, e.dsn, stop) })

	rng := rand.New(rand.NewPCG(3, uint64(time.Now().UnixNano())))
	for range 6 {
		child := startChild(t, e.dsn, dir, childSnapshotEnv+"=1")
		time.Sleep(time.Duration(300+rng.IntN(500)) * time.Millisecond)
		child.Process.Kill()
		child.Wait()
	}
	close(stop)
	wg.Wait()
	e.exec(t, `INSERT INTO items VALUES (-1, 'marker', 0)`)
	child := startChild(t, e.dsn, dir, childSnapshotEnv+"=1")
	waitLogCount(t, e, dir, 0, child)
	child.Process.Signal(interruptSignal)
	child.Wait()

	l := openLog(t, dir)
	checkSnapshotResult(t, e.dsn, records(t, l, "src"))
}
