package apply

import (
	"testing"
)

// opsSchema exercises every semantic the applier must keep: TOAST,
// generated and identity columns, an enum, a keyless table (REPLICA
// IDENTITY FULL) with duplicate rows, foreign keys with TRUNCATE CASCADE,
// a serial with RESTART IDENTITY.
const opsSchema = `
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE items (id int PRIMARY KEY, name text, qty int, doc text, m mood,
    total int GENERATED ALWAYS AS (qty * 2) STORED);
ALTER TABLE items ALTER COLUMN doc SET STORAGE EXTERNAL;
CREATE TABLE ident (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text);
CREATE TABLE keyless (a int, b text, j json, p point);
CREATE TABLE parent (id int PRIMARY KEY);
CREATE TABLE child (id int PRIMARY KEY, pid int REFERENCES parent ON DELETE CASCADE);
CREATE TABLE ser (id serial PRIMARY KEY, v text);
CREATE TABLE multi (a int, b text, v text, PRIMARY KEY (a, b));
`

// opsWorkload runs on the source after capture started; each statement is
// its own transaction unless grouped with BEGIN/COMMIT.
var opsWorkload = []string{
	`INSERT INTO items VALUES (1, 'a', 1, repeat('x', 100000), 'ok'), (2, 'b', 2, 'short', 'sad'), (3, 'c', 3, NULL, NULL)`,
	`INSERT INTO items SELECT g, 'n' || g, g, NULL, 'happy' FROM generate_series(10, 300) g`,
	`UPDATE items SET qty = 5 WHERE id = 1`,
	`UPDATE items SET id = 1000 WHERE id = 2`,
	`DELETE FROM items WHERE id = 3`,
	`UPDATE items SET name = E'tab\there\nnew line \\ back' WHERE id = 10`,
	`BEGIN; UPDATE items SET qty = qty + 1 WHERE id BETWEEN 20 AND 60; DELETE FROM items WHERE id BETWEEN 61 AND 70; COMMIT`,
	`INSERT INTO ident (v) VALUES ('x'), ('y')`,
	`UPDATE ident SET v = 'z' WHERE id = 1`,
	`INSERT INTO keyless VALUES (1, 'dup', '{"a": 1}', '(1,2)'), (1, 'dup', '{"a": 1}', '(1,2)'), (2, NULL, NULL, NULL)`,
	`UPDATE keyless SET b = 'one' WHERE ctid = (SELECT ctid FROM keyless WHERE a = 1 LIMIT 1)`,
	`DELETE FROM keyless WHERE a = 2`,
	`INSERT INTO parent VALUES (1), (2), (3)`,
	`INSERT INTO child VALUES (1, 1), (2, 2), (3, 3)`,
	`DELETE FROM parent WHERE id = 3`,
	`TRUNCATE parent CASCADE`,
	`INSERT INTO parent VALUES (9)`,
	`INSERT INTO ser (v) VALUES ('a'), ('b')`,
	`TRUNCATE ser RESTART IDENTITY`,
	`INSERT INTO ser (v) VALUES ('c')`,
	`INSERT INTO multi VALUES (1, 'x', 'v1'), (1, 'y', 'v2')`,
	`UPDATE multi SET b = 'z' WHERE a = 1 AND b = 'y'`,
	`ALTER TABLE items ADD COLUMN extra text DEFAULT 'd'`,
	`UPDATE items SET extra = 'e' WHERE id = 1`,
	`ALTER TABLE items RENAME COLUMN name TO title`,
	`UPDATE items SET title = 'renamed' WHERE id = 11`,
	`ALTER TABLE items DROP COLUMN extra`,
	`INSERT INTO items (id, title, qty) VALUES (400, 'after drop', 4)`,
	`CREATE TABLE late (id bigint PRIMARY KEY, v jsonb)`,
	`INSERT INTO late VALUES (1, '{"x": 1}')`,
	`CREATE INDEX CONCURRENTLY late_v ON late ((v->>'x'))`,
	`ALTER TYPE mood ADD VALUE 'ecstatic'`,
	`INSERT INTO items (id, title, qty, m) VALUES (500, 'e', 1, 'ecstatic')`,
	`ALTER TABLE late ADD COLUMN n int; UPDATE late SET n = 7; INSERT INTO late VALUES (2, '{}', 3)`,
	`CREATE SCHEMA other; SET search_path = other, public; CREATE TABLE t2 (id int PRIMARY KEY, m mood)`,
	`INSERT INTO other.t2 VALUES (1, 'sad')`,
}

func TestApplyOperations(t *testing.T) {
	e := newTestEnv(t)
	e.execSrc(t, opsSchema)
	e.startCapture(t)

	// The applier copies the source's schema into the empty target, then
	// follows the log.
	opts := e.applyOptions()
	opts.CreateSchema = true
	r := e.startApply(t, opts)
	for _, sql := range opsWorkload {
		e.execSrc(t, sql)
	}
	e.waitApplied(t, r)
	e.compareDatabases(t)

	// Sequences are not in the log: SyncSequences brings them in step.
	if n, err := r.a.SyncSequences(t.Context()); err != nil || n < 2 {
		t.Fatalf("SyncSequences = %d, %v; want at least 2 sequences", n, err)
	}
	const seqSQL = `SELECT string_agg(schemaname || '.' || sequencename || '=' || coalesce(last_value::text, 'null'), ', '
		ORDER BY schemaname, sequencename) FROM pg_sequences WHERE schemaname <> 'pgtide'`
	if s, d := queryStrings(t, e.src, seqSQL), queryStrings(t, e.dst, seqSQL); s[0] != d[0] {
		t.Errorf("sequences differ after SyncSequences:\nsource %s\ntarget %s", s[0], d[0])
	}
	st := r.a.Status()
	if !st.Running || st.Applied.LSN == 0 {
		t.Errorf("Status() = %+v, want running with an applied position", st)
	}
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}
