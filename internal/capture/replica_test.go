package capture

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/pgtide/pgtide/internal/change"
)

// memReplica applies records in log order to an in-memory copy of the
// source and fails on anything a correct log cannot contain: an insert or
// read of a row that exists, an update or delete of one that does not.
type memReplica struct {
	t      *testing.T
	tables map[string]map[string]map[string]string // table → key → column → text
	reads  map[string]int                          // table/key → read records
	// upsertReads applies read records as upserts (online backfills
	// re-read rows that exist).
	upsertReads bool
}

func newMemReplica(t *testing.T) *memReplica {
	return &memReplica{t: t, tables: map[string]map[string]map[string]string{}, reads: map[string]int{}}
}

func rowKey(r change.Record, vals []*change.Value) string {
	var parts []string
	for i, c := range r.Columns {
		if c.Key {
			parts = append(parts, valText(vals[i]))
		}
	}
	if len(parts) == 0 { // keyless: the whole row is its identity
		for _, v := range vals {
			parts = append(parts, valText(v))
		}
	}
	return strings.Join(parts, "|")
}

func valText(v *change.Value) string {
	if v == nil {
		return "<null>"
	}
	return string(v.Data)
}

func (m *memReplica) apply(recs []change.Record) {
	m.t.Helper()
	for _, r := range recs {
		if r.Op == change.OpDDL {
			continue
		}
		tbl := m.tables[r.Table]
		if tbl == nil {
			tbl = map[string]map[string]string{}
			m.tables[r.Table] = tbl
		}
		keyless := !hasKey(r.Columns)
		switch r.Op {
		case change.OpRead, change.OpInsert:
			k := rowKey(r, r.New)
			if r.Op == change.OpRead {
				m.reads[r.Table+"/"+k]++
			}
			if keyless {
				k = fmt.Sprintf("%s#%d", k, len(tbl))
			} else if _, ok := tbl[k]; ok && !(m.upsertReads && r.Op == change.OpRead) {
				m.t.Fatalf("%s of %s key %s at %s: the row exists already (overlap)", r.Op, r.Table, k, r.ID)
			}
			tbl[k] = rowMap(r, r.New, nil)
		case change.OpUpdate:
			oldVals := r.New
			if r.Old != nil {
				oldVals = r.Old
			}
			k := rowKey(r, oldVals)
			prev, ok := tbl[k]
			if !ok {
				m.t.Fatalf("update of %s key %s at %s: no such row (gap)", r.Table, k, r.ID)
			}
			delete(tbl, k)
			tbl[rowKey(r, r.New)] = rowMap(r, r.New, prev)
		case change.OpDelete:
			k := rowKey(r, r.Old)
			if _, ok := tbl[k]; !ok {
				m.t.Fatalf("delete of %s key %s at %s: no such row (gap)", r.Table, k, r.ID)
			}
			delete(tbl, k)
		case change.OpTruncate:
			m.tables[r.Table] = map[string]map[string]string{}
		}
	}
}

func hasKey(cols []change.Column) bool {
	for _, c := range cols {
		if c.Key {
			return true
		}
	}
	return false
}

func rowMap(r change.Record, vals []*change.Value, prev map[string]string) map[string]string {
	out := map[string]string{}
	for i, c := range r.Columns {
		out[c.Name] = valText(vals[i])
	}
	for _, u := range r.Unchanged {
		out[u] = prev[u]
	}
	return out
}

// rows renders a table of the replica as sorted "col=val,…" lines.
func (m *memReplica) rows(table string, cols []string) []string {
	var out []string
	for _, row := range m.tables[table] {
		var parts []string
		for _, c := range cols {
			parts = append(parts, c+"="+row[c])
		}
		out = append(out, strings.Join(parts, ","))
	}
	sort.Strings(out)
	return out
}

// sourceRows renders a source table the same way.
func sourceRows(t *testing.T, dsn, table string, cols []string) []string {
	t.Helper()
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = fmt.Sprintf("'%s=' || coalesce(%s::text, '<null>')", c, quoteIdent(c))
	}
	out := queryStrings(t, dsn, fmt.Sprintf("SELECT %s FROM %s", strings.Join(parts, " || ',' || "), quoteIdent(table)))
	sort.Strings(out)
	return out
}

func compareTable(t *testing.T, m *memReplica, dsn, table string, cols []string) {
	t.Helper()
	got, want := m.rows(table, cols), sourceRows(t, dsn, table, cols)
	if len(got) != len(want) {
		t.Errorf("table %s: replica from the log has %d rows, source %d", table, len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			t.Errorf("table %s: first difference: log gives %q, source has %q", table, got[i], want[i])
			return
		}
	}
}
