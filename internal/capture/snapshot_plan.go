package capture

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pgtide/pgtide/internal/change"
)

// planTables lists the tables the snapshot reads, with their keys, row
// estimates and chunk boundaries.
func (s *session) planTables(ctx context.Context) ([]tablePlan, int64, error) {
	include := s.opts.expandGlobs(s.opts.Snapshot.Tables)
	rows, err := s.query.Query(ctx, `SELECT DISTINCT schemaname::text, tablename::text FROM pg_publication_tables
		WHERE pubname = ANY ($1) AND schemaname <> 'pgtide'
		  AND (cardinality($2::text[]) = 0 OR schemaname || '.' || tablename LIKE ANY ($2))
		ORDER BY 1, 2`, []string{s.opts.Publication, s.opts.keylessPublication()}, include)
	if err != nil {
		return nil, 0, fmt.Errorf("list snapshot tables: %w", err)
	}
	type name struct{ schema, table string }
	names, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (name, error) {
		var n name
		return n, r.Scan(&n.schema, &n.table)
	})
	if err != nil {
		return nil, 0, fmt.Errorf("list snapshot tables: %w", err)
	}
	var plans []tablePlan
	var total int64
	for _, n := range names {
		tp, est, err := s.planTable(ctx, n.schema, n.table)
		if err != nil {
			return nil, 0, err
		}
		plans = append(plans, tp)
		total += est
	}
	return plans, total, nil
}

func qualified(schema, table string) string {
	return pgx.Identifier{schema, table}.Sanitize()
}

func (s *session) planTable(ctx context.Context, schema, table string) (tablePlan, int64, error) {
	tp := tablePlan{Schema: schema, Table: table}
	rel := qualified(schema, table)
	rows, err := s.query.Query(ctx, `SELECT a.attname::text, format_type(a.atttypid, a.atttypmod)
		FROM (SELECT indkey::int2[] AS k FROM pg_index WHERE indrelid = $1::regclass
		      AND (indisprimary OR indisreplident) ORDER BY indisprimary DESC LIMIT 1) i,
		     unnest(i.k) WITH ORDINALITY AS u(attnum, n)
		JOIN pg_attribute a ON a.attrelid = $1::regclass AND a.attnum = u.attnum
		ORDER BY u.n`, rel)
	if err != nil {
		return tp, 0, fmt.Errorf("read key of %s: %w", rel, err)
	}
	for rows.Next() {
		var col, typ string
		if err := rows.Scan(&col, &typ); err != nil {
			return tp, 0, err
		}
		tp.Key = append(tp.Key, col)
		tp.KeyTypes = append(tp.KeyTypes, typ)
	}
	if err := rows.Err(); err != nil {
		return tp, 0, fmt.Errorf("read key of %s: %w", rel, err)
	}
	var est int64
	err = s.query.QueryRow(ctx, `SELECT CASE WHEN reltuples >= 0 THEN reltuples::bigint
			ELSE pg_relation_size(oid) / 64 END FROM pg_class WHERE oid = $1::regclass`, rel).Scan(&est)
	if err != nil {
		return tp, 0, fmt.Errorf("estimate rows of %s: %w", rel, err)
	}
	bounds, err := s.chunkBounds(ctx, tp, est)
	if err != nil {
		return tp, 0, err
	}
	tp.Chunks = chunksFromBounds(bounds)
	return tp, est, nil
}

// chunkBounds samples the key to split the table into chunks of about
// ChunkRows rows. Tables without a key, or small ones, are one chunk.
func (s *session) chunkBounds(ctx context.Context, tp tablePlan, est int64) ([][]string, error) {
	n := int(math.Ceil(float64(est) / float64(s.opts.Snapshot.ChunkRows)))
	if len(tp.Key) == 0 || n <= 1 {
		return nil, nil
	}
	pct := min(100, 100*float64(n*20)/float64(est))
	cols := make([]string, len(tp.Key))
	for i, k := range tp.Key {
		cols[i] = pgx.Identifier{k}.Sanitize()
	}
	texts := make([]string, len(cols))
	for i, c := range cols {
		// Aliased, so that ORDER BY sorts by the key, not by its text.
		texts[i] = fmt.Sprintf("%s::text AS pgtide_bound_%d", c, i)
	}
	sql := fmt.Sprintf("SELECT %s FROM %s TABLESAMPLE SYSTEM (%g) ORDER BY %s",
		strings.Join(texts, ", "), qualified(tp.Schema, tp.Table), pct, strings.Join(cols, ", "))
	res := s.query.PgConn().ExecParams(ctx, sql, nil, nil, nil, nil).Read()
	if res.Err != nil {
		return nil, fmt.Errorf("sample key of %s.%s: %w", tp.Schema, tp.Table, res.Err)
	}
	var bounds [][]string
	for i := 1; i < n && len(res.Rows) > 0; i++ {
		row := res.Rows[len(res.Rows)*i/n]
		b := make([]string, len(row))
		for j, v := range row {
			b[j] = string(v)
		}
		if len(bounds) == 0 || !slices.Equal(bounds[len(bounds)-1], b) {
			bounds = append(bounds, b)
		}
	}
	return bounds, nil
}

// chunksFromBounds turns ordered boundaries into ranges covering the
// whole key space: (nil, b0], (b0, b1], …, (bn, nil].
func chunksFromBounds(bounds [][]string) []chunkPlan {
	chunks := make([]chunkPlan, 0, len(bounds)+1)
	var lo []string
	for _, b := range bounds {
		chunks = append(chunks, chunkPlan{Lo: lo, Hi: b})
		lo = b
	}
	return append(chunks, chunkPlan{Lo: lo})
}

// tableColumns returns the columns pgoutput would send for a table, with
// its key flags, in attribute order.
func (s *session) tableColumns(ctx context.Context, tp *tablePlan) ([]change.Column, error) {
	rows, err := s.query.Query(ctx, `SELECT a.attname::text, format_type(a.atttypid, a.atttypmod),
			a.atttypid::int8, c.relreplident::text
		FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
		WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
		ORDER BY a.attnum`, qualified(tp.Schema, tp.Table))
	if err != nil {
		return nil, fmt.Errorf("read columns of %s.%s: %w", tp.Schema, tp.Table, err)
	}
	var cols []change.Column
	for rows.Next() {
		var c change.Column
		var oid int64
		var ident string
		if err := rows.Scan(&c.Name, &c.Type, &oid, &ident); err != nil {
			return nil, err
		}
		c.OID = uint32(oid)
		c.Key = ident == "f" || (ident != "n" && slices.Contains(tp.Key, c.Name))
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read columns of %s.%s: %w", tp.Schema, tp.Table, err)
	}
	return cols, nil
}

// keyRange renders the WHERE clause selecting (lo, hi] of a table's key,
// with its text parameters starting at $1.
func keyRange(tp *tablePlan, lo, hi []string) (string, []string) {
	if len(tp.Key) == 0 {
		return "true", nil
	}
	cols := make([]string, len(tp.Key))
	for i, k := range tp.Key {
		cols[i] = pgx.Identifier{k}.Sanitize()
	}
	row := "(" + strings.Join(cols, ", ") + ")"
	var conds, params []string
	bound := func(op string, vals []string) {
		ph := make([]string, len(vals))
		for i, v := range vals {
			params = append(params, v)
			ph[i] = fmt.Sprintf("$%d::%s", len(params), tp.KeyTypes[i])
		}
		conds = append(conds, fmt.Sprintf("%s %s (%s)", row, op, strings.Join(ph, ", ")))
	}
	if lo != nil {
		bound(">", lo)
	}
	if hi != nil {
		bound("<=", hi)
	}
	if len(conds) == 0 {
		return "true", nil
	}
	return strings.Join(conds, " AND "), params
}
