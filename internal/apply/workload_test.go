package apply

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// workloadSchema is created on the source before capture starts: a wide
// table, a TOAST table, a table with (nearly) every built-in type, and a
// keyless table (captured with REPLICA IDENTITY FULL).
var workloadSchema = `
CREATE TYPE color AS ENUM ('red', 'green', 'blue');
CREATE TYPE pair AS (a int, b text);
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE TABLE wide (id bigint PRIMARY KEY, ` + wideColumns() + `);
CREATE TABLE toasty (id int PRIMARY KEY, small int, body text, blob bytea);
CREATE TABLE keyless (k int, v text, j jsonb);
CREATE TABLE alltypes (
    id int PRIMARY KEY,
    c_int2 smallint, c_int4 integer, c_int8 bigint, c_num numeric, c_num_p numeric(12,4),
    c_float4 real, c_float8 double precision, c_money money,
    c_text text, c_varchar varchar(10), c_char char(5), c_name name, c_qchar "char",
    c_bytea bytea, c_bool boolean,
    c_date date, c_time time, c_timetz timetz, c_ts timestamp, c_tstz timestamptz(3),
    c_interval interval,
    c_uuid uuid, c_json json, c_jsonb jsonb, c_xml xml,
    c_inet inet, c_cidr cidr, c_macaddr macaddr, c_macaddr8 macaddr8,
    c_point point, c_line line, c_lseg lseg, c_box box, c_path path, c_polygon polygon,
    c_circle circle,
    c_bit bit(4), c_varbit varbit, c_tsvector tsvector, c_tsquery tsquery,
    c_int4range int4range, c_int8range int8range, c_numrange numrange, c_tsrange tsrange,
    c_tstzrange tstzrange, c_daterange daterange, c_multirange int4multirange,
    c_oid oid, c_pg_lsn pg_lsn,
    c_int_arr int[], c_text_arr text[], c_2d int[][], c_ts_arr timestamptz[],
    c_enum color, c_enum_arr color[], c_domain posint, c_comp pair, c_comp_arr pair[]
);
`

func wideColumns() string {
	var cols []string
	for i := range 60 {
		cols = append(cols, fmt.Sprintf("c%02d text", i))
	}
	return strings.Join(cols, ", ")
}

// allTypesRow is an INSERT into alltypes of row id, values varying with id.
func allTypesRow(id int) string {
	return fmt.Sprintf(`INSERT INTO alltypes VALUES (%[1]d,
    %[1]d, 34, 56, %[1]d.5, 12345678.1234, 1.25, 3.141592653589793, 12.34,
    E'hello\t"%[1]d"\\n', 'short', 'ab', 'nm', 'x', '\x00ff10', true,
    '2024-02-29', '13:45:10.123456', '13:45:10+05:30', '2024-02-29 13:45:10.5', '2024-02-29 13:45:10.123+01',
    '1 year 2 mons 3 days 04:05:06.789',
    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": [1, 2.50, null], "b": "x"}', '{"z": %[1]d, "a": {"n": 1.0}}',
    '<a x="1">t</a>',
    '192.168.1.5/24', '10.0.0.0/8', '08:00:2b:01:02:03', '08:00:2b:01:02:03:04:05',
    '(1.5,2)', '{1,2,3}', '[(0,0),(1,1)]', '(2,2),(0,0)', '[(0,0),(1,1),(2,0)]', '((0,0),(1,1),(1,0))',
    '<(1,1),5>',
    B'1010', B'110011', 'a fat cat:1 sat:2', 'fat & (rat | cat)',
    '[1,10)', '[5,)', '(1.5,2.5]', '[2024-01-01 00:00,2024-01-02 00:00)',
    '[2024-01-01 00:00+00,2024-01-02 00:00+00)', '[2024-01-01,2024-02-01)', '{[1,3),[5,7)}',
    4000000000, '16/B374D848',
    '{1,NULL,3}', '{"a b","q\"uote",NULL,"","back\\slash"}', '{{1,2},{3,4}}', '{"2024-01-01 00:00+00",infinity}',
    'blue', '{red,blue}', 7, '(1,"x y")', '{"(1,a)","(2,)"}')`, id)
}

// prepareWorkload creates the schema (and pgbench's tables without data)
// on the source, before capture setup.
func prepareWorkload(t *testing.T, e *testEnv) {
	t.Helper()
	e.execSrc(t, workloadSchema)
	out, err := e.pg.Command(t.Context(), "pgbench", "-i", "-I", "dt", "-s", "1", "src").CombinedOutput()
	if err != nil {
		t.Fatalf("pgbench -i -I dt: %v\n%s", err, out)
	}
}

// runWorkload writes on the source: pgbench's data load and primary keys
// (captured: TRUNCATE, COPY, DDL), its TPC-B-like script, and alongside it
// random changes to the wide, TOAST, types and keyless tables, with DDL
// (ADD/DROP/RENAME COLUMN, CREATE TABLE) and TRUNCATE mid-stream.
func runWorkload(t *testing.T, e *testEnv, rounds int) {
	t.Helper()
	ctx := t.Context()
	if out, err := e.pg.Command(ctx, "pgbench", "-i", "-I", "gp", "-s", "1", "src").CombinedOutput(); err != nil {
		t.Fatalf("pgbench -i -I gp: %v\n%s", err, out)
	}
	bench := make(chan error, 1)
	go func() {
		out, err := e.pg.Command(ctx, "pgbench", "-n", "-c", "2", "-j", "1",
			"-t", fmt.Sprint(rounds*10), "src").CombinedOutput()
		if err != nil {
			err = fmt.Errorf("pgbench: %w\n%s", err, out)
		}
		bench <- err
	}()

	conn, err := pgx.Connect(ctx, e.src)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("workload %q: %v", truncate(sql, 100), err)
		}
	}
	for i := 1; i <= rounds; i++ {
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for range 1 + rng.IntN(5) {
			id := rng.IntN(200)
			var err error
			switch rng.IntN(8) {
			case 0:
				// Named columns: c10 is renamed and c20 dropped midway.
				var names, ph []string
				vals := []any{id}
				for j := range 60 {
					if j == 10 || j == 20 {
						continue
					}
					names = append(names, fmt.Sprintf("c%02d", j))
					vals = append(vals, fmt.Sprintf("w%d-%d", i, j))
					ph = append(ph, fmt.Sprintf("$%d", len(vals)))
				}
				_, err = tx.Exec(ctx, "INSERT INTO wide (id, "+strings.Join(names, ", ")+") VALUES ($1, "+
					strings.Join(ph, ", ")+") ON CONFLICT (id) DO UPDATE SET c05 = EXCLUDED.c05, c59 = EXCLUDED.c59",
					vals...)
			case 1:
				_, err = tx.Exec(ctx, `INSERT INTO toasty VALUES ($1, 0, repeat(md5($2), 3000), decode(repeat('ab', 20000), 'hex'))
					ON CONFLICT (id) DO UPDATE SET small = toasty.small + 1`, id, fmt.Sprint(i))
			case 2:
				_, err = tx.Exec(ctx, `UPDATE toasty SET small = small + 1 WHERE id = $1`, id)
			case 3:
				_, err = tx.Exec(ctx, `INSERT INTO keyless VALUES ($1, $2, '{"k": 1}'), ($1, $2, '{"k": 1}')`, id%20, fmt.Sprint(i%3))
			case 4:
				_, err = tx.Exec(ctx, `UPDATE keyless SET v = $2 WHERE ctid = (SELECT ctid FROM keyless WHERE k = $1 LIMIT 1)`, id%20, fmt.Sprint(i))
			case 5:
				_, err = tx.Exec(ctx, `DELETE FROM keyless WHERE ctid = (SELECT ctid FROM keyless WHERE k = $1 LIMIT 1)`, id%20)
			case 6:
				_, err = tx.Exec(ctx, `DELETE FROM alltypes WHERE id = $1`, id)
				if err == nil {
					_, err = tx.Exec(ctx, allTypesRow(id))
				}
			case 7:
				_, err = tx.Exec(ctx, `UPDATE alltypes SET c_text = c_text || 'u', c_jsonb = jsonb_set(c_jsonb, '{z}', '0') WHERE id = $1`, id)
			}
			if err != nil {
				t.Fatalf("workload round %d: %v", i, err)
			}
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		switch i {
		case rounds / 5:
			exec(`ALTER TABLE wide ADD COLUMN extra int DEFAULT 5`)
			exec(`UPDATE wide SET extra = 6 WHERE id < 50`)
		case 2 * rounds / 5:
			exec(`ALTER TABLE wide RENAME COLUMN c10 TO renamed`)
			exec(`CREATE TABLE late (id serial PRIMARY KEY, v text)`)
		case 3 * rounds / 5:
			exec(`ALTER TABLE wide DROP COLUMN c20`)
			exec(`TRUNCATE keyless`)
		case 4 * rounds / 5:
			exec(`INSERT INTO late (v) SELECT 'l' || g FROM generate_series(1, 500) g`)
			exec(`TRUNCATE late RESTART IDENTITY`)
			exec(`INSERT INTO late (v) VALUES ('again')`)
		}
		if i%5 == 0 && i > 2*rounds/5 {
			exec(`INSERT INTO late (v) VALUES ('tick')`)
		}
		time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond)
	}
	if err := <-bench; err != nil {
		t.Fatal(err)
	}
}

// TestWorkload runs the workload on the source while the applier
// follows, then compares every table.
func TestWorkload(t *testing.T) {
	e := newTestEnv(t)
	prepareWorkload(t, e)
	e.startCapture(t)
	opts := e.applyOptions()
	opts.CreateSchema = true
	r := e.startApply(t, opts)
	runWorkload(t, e, 150)
	e.waitApplied(t, r)
	e.compareDatabases(t)
}
