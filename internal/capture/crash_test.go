package capture

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgtide/pgtide/internal/change"
)

// expectedRecord is what the workload committed, in commit order.
type expectedRecord struct {
	op change.Op
	id int64
	v  string
}

func (r expectedRecord) String() string { return fmt.Sprintf("%s %d %q", r.op, r.id, r.v) }

// TestCrashExactlyOnce kills a capture process with SIGKILL at random
// moments while a write workload runs, restarts it each time, and checks
// that the log holds exactly the committed changes: same order, no gap,
// no duplicate, transactions intact.
func TestCrashExactlyOnce(t *testing.T) {
	e := newTestEnv(t)
	e.exec(t, `CREATE TABLE w (id bigint PRIMARY KEY, v text, g int)`)
	e.setup(t)
	dir := t.TempDir()

	workDone := make(chan []expectedRecord, 1)
	go func() { workDone <- runWorkload(t, e.dsn, 400) }()

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	kills := 0
	var expected []expectedRecord
	for expected == nil {
		child := startChild(t, e.dsn, dir)
		time.Sleep(time.Duration(100+rng.IntN(400)) * time.Millisecond)
		child.Process.Signal(syscall.SIGKILL)
		child.Wait()
		kills++
		select {
		case expected = <-workDone:
		default:
		}
	}
	t.Logf("capture killed %d times during the workload; %d records committed", kills, len(expected))

	// A last, clean run drains the rest.
	child := startChild(t, e.dsn, dir)
	waitLogCount(t, e, dir, len(expected), child)
	child.Process.Signal(syscall.SIGTERM)
	if err := child.Wait(); err != nil {
		t.Errorf("capture exited with %v after SIGTERM", err)
	}

	l := openLog(t, dir)
	compareWithWorkload(t, records(t, l, "src"), expected)
}

func startChild(t *testing.T, dsn, dir string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+dsn, childDirEnv+"="+dir)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start capture child: %v", err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd
}

// waitLogCount waits until the log in dir holds n records of table w. The
// child owns the embedded server, so the log is read through the slot's
// progress instead: the child confirms only what the log stored.
func waitLogCount(t *testing.T, e *testEnv, dir string, n int, child *exec.Cmd) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		lag := queryStrings(t, e.dsn, `SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::text
			FROM pg_replication_slots WHERE slot_name = 'pgtide_src'`)
		if len(lag) == 1 && lag[0] == "0" {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("capture did not catch up with the source")
}

// runWorkload commits transactions of random inserts, updates and deletes
// on table w, plus one large transaction, and returns the records they
// must produce, in commit order.
func runWorkload(t *testing.T, dsn string, txs int) []expectedRecord {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Errorf("workload connect: %v", err)
		return []expectedRecord{}
	}
	defer conn.Close(ctx)
	rng := rand.New(rand.NewPCG(7, uint64(time.Now().UnixNano())))
	var out []expectedRecord
	var live []int64
	next := int64(1)
	for i := 0; i < txs; i++ {
		size := 1 + rng.IntN(20)
		if i == txs/2 {
			size = 3000
		}
		var txRecs []expectedRecord
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			txRecs = txRecs[:0]
			for j := 0; j < size; j++ {
				r, err := workloadStep(ctx, tx, rng, &live, &next, size > 100)
				if err != nil {
					return err
				}
				txRecs = append(txRecs, r)
			}
			return nil
		})
		if err != nil {
			t.Errorf("workload transaction %d: %v", i, err)
			return []expectedRecord{}
		}
		out = append(out, txRecs...)
		time.Sleep(time.Duration(rng.IntN(15)) * time.Millisecond)
	}
	return out
}

func workloadStep(ctx context.Context, tx pgx.Tx, rng *rand.Rand, live *[]int64, next *int64, insertOnly bool) (expectedRecord, error) {
	v := fmt.Sprintf("v%d-%s", rng.IntN(1e6), strings.Repeat("x", rng.IntN(40)))
	switch k := rng.IntN(10); {
	case insertOnly || k < 6 || len(*live) < 5:
		id := *next
		*next++
		*live = append(*live, id)
		_, err := tx.Exec(ctx, `INSERT INTO w VALUES ($1, $2, $3)`, id, v, rng.IntN(100))
		return expectedRecord{change.OpInsert, id, v}, err
	case k < 9:
		id := (*live)[rng.IntN(len(*live))]
		_, err := tx.Exec(ctx, `UPDATE w SET v = $2 WHERE id = $1`, id, v)
		return expectedRecord{change.OpUpdate, id, v}, err
	default:
		i := rng.IntN(len(*live))
		id := (*live)[i]
		*live = append((*live)[:i], (*live)[i+1:]...)
		_, err := tx.Exec(ctx, `DELETE FROM w WHERE id = $1`, id)
		return expectedRecord{change.OpDelete, id, ""}, err
	}
}

func compareWithWorkload(t *testing.T, recs []change.Record, want []expectedRecord) {
	t.Helper()
	var got []expectedRecord
	for i, r := range recs {
		if i > 0 && !recs[i-1].ID.Less(r.ID) {
			t.Fatalf("record %d id %s repeats or precedes %s", i, r.ID, recs[i-1].ID)
		}
		if r.Table != "w" {
			continue
		}
		g := expectedRecord{op: r.Op}
		row := r.New
		if r.Op == change.OpDelete {
			row = r.Old
		} else {
			g.v = string(row[1].Data)
		}
		fmt.Sscan(string(row[0].Data), &g.id)
		got = append(got, g)
	}
	if len(got) != len(want) {
		t.Errorf("log holds %d records of w, the workload committed %d", len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			t.Fatalf("record %d of w is %v, want %v", i, got[i], want[i])
		}
	}
	checkTransactions(t, recs)
}

// checkTransactions checks positions run 1..n within each transaction and
// only the final record is flagged last.
func checkTransactions(t *testing.T, recs []change.Record) {
	t.Helper()
	for i, r := range recs {
		first := i == 0 || recs[i-1].ID.LSN != r.ID.LSN
		if first && r.ID.Pos != 1 {
			t.Fatalf("transaction %s starts at position %d", r.ID.LSN, r.ID.Pos)
		}
		if !first && r.ID.Pos != recs[i-1].ID.Pos+1 {
			t.Fatalf("gap in transaction %s: position %d after %d", r.ID.LSN, r.ID.Pos, recs[i-1].ID.Pos)
		}
		end := i+1 == len(recs) || recs[i+1].ID.LSN != r.ID.LSN
		if r.Last != end {
			t.Fatalf("record %s: Last = %v, want %v", r.ID, r.Last, end)
		}
	}
}
