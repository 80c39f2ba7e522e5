package apply

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// waitStopped waits for Run to end and returns its error.
func waitStopped(t *testing.T, r *runningApplier) error {
	t.Helper()
	select {
	case <-r.done:
		return r.err
	case <-time.After(60 * time.Second):
		t.Fatal("the applier did not stop")
		return nil
	}
}

// TestBadTargetThenResume: a missing table, then an incompatible column,
// stop the applier with a message naming table, column and record; after
// the fix a restart resumes and the target ends equal to the source.
func TestBadTargetThenResume(t *testing.T) {
	e := newTestEnv(t)
	e.execSrc(t, `CREATE TABLE a (id int PRIMARY KEY, v text); CREATE TABLE b (id int PRIMARY KEY, n text)`)
	e.execDst(t, `CREATE TABLE a (id int PRIMARY KEY, v text); CREATE TABLE b (id int PRIMARY KEY, n int)`)
	e.startCapture(t)
	e.execSrc(t, `INSERT INTO a VALUES (1, 'one')`)
	e.execSrc(t, `INSERT INTO a VALUES (2, 'two'); INSERT INTO b VALUES (1, 'x')`)
	e.execSrc(t, `CREATE TABLE c (id int PRIMARY KEY)`)
	e.execDst(t, `DROP TABLE a`)

	r := e.startApply(t, e.applyOptions())
	err := waitStopped(t, r)
	var se *SchemaError
	if !errors.As(err, &se) || se.Table != "a" || se.Column != "" || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("Run = %v, want a SchemaError for the missing table a", err)
	}
	t.Logf("missing table: %v", err)

	e.execDst(t, `CREATE TABLE a (id int PRIMARY KEY, v text)`)
	r = e.startApply(t, e.applyOptions())
	err = waitStopped(t, r)
	if !errors.As(err, &se) || se.Table != "b" || se.Column != "n" || se.ID.LSN == 0 {
		t.Fatalf("Run = %v, want a SchemaError for column n of b", err)
	}
	t.Logf("incompatible column: %v", err)
	// The transaction that failed (a's row 2 with b's row 1) was not
	// applied in part.
	if got := queryStrings(t, e.dst, `SELECT count(*)::text FROM a WHERE id = 2`)[0]; got != "0" {
		t.Errorf("target holds row 2 of a after its transaction failed")
	}

	e.execDst(t, `ALTER TABLE b ALTER COLUMN n TYPE text`)
	r = e.startApply(t, e.applyOptions())
	e.waitApplied(t, r)
	e.compareDatabases(t)
}

// TestSecondApplierIsRefused: the target's lock admits one applier.
func TestSecondApplierIsRefused(t *testing.T) {
	e := newTestEnv(t)
	e.execSrc(t, `CREATE TABLE a (id int PRIMARY KEY)`)
	e.execDst(t, `CREATE TABLE a (id int PRIMARY KEY)`)
	e.startCapture(t)
	e.execSrc(t, `INSERT INTO a VALUES (1)`)
	first := e.startApply(t, e.applyOptions())
	e.waitApplied(t, first)

	second := e.startApply(t, e.applyOptions())
	err := waitStopped(t, second)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "pgtide apply src lock") {
		t.Fatalf("second Run = %v, want ErrLocked naming the holder", err)
	}
	t.Logf("second applier: %v", err)
}

// TestDivergencePolicies: with the default policy an update of a missing
// row stops the applier naming table, key and record; log goes on; upsert
// repairs the row.
func TestDivergencePolicies(t *testing.T) {
	e := newTestEnv(t)
	e.execSrc(t, `CREATE TABLE a (id int PRIMARY KEY, v text)`)
	e.execDst(t, `CREATE TABLE a (id int PRIMARY KEY, v text)`)
	e.startCapture(t)
	e.execSrc(t, `INSERT INTO a SELECT g, 'v' || g FROM generate_series(1, 20) g`)
	r := e.startApply(t, e.applyOptions())
	e.waitApplied(t, r)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}

	// The replica loses row 5 and gains row 30.
	e.execDst(t, `DELETE FROM a WHERE id = 5; INSERT INTO a VALUES (30, 'stray')`)
	e.execSrc(t, `UPDATE a SET v = 'changed' WHERE id = 5`)
	e.execSrc(t, `INSERT INTO a SELECT g, 'v' || g FROM generate_series(21, 40) g`)

	r = e.startApply(t, e.applyOptions())
	err := waitStopped(t, r)
	var de *DivergenceError
	if !errors.As(err, &de) || de.Table != "a" || de.Key != "(id)=(5)" || de.Op != "update" {
		t.Fatalf("Run = %v, want a DivergenceError for the update of id 5", err)
	}
	t.Logf("stop: %v", err)

	opts := e.applyOptions()
	opts.OnConflict = PolicyUpsert
	r = e.startApply(t, opts)
	e.waitApplied(t, r)
	e.compareDatabases(t)
}
