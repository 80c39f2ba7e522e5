package capture

import (
	"context"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgtide/pgtide/internal/change"
)

// TestBackfillNeverStale backfills a table while its rows are updated
// hard: once the stream has caught up, a reader that applied the log in
// order must hold exactly the source's rows, none older than its latest
// change.
func TestBackfillNeverStale(t *testing.T) {
	e := newTestEnv(t)
	e.opts.Snapshot = SnapshotOptions{Enabled: true}
	e.exec(t, `CREATE TABLE hot (id int PRIMARY KEY, v int, pad text);
		INSERT INTO hot SELECT g, 0, repeat('x', 40) FROM generate_series(1, 15000) g; ANALYZE`)
	e.setup(t)
	c, _ := e.startCapture(t)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { hotWorkload(t, e.dsn, stop) })
	id, err := c.Backfill(t.Context(), []string{"hot"})
	if err != nil {
		t.Fatalf("Backfill: %v", err)
	}
	waitBackfill(t, c, id)
	close(stop)
	wg.Wait()
	e.exec(t, `INSERT INTO hot VALUES (-1, 0, 'marker')`)

	recs := waitRecords(t, e.log, "src", func(r []change.Record) bool {
		last := len(r) - 1
		return last >= 0 && r[last].Op == change.OpInsert && string(r[last].New[0].Data) == "-1"
	})
	reads := 0
	streaming := false
	for _, r := range recs {
		if r.Op != change.OpRead {
			streaming = true
		} else if streaming {
			reads++
		}
	}
	if reads < 10000 {
		t.Errorf("the backfill wrote %d read records during the stream, want most of 15000", reads)
	}
	m := newMemReplica(t)
	m.upsertReads = true
	m.apply(recs)
	compareTable(t, m, e.dsn, "hot", []string{"id", "v", "pad"})
}

func waitBackfill(t *testing.T, c *Capture, id string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		pending := false
		for _, b := range c.Status().Backfills {
			pending = pending || (b.ID == id && !b.Done)
		}
		if !pending {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("backfill %s did not finish", id)
}

// hotWorkload updates a hot subset of rows, and inserts and deletes some.
func hotWorkload(t *testing.T, dsn string, stop <-chan struct{}) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Errorf("workload: %v", err)
		return
	}
	defer conn.Close(ctx)
	rng := rand.New(rand.NewPCG(5, uint64(time.Now().UnixNano())))
	next := 20000
	for {
		select {
		case <-stop:
			return
		default:
		}
		var err error
		switch k := rng.IntN(20); {
		case k == 0:
			next++
			_, err = conn.Exec(ctx, `INSERT INTO hot VALUES ($1, 1, 'new')`, next)
		case k == 1:
			_, err = conn.Exec(ctx, `DELETE FROM hot WHERE id = $1`, 1+rng.IntN(15000))
		default:
			lo := rng.IntN(15000)
			_, err = conn.Exec(ctx, `UPDATE hot SET v = v + 1 WHERE id BETWEEN $1 AND $1 + 20`, lo)
		}
		if err != nil {
			t.Errorf("workload: %v", err)
			return
		}
		time.Sleep(time.Millisecond)
	}
}

func TestBackfillErrors(t *testing.T) {
	e := newTestEnv(t)
	e.exec(t, `CREATE TABLE keyed (id int PRIMARY KEY); CREATE TABLE bag (v int)`)
	e.setup(t)
	c, _ := e.startCapture(t)
	for _, tt := range []struct{ table, want string }{
		{"nosuch", `table "nosuch" is not captured`},
		{"bag", "has no primary key or replica identity index"},
	} {
		if _, err := c.Backfill(t.Context(), []string{tt.table}); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Backfill(%s) error = %v, want %q", tt.table, err, tt.want)
		}
	}
	if _, err := c.Backfill(t.Context(), nil); err == nil {
		t.Error("Backfill() of no table succeeded")
	}
}
