package apply

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/pgtide/pgtide/internal/change"
)

// plan is one prepared statement shape: an operation on a table with a
// given set of written and matched columns. Plans are cached per shape and
// prepared once per target session.
type plan struct {
	name   string // prepared statement name, "" until prepared
	sql    string
	params []paramRef
	// expect is set when the statement must affect exactly one row; zero
	// rows is a divergence.
	expect bool
	// keyRefs are the parameters that identify the row, for messages.
	keyRefs []paramRef
	keyDesc string // the key's column names, for messages
}

// paramRef says where a statement parameter comes from in a row.
type paramRef struct {
	old bool // from Row.Old rather than Row.New
	idx int  // column index in the batch
}

// writeMode selects the statement variants.
type writeMode struct {
	// careful is the slow mode used to resolve a divergence under the log
	// and upsert policies: inserts carry an ON CONFLICT clause.
	careful bool
	policy  string
}

// insertPlan builds the INSERT of one row of b into t. Generated columns
// of the target are never written; identity columns GENERATED ALWAYS are
// written with OVERRIDING SYSTEM VALUE. Snapshot rows (op read) and inserts
// retried under the upsert policy update the existing row on conflict.
func insertPlan(t *table, b *change.Batch, m writeMode) *plan {
	p := &plan{}
	var cols []string
	always := false
	for i, c := range b.Columns {
		tc := t.cols[c.Name]
		if tc.generated {
			continue
		}
		always = always || tc.always
		cols = append(cols, quoteIdent(c.Name))
		p.params = append(p.params, paramRef{idx: i})
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "INSERT INTO %s (%s)", t.qname, strings.Join(cols, ", "))
	if always {
		sb.WriteString(" OVERRIDING SYSTEM VALUE")
	}
	sb.WriteString(" VALUES (")
	for i := range p.params {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString("$" + strconv.Itoa(i+1))
	}
	sb.WriteString(")")
	key := conflictKey(t, b)
	p.keyRefs, p.keyDesc = refsOf(b, key, false)
	switch {
	case b.Op == change.OpRead || (m.careful && m.policy == PolicyUpsert):
		if len(key) == 0 {
			if m.careful {
				sb.WriteString(" ON CONFLICT DO NOTHING")
			}
			break
		}
		fmt.Fprintf(&sb, " ON CONFLICT (%s) DO ", quoteList(b, key))
		var set []string
		for _, r := range p.params {
			if !contains(key, r.idx) {
				n := quoteIdent(b.Columns[r.idx].Name)
				set = append(set, n+" = EXCLUDED."+n)
			}
		}
		if len(set) == 0 {
			sb.WriteString("NOTHING")
		} else {
			sb.WriteString("UPDATE SET " + strings.Join(set, ", "))
		}
	case m.careful:
		// Under the log policy a conflicting insert is dropped and counted.
		sb.WriteString(" ON CONFLICT DO NOTHING")
		p.expect = true
	}
	p.sql = sb.String()
	return p
}

// rowMatch is how an update or delete finds its row.
type rowMatch struct {
	key  []int // column indexes matched with =
	old  bool  // key values come from Old
	full bool  // match the whole old row (no usable key)
}

// matchOf decides how row r of b is found in t: by the replica identity's
// key (from Old when the key changed, else from New), by the target's
// primary key when the source sent the whole old row, or by the whole old
// row compared as text when the table has no key at all.
func matchOf(t *table, b *change.Batch, r *change.Row) (rowMatch, error) {
	if r.Old != nil && !r.OldKeyOnly {
		// REPLICA IDENTITY FULL: every column is flagged as key.
		if pk := indexesOf(b, t.pk); len(pk) > 0 && len(pk) == len(t.pk) {
			return rowMatch{key: pk, old: true}, nil
		}
		if k := flaggedKey(b); len(k) > 0 && len(k) < len(b.Columns) {
			return rowMatch{key: k, old: true}, nil
		}
		return rowMatch{full: true}, nil
	}
	k := flaggedKey(b)
	if len(k) == 0 || (len(k) == len(b.Columns) && r.Old == nil && len(b.Columns) > 1) {
		if pk := indexesOf(b, t.pk); len(pk) > 0 && len(pk) == len(t.pk) {
			k = pk
		} else if len(k) == 0 {
			return rowMatch{}, fmt.Errorf("%s has no key in the record and no primary key in the target, "+
				"and the source sent no old row", t.qname)
		}
	}
	return rowMatch{key: k, old: r.Old != nil}, nil
}

// updatePlan builds the UPDATE of row r of b in t: it sets the columns the
// source sent (not those whose TOASTed value was unchanged, never generated
// columns) and finds the row as matchOf says.
func updatePlan(t *table, b *change.Batch, r *change.Row, mt rowMatch) *plan {
	p := &plan{expect: true}
	var set []string
	for i, c := range b.Columns {
		tc := t.cols[c.Name]
		if tc.generated || contains2(r.Unchanged, c.Name) {
			continue
		}
		if tc.always && !identityChanged(r, i, mt) {
			// An identity column GENERATED ALWAYS can only be set to
			// DEFAULT; it is left alone unless the source changed it.
			continue
		}
		p.params = append(p.params, paramRef{idx: i})
		set = append(set, quoteIdent(c.Name)+" = $"+strconv.Itoa(len(p.params)))
	}
	if len(set) == 0 {
		return nil
	}
	where := p.where(t, b, r, mt)
	p.sql = fmt.Sprintf("UPDATE %s SET %s WHERE %s", t.qname, strings.Join(set, ", "), where)
	return p
}

// deletePlan builds the DELETE of row r of b from t.
func deletePlan(t *table, b *change.Batch, r *change.Row, mt rowMatch) *plan {
	p := &plan{expect: true}
	p.sql = fmt.Sprintf("DELETE FROM %s WHERE %s", t.qname, p.where(t, b, r, mt))
	return p
}

// where appends the match parameters to p and returns the WHERE clause.
// A whole-row match compares each column's output text, which works for
// every type (json, point and xml have no equality operator) because the
// target session uses the same output settings as capture; it picks one
// row through its ctid, so of two identical rows exactly one changes.
func (p *plan) where(t *table, b *change.Batch, r *change.Row, mt rowMatch) string {
	var conds []string
	if mt.full {
		for i, c := range b.Columns {
			if t.cols[c.Name].generated {
				continue
			}
			p.params = append(p.params, paramRef{old: true, idx: i})
			// format('%s') goes through the type's output function (a cast
			// to text would trim char(n) padding); num_nulls tells a NULL
			// column from a composite whose fields are all NULL.
			conds = append(conds, fmt.Sprintf("CASE WHEN $%[2]d::text IS NULL THEN pg_catalog.num_nulls(%[1]s) = 1 "+
				"ELSE pg_catalog.num_nulls(%[1]s) = 0 AND pg_catalog.format('%%s', %[1]s) = $%[2]d::text END",
				quoteIdent(c.Name), len(p.params)))
		}
		p.keyRefs, p.keyDesc = refsOf(b, allIndexes(b), true)
		return fmt.Sprintf("ctid = (SELECT ctid FROM %s WHERE %s LIMIT 1)", t.qname, strings.Join(conds, " AND "))
	}
	for _, i := range mt.key {
		ref := paramRef{old: mt.old, idx: i}
		p.params = append(p.params, ref)
		conds = append(conds, fmt.Sprintf("%s = $%d", quoteIdent(b.Columns[i].Name), len(p.params)))
	}
	p.keyRefs, p.keyDesc = refsOf(b, mt.key, mt.old)
	return strings.Join(conds, " AND ")
}

// identityChanged reports whether the source changed column i of r, as far
// as the record tells.
func identityChanged(r *change.Row, i int, mt rowMatch) bool {
	if r.Old == nil || r.OldKeyOnly && !contains(mt.key, i) {
		return false
	}
	o, n := r.Old[i], r.New[i]
	if o == nil || n == nil {
		return o != n
	}
	return string(o.Data) != string(n.Data)
}

// planKey identifies a statement shape for the plan cache.
func planKey(op string, b *change.Batch, r *change.Row, mt rowMatch, m writeMode) string {
	var sb strings.Builder
	sb.WriteString(op)
	sb.WriteByte(0)
	sb.WriteString(b.Schema)
	sb.WriteByte(0)
	sb.WriteString(b.Table)
	for _, c := range b.Columns {
		sb.WriteByte(0)
		sb.WriteString(c.Name)
	}
	fmt.Fprintf(&sb, "\x01%v%v%s%v%v%v", m.careful, b.Op == change.OpRead, m.policy, mt.old, mt.full, mt.key)
	if r != nil {
		for _, u := range r.Unchanged {
			sb.WriteByte(0)
			sb.WriteString(u)
		}
		if r.Old != nil {
			fmt.Fprintf(&sb, "\x02%v", r.OldKeyOnly)
		}
	}
	return sb.String()
}

// conflictKey returns the columns an upsert conflicts on: the replica
// identity key when it is a real key, else the target's primary key.
func conflictKey(t *table, b *change.Batch) []int {
	if k := flaggedKey(b); len(k) > 0 && len(k) < len(b.Columns) {
		return k
	}
	if pk := indexesOf(b, t.pk); len(pk) > 0 && len(pk) == len(t.pk) {
		return pk
	}
	return nil
}

func flaggedKey(b *change.Batch) []int {
	var k []int
	for i, c := range b.Columns {
		if c.Key {
			k = append(k, i)
		}
	}
	return k
}

func indexesOf(b *change.Batch, names []string) []int {
	var out []int
	for _, n := range names {
		for i, c := range b.Columns {
			if c.Name == n {
				out = append(out, i)
			}
		}
	}
	return out
}

func allIndexes(b *change.Batch) []int {
	out := make([]int, len(b.Columns))
	for i := range out {
		out[i] = i
	}
	return out
}

func refsOf(b *change.Batch, idx []int, old bool) ([]paramRef, string) {
	refs := make([]paramRef, len(idx))
	names := make([]string, len(idx))
	for j, i := range idx {
		refs[j] = paramRef{old: old, idx: i}
		names[j] = b.Columns[i].Name
	}
	return refs, strings.Join(names, ", ")
}

func quoteList(b *change.Batch, idx []int) string {
	names := make([]string, len(idx))
	for j, i := range idx {
		names[j] = quoteIdent(b.Columns[i].Name)
	}
	return strings.Join(names, ", ")
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func contains2(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// describeKey renders the key values of row r as "(a, b)=(1, x)" for
// messages; binary values are shown in hex.
func describeKey(p *plan, r *change.Row) string {
	vals := make([]string, len(p.keyRefs))
	for j, ref := range p.keyRefs {
		v := valueOf(r, ref)
		switch {
		case v == nil:
			vals[j] = "NULL"
		case v.Format == change.FormatBinary:
			vals[j] = fmt.Sprintf("\\x%x", v.Data)
		default:
			vals[j] = string(v.Data)
		}
	}
	return fmt.Sprintf("(%s)=(%s)", p.keyDesc, strings.Join(vals, ", "))
}

func valueOf(r *change.Row, ref paramRef) *change.Value {
	vals := r.New
	if ref.old {
		vals = r.Old
	}
	if ref.idx >= len(vals) {
		return nil
	}
	return vals[ref.idx]
}

// bind returns the parameter values and formats of row r for p.
func (p *plan) bind(r *change.Row, vals [][]byte, formats []int16) ([][]byte, []int16) {
	vals, formats = vals[:0], formats[:0]
	for _, ref := range p.params {
		v := valueOf(r, ref)
		if v == nil {
			vals = append(vals, nil)
			formats = append(formats, 0)
			continue
		}
		vals = append(vals, v.Data)
		if v.Format == change.FormatBinary {
			formats = append(formats, 1)
		} else {
			formats = append(formats, 0)
		}
	}
	return vals, formats
}
