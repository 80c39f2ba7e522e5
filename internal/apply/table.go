package apply

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgtide/pgtide/internal/change"
)

// table is what the applier knows about a target table: its columns and
// primary key, read from the target's catalog. It is dropped from the
// cache after every DDL statement.
type table struct {
	schema, name string
	qname        string // quoted schema.table
	cols         map[string]*targetColumn
	pk           []string // primary key columns in index order
	// checked is the last column list check accepted; batches of one
	// relation repeat it, so the check is skipped when it is equal.
	checked []change.Column
}

type targetColumn struct {
	name      string
	typ       string // format_type
	generated bool   // attgenerated: never written
	always    bool   // GENERATED ALWAYS AS IDENTITY
}

type tableKey struct{ schema, name string }

// loadTable reads the catalog of schema.name in the target. A missing
// table yields a SchemaError for the record id.
func loadTable(ctx context.Context, conn *pgconn.PgConn, source string, id change.ID,
	schema, name string,
) (*table, error) {
	res := conn.ExecParams(ctx, `SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod),
			a.attgenerated <> '', a.attidentity = 'a',
			coalesce(array_position(i.indkey::int2[], a.attnum)
				- array_lower(i.indkey::int2[], 1) + 1, 0)::text
		FROM pg_catalog.pg_class c
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		LEFT JOIN pg_catalog.pg_index i ON i.indrelid = c.oid AND i.indisprimary
		WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')
		ORDER BY a.attnum`,
		[][]byte{[]byte(schema), []byte(name)}, nil, nil, nil).Read()
	if res.Err != nil {
		return nil, fmt.Errorf("read the target's catalog of %s: %w", qualified(schema, name), res.Err)
	}
	if len(res.Rows) == 0 {
		return nil, &PermanentError{Err: &SchemaError{Source: source, ID: id, Schema: schema, Table: name,
			Reason: "does not exist in the target"}}
	}
	t := &table{schema: schema, name: name, qname: qualified(schema, name), cols: map[string]*targetColumn{}}
	pk := map[int]string{}
	for _, r := range res.Rows {
		c := &targetColumn{
			name:      string(r[0]),
			typ:       string(r[1]),
			generated: string(r[2]) == "t",
			always:    string(r[3]) == "t",
		}
		t.cols[c.name] = c
		var pos int
		fmt.Sscan(string(r[4]), &pos)
		if pos > 0 {
			pk[pos] = c.name
		}
	}
	for i := 1; i <= len(pk); i++ {
		t.pk = append(t.pk, pk[i])
	}
	return t, nil
}

// check verifies that every source column exists in the target with a
// compatible type.
func (t *table) check(source string, id change.ID, cols []change.Column) error {
	if slices.Equal(t.checked, cols) {
		return nil
	}
	for _, c := range cols {
		tc, ok := t.cols[c.Name]
		if !ok {
			return &PermanentError{Err: &SchemaError{Source: source, ID: id, Schema: t.schema, Table: t.name,
				Column: c.Name, Reason: fmt.Sprintf("(%s in the source) does not exist in the target", c.Type)}}
		}
		if !compatibleType(c.Type, tc.typ) {
			return &PermanentError{Err: &SchemaError{Source: source, ID: id, Schema: t.schema, Table: t.name,
				Column: c.Name, Reason: fmt.Sprintf("is %s in the target but %s in the source", tc.typ, c.Type)}}
		}
	}
	t.checked = cols
	return nil
}

// widenings lists target types that accept every value of a source type.
var widenings = map[[2]string]bool{
	{"smallint", "integer"}:       true,
	{"smallint", "bigint"}:        true,
	{"integer", "bigint"}:         true,
	{"smallint", "numeric"}:       true,
	{"integer", "numeric"}:        true,
	{"bigint", "numeric"}:         true,
	{"real", "double precision"}:  true,
	{"character varying", "text"}: true,
	{"character", "text"}:         true,
}

// compatibleType reports whether a target column of type dst (as
// format_type prints it) takes the source's values of type src. Type
// modifiers and schema qualification are ignored: a value too long for
// the target's modifier fails when written, with a precise error.
func compatibleType(src, dst string) bool {
	s, d := baseType(src), baseType(dst)
	return s == d || widenings[[2]string{s, d}]
}

// baseType strips type modifiers ("numeric(10,2)", "timestamp(3) with time
// zone") and a schema qualification from a format_type name, keeping
// array brackets.
func baseType(t string) string {
	var b strings.Builder
	depth := 0
	for _, r := range t {
		switch {
		case r == '(':
			depth++
		case r == ')':
			depth--
		case depth == 0:
			b.WriteRune(r)
		}
	}
	s := strings.Join(strings.Fields(b.String()), " ")
	s = strings.ReplaceAll(s, " []", "[]")
	// Drop a schema qualification outside quotes: "public.mood" -> "mood".
	if i := strings.LastIndexByte(s, '.'); i >= 0 && !strings.Contains(s[i:], "\"") {
		s = s[i+1:]
	}
	return strings.Trim(s, "\"")
}

// quoteIdent quotes an SQL identifier.
func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}
