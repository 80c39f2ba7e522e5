package capture

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgtide/pgtide/internal/change"
)

// typesSchema has a column of (nearly) every built-in type, plus an enum,
// a domain, a composite and arrays of them.
const typesSchema = `
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE TYPE pair AS (a int, b text);
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
    c_oid oid, c_pg_lsn pg_lsn, c_snapshot pg_snapshot,
    c_int_arr int[], c_text_arr text[], c_2d int[][], c_ts_arr timestamptz[],
    c_enum mood, c_enum_arr mood[], c_domain posint, c_comp pair, c_comp_arr pair[]
);
CREATE TABLE docs (id int PRIMARY KEY, body text, n int);
`

const typesRows = `
INSERT INTO alltypes VALUES (1,
    12, 34, 56, 1.5, 12345678.1234, 1.25, 3.141592653589793, 12.34,
    'hello', 'short', 'ab', 'nm', 'x', '\x00ff10', true,
    '2024-02-29', '13:45:10.123456', '13:45:10+05:30', '2024-02-29 13:45:10.5', '2024-02-29 13:45:10.123+01',
    '1 year 2 mons 3 days 04:05:06.789',
    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": [1, 2.50, null], "b": "x"}', '{"z": 1, "a": {"n": 1.0}}',
    '<a x="1">t</a>',
    '192.168.1.5/24', '10.0.0.0/8', '08:00:2b:01:02:03', '08:00:2b:01:02:03:04:05',
    '(1.5,2)', '{1,2,3}', '[(0,0),(1,1)]', '(2,2),(0,0)', '[(0,0),(1,1),(2,0)]', '((0,0),(1,1),(1,0))',
    '<(1,1),5>',
    B'1010', B'110011', 'a fat cat:1 sat:2', 'fat & (rat | cat)',
    '[1,10)', '[5,)', '(1.5,2.5]', '[2024-01-01 00:00,2024-01-02 00:00)',
    '[2024-01-01 00:00+00,2024-01-02 00:00+00)', '[2024-01-01,2024-02-01)', '{[1,3),[5,7)}',
    4000000000, '16/B374D848', '10:20:10,14,15',
    '{1,NULL,3}', '{"a b","q\"uote",NULL,"","back\\slash"}', '{{1,2},{3,4}}', '{"2024-01-01 00:00+00",infinity}',
    'happy', '{sad,happy}', 7, '(1,"x y")', '{"(1,a)","(2,)"}');
INSERT INTO alltypes (id, c_num, c_float4, c_float8, c_date, c_ts, c_tstz, c_text, c_bytea, c_interval, c_numrange, c_jsonb)
VALUES (2, 'NaN', 'NaN', '-Infinity', 'infinity', '-infinity', 'infinity',
    E'line1\nline2\ttab "quote" \\ back ✓ 日本', '\x', '-178000000 years', 'empty', '"just a string"');
INSERT INTO alltypes (id, c_num, c_float4, c_float8, c_date, c_ts, c_tstz, c_int8, c_int2, c_interval)
VALUES (3, 'Infinity', '-0', '1e-310', '4713-01-01 BC', '294276-12-31 23:59:59.999999',
    '-infinity', -9223372036854775808, -32768, '-1 days +02:03:04');
INSERT INTO alltypes (id, c_num, c_float8, c_int8) VALUES (4, '-Infinity', 1.7976931348623157e308, 9223372036854775807);
INSERT INTO alltypes (id, c_num) VALUES (5, ('-' || repeat('9', 1000) || '.' || repeat('1', 300))::numeric);
INSERT INTO alltypes (id) VALUES (6);
`

func TestTypesRoundTrip(t *testing.T) {
	for _, binary := range []bool{false, true} {
		t.Run(fmt.Sprintf("binary=%v", binary), func(t *testing.T) {
			e := newTestEnv(t)
			e.opts.Binary = binary
			e.exec(t, typesSchema)
			e.setup(t)
			e.start(t)
			e.exec(t, typesRows)

			recs := waitRecords(t, e.log, "src", func(r []change.Record) bool {
				return countOp(r, "alltypes", change.OpInsert) == 6
			})
			checkValues(t, e.dsn, recs, binary)
		})
	}
}

// pinnedSettings are the session settings capture pins; the comparison
// session uses the same so text forms are comparable.
const pinnedSettings = `SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres';
SET extra_float_digits = 3; SET bytea_output = 'hex'; SET lc_monetary = 'C'`

// checkValues compares every captured value with the source's text form of
// the same column: in text mode byte for byte, in both modes after sending
// the captured bytes back to Postgres as a parameter of the column's type.
func checkValues(t *testing.T, dsn string, recs []change.Record, binary bool) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), pinnedSettings); err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, r := range recs {
		if r.Table != "alltypes" || r.Op != change.OpInsert {
			continue
		}
		id := string(r.New[0].Data)
		if binary {
			id = fmt.Sprint(int32(uint32(r.New[0].Data[0])<<24 | uint32(r.New[0].Data[1])<<16 |
				uint32(r.New[0].Data[2])<<8 | uint32(r.New[0].Data[3])))
		}
		for i, col := range r.Columns {
			want := sourceText(t, conn.PgConn(), fmt.Sprintf("SELECT %s FROM alltypes WHERE id = %s",
				pgx.Identifier{col.Name}.Sanitize(), id))
			v := r.New[i]
			checked++
			if (v == nil) != (want == nil) {
				t.Errorf("row %s column %s: captured NULL=%v, source NULL=%v", id, col.Name, v == nil, want == nil)
				continue
			}
			if v == nil {
				continue
			}
			wantFormat := change.FormatText
			if binary {
				wantFormat = change.FormatBinary
			}
			if v.Format != wantFormat {
				t.Errorf("row %s column %s: format %c, want %c", id, col.Name, v.Format, wantFormat)
			}
			if !binary && string(v.Data) != *want {
				t.Errorf("row %s column %s (%s): captured %q, source text %q", id, col.Name, col.Type, v.Data, *want)
			}
			got := reparse(t, conn.PgConn(), col, v)
			if got != *want {
				t.Errorf("row %s column %s (%s): captured value reads back as %q, source text %q",
					id, col.Name, col.Type, got, *want)
			}
		}
	}
	if checked < 6*20 {
		t.Errorf("checked only %d values", checked)
	}
}

// reparse sends a captured value to Postgres as a parameter of its type and
// returns the text the server prints for it.
func reparse(t *testing.T, conn *pgconn.PgConn, col change.Column, v *change.Value) string {
	t.Helper()
	format := int16(0)
	if v.Format == change.FormatBinary {
		format = 1
	}
	sql := "SELECT $1::" + col.Type
	res := conn.ExecParams(t.Context(), sql, [][]byte{v.Data}, []uint32{col.OID}, []int16{format}, nil).Read()
	if res.Err != nil {
		t.Errorf("column %s (%s): the server rejects the captured value: %v", col.Name, col.Type, res.Err)
		return ""
	}
	return string(res.Rows[0][0])
}

// sourceText runs a one-value query and returns the value as the type's
// output function prints it (text result format), nil for NULL.
func sourceText(t *testing.T, conn *pgconn.PgConn, sql string) *string {
	t.Helper()
	res := conn.ExecParams(t.Context(), sql, nil, nil, nil, nil).Read()
	if res.Err != nil || len(res.Rows) != 1 {
		t.Fatalf("%s: %v (%d rows)", sql, res.Err, len(res.Rows))
	}
	if res.Rows[0][0] == nil {
		return nil
	}
	s := string(res.Rows[0][0])
	return &s
}

func TestUnchangedTOAST(t *testing.T) {
	e := newTestEnv(t)
	e.exec(t, typesSchema)
	e.setup(t)
	e.start(t)
	e.exec(t, `INSERT INTO docs SELECT 1, string_agg(md5(i::text || random()::text), ''), 1 FROM generate_series(1, 40000) i;
		UPDATE docs SET n = 2 WHERE id = 1;
		UPDATE docs SET body = body || 'tail', n = 3 WHERE id = 1;`)

	recs := waitRecords(t, e.log, "src", func(r []change.Record) bool {
		return countOp(r, "docs", change.OpUpdate) == 2
	})
	body := queryStrings(t, e.dsn, `SELECT body FROM docs WHERE id = 1`)[0]
	var seen []string
	for _, r := range recs {
		if r.Table != "docs" {
			continue
		}
		switch {
		case r.Op == change.OpInsert:
			if got := string(r.New[1].Data); got != strings.TrimSuffix(body, "tail") || len(got) != 40000*32 {
				t.Errorf("inserted body: %d bytes captured, want the %d source bytes", len(got), 40000*32)
			}
			seen = append(seen, "insert")
		case r.Op == change.OpUpdate && len(r.Unchanged) > 0:
			if r.Unchanged[0] != "body" || r.New[1] != nil || string(r.New[2].Data) != "2" {
				t.Errorf("update of n: unchanged=%v body=%v n=%v; want body marked unchanged", r.Unchanged, r.New[1], r.New[2])
			}
			seen = append(seen, "update-unchanged")
		case r.Op == change.OpUpdate:
			if string(r.New[1].Data) != body {
				t.Errorf("update of body: captured %d bytes, want the source's %d", len(r.New[1].Data), len(body))
			}
			seen = append(seen, "update-body")
		}
	}
	if strings.Join(seen, ",") != "insert,update-unchanged,update-body" {
		t.Errorf("docs records = %v, want insert, update with body unchanged, update of body", seen)
	}
}
