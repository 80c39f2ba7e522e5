package capture

import (
	"strings"
	"testing"

	"github.com/pgtide/pgtide/internal/change"
)

// summary renders records as "op table" lines, DDL as "ddl <tag>".
func summary(recs []change.Record) string {
	var out []string
	for _, r := range recs {
		switch r.Op {
		case change.OpDDL:
			out = append(out, "ddl "+r.DDL.Tag)
		case change.OpTruncate:
			s := "truncate " + r.Table
			if r.Cascade {
				s += " cascade"
			}
			if r.RestartIdentity {
				s += " restart"
			}
			out = append(out, s)
		default:
			out = append(out, string(r.Op)+" "+r.Table)
		}
	}
	return strings.Join(out, "\n")
}

func TestTruncateAndDDLInCommitOrder(t *testing.T) {
	e := newTestEnv(t)
	e.exec(t, `CREATE TABLE a (id int PRIMARY KEY, v text)`)
	e.setup(t)
	e.start(t)
	e.exec(t, `INSERT INTO a VALUES (1, 'x')`)
	e.exec(t, `BEGIN;
		INSERT INTO a VALUES (2, 'y');
		ALTER TABLE a ADD COLUMN extra int DEFAULT 7;
		INSERT INTO a VALUES (3, 'z', 8);
		COMMIT`)
	e.exec(t, `CREATE TABLE b (id serial PRIMARY KEY, a_id int)`)
	e.exec(t, `INSERT INTO b (a_id) VALUES (1)`)
	e.exec(t, `TRUNCATE a, b RESTART IDENTITY`)
	e.exec(t, `ALTER TABLE a RENAME COLUMN v TO w; UPDATE a SET w = 'q'; INSERT INTO a VALUES (4, 'n', 1)`)
	// DDL by an ordinary role works, and records that role's search_path.
	e.exec(t, `CREATE ROLE app; GRANT CREATE ON SCHEMA public TO app`)
	e.exec(t, `SET ROLE app; SET search_path = public, pg_temp; CREATE TABLE app_t (id int PRIMARY KEY)`)

	want := strings.Join([]string{
		"insert a",
		"insert a", "ddl ALTER TABLE", "insert a",
		"ddl CREATE TABLE",
		"insert b",
		"truncate a restart", "truncate b restart",
		"ddl ALTER TABLE", "insert a",
		"ddl GRANT", "ddl CREATE TABLE",
	}, "\n")
	recs := waitRecords(t, e.log, "src", func(r []change.Record) bool {
		return len(r) >= strings.Count(want, "\n")+1
	})
	if got := summary(recs); got != want {
		t.Fatalf("records in the log:\n%s\nwant:\n%s", got, want)
	}

	// Schema changes mid-stream are decoded with the new columns.
	if cols := recs[3].Columns; len(cols) != 3 || cols[2].Name != "extra" || string(recs[3].New[2].Data) != "8" {
		t.Errorf("insert after ADD COLUMN: columns %v values %v", cols, recs[3].New)
	}
	if cols := recs[9].Columns; cols[1].Name != "w" {
		t.Errorf("insert after RENAME COLUMN: columns %v, want w second", cols)
	}
	if !strings.Contains(recs[2].DDL.Statement, "ADD COLUMN extra") {
		t.Errorf("DDL statement = %q", recs[2].DDL.Statement)
	}
	if d := recs[11].DDL; d.SearchPath != "public, pg_temp" || d.User != "postgres" || !strings.Contains(d.Statement, "app_t") {
		t.Errorf("DDL of role app recorded search_path %q, user %q, statement %q; want the role's own search_path",
			d.SearchPath, d.User, d.Statement)
	}

	// Transactions keep their records together, the last one flagged.
	for i, r := range recs {
		nextSameTx := i+1 < len(recs) && recs[i+1].ID.LSN == r.ID.LSN
		if r.Last == nextSameTx {
			t.Errorf("record %d (%s): Last = %v but next record same transaction = %v", i, r.ID, r.Last, nextSameTx)
		}
		if i > 0 && !recs[i-1].ID.Less(r.ID) {
			t.Errorf("record %d id %s does not follow %s", i, r.ID, recs[i-1].ID)
		}
	}
}

func TestKeylessTableNeverBreaksSource(t *testing.T) {
	for _, mode := range []string{"skip", "full"} {
		t.Run(mode, func(t *testing.T) {
			e := newTestEnv(t)
			e.opts.Keyless = mode
			e.exec(t, `CREATE TABLE logs (msg text, n int); CREATE TABLE keyed (id int PRIMARY KEY)`)
			res := e.setup(t)
			if mode == "skip" && (len(res.Keyless) != 1 || res.Keyless[0] != "public.logs") {
				t.Errorf("Setup keyless tables = %v, want [public.logs]", res.Keyless)
			}
			e.start(t)
			// None of these may fail on the source.
			e.exec(t, `INSERT INTO logs VALUES ('a', 1), ('b', 2)`)
			e.exec(t, `UPDATE logs SET n = n + 1`)
			e.exec(t, `DELETE FROM logs WHERE msg = 'a'`)
			// A keyless table created later is handled by the event trigger.
			e.exec(t, `CREATE TABLE later (v int); INSERT INTO later VALUES (1); UPDATE later SET v = 2`)
			// So is a table that loses its key.
			e.exec(t, `ALTER TABLE keyed DROP CONSTRAINT keyed_pkey; INSERT INTO keyed VALUES (5); DELETE FROM keyed`)
			e.exec(t, `INSERT INTO keyed VALUES (9)`)

			recs := waitRecords(t, e.log, "src", func(r []change.Record) bool {
				return countOp(r, "keyed", change.OpInsert) == 2
			})
			ups, dels := countOp(recs, "logs", change.OpUpdate), countOp(recs, "logs", change.OpDelete)
			if countOp(recs, "logs", change.OpInsert) != 2 || countOp(recs, "later", change.OpInsert) != 1 {
				t.Errorf("inserts into keyless tables not captured:\n%s", summary(recs))
			}
			switch mode {
			case "skip":
				if ups != 0 || dels != 0 {
					t.Errorf("keyless: skip captured %d updates and %d deletes, want none", ups, dels)
				}
			case "full":
				if ups != 2 || dels != 1 || countOp(recs, "keyed", change.OpDelete) != 1 {
					t.Errorf("keyless: full captured %d updates and %d deletes, want 2 and 1:\n%s", ups, dels, summary(recs))
				}
				for _, r := range recs {
					if r.Table == "logs" && r.Op == change.OpDelete && (r.OldKeyOnly || string(r.Old[0].Data) != "a") {
						t.Errorf("delete from logs carries old row %v (key only %v), want the full old row", r.Old, r.OldKeyOnly)
					}
				}
			}
		})
	}
}
