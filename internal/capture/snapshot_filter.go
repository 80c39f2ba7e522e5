package capture

import (
	"context"
	"fmt"
	"strings"

	"github.com/pgtide/pgtide/internal/change"
)

// streamFilter skips streamed changes that a resumed snapshot already
// contains: a change of a row in a range read under the snapshot at LSN L
// is skipped when its transaction committed at or before L. It is empty
// (nil) unless a snapshot was resumed, and is consulted only up to the
// highest such LSN.
type streamFilter struct {
	plan   *snapshotPlan
	tables map[[2]string][]resumeRange
	until  change.LSN
}

func newStreamFilter(p *snapshotPlan) *streamFilter {
	if p == nil || len(p.Resumes) == 0 {
		return nil
	}
	f := &streamFilter{plan: p, tables: map[[2]string][]resumeRange{}}
	for _, r := range p.Resumes {
		tp := p.Tables[r.Table]
		k := [2]string{tp.Schema, tp.Table}
		f.tables[k] = append(f.tables[k], r)
		f.until = max(f.until, r.LSN)
	}
	return f
}

// resumedOp returns the operation under which a change of rel in the
// current transaction still belongs in the stream once a resumed snapshot
// is taken into account, or "" when the snapshot already holds its effect.
// An update whose old and new keys fall on different sides of a resumed
// range keeps only the side the snapshot does not hold: it becomes an
// insert of the new row or a delete of the old one. row is nil for a
// truncate.
func (s *session) resumedOp(ctx context.Context, rel *relation, op change.Op, row *change.Row) (change.Op, error) {
	f := s.filter
	if f == nil || s.tx.lsn > f.until {
		return op, nil
	}
	if row == nil {
		whole, _, err := s.inResumed(ctx, rel, nil)
		if whole || err != nil {
			return "", err
		}
		return op, nil
	}
	var oldIn, newIn bool
	var err error
	if row.New != nil {
		if _, newIn, err = s.inResumed(ctx, rel, row.New); err != nil {
			return "", err
		}
	}
	oldIn = newIn
	if row.Old != nil && (op == change.OpDelete || keyChanged(rel, row)) {
		if _, oldIn, err = s.inResumed(ctx, rel, row.Old); err != nil {
			return "", err
		}
	}
	switch {
	case oldIn && newIn, op == change.OpInsert && newIn, op == change.OpDelete && oldIn:
		return "", nil
	case op == change.OpUpdate && oldIn:
		return change.OpInsert, nil
	case op == change.OpUpdate && newIn:
		return change.OpDelete, nil
	}
	return op, nil
}

// keyChanged reports whether an update moved its row to another key.
func keyChanged(rel *relation, row *change.Row) bool {
	for i, c := range rel.columns {
		if c.Key && row.Old[i] != nil && (row.New[i] == nil || string(row.Old[i].Data) != string(row.New[i].Data)) {
			return true
		}
	}
	return false
}

// inResumed reports whether rel was re-read whole, or the row with the
// key in vals lies in a range re-read, under a snapshot taken after the
// current transaction committed.
func (s *session) inResumed(ctx context.Context, rel *relation, vals []*change.Value) (whole, in bool, err error) {
	f := s.filter
	for _, r := range f.tables[[2]string{rel.schema, rel.table}] {
		if s.tx.lsn > r.LSN {
			continue
		}
		if r.Whole {
			return true, true, nil
		}
		if vals == nil {
			continue
		}
		if in, err := s.keyInRange(ctx, rel, &f.plan.Tables[r.Table], vals, r); in || err != nil {
			return false, in, err
		}
	}
	return false, false, nil
}

// keyInRange asks the source whether the row's key lies in (r.Lo, r.Hi],
// so the comparison uses the key types' own ordering and collations.
func (s *session) keyInRange(ctx context.Context, rel *relation, tp *tablePlan, vals []*change.Value, r resumeRange) (bool, error) {
	var args [][]byte
	var oids []uint32
	var formats []int16
	ph := make([]string, len(tp.Key))
	for i, k := range tp.Key {
		c := rel.column(k)
		if c < 0 || vals[c] == nil {
			return false, fmt.Errorf("snapshot filter: key column %q of %s.%s missing in a change", k, rel.schema, rel.table)
		}
		v := vals[c]
		args = append(args, v.Data)
		if v.Format == change.FormatBinary {
			oids, formats = append(oids, rel.columns[c].OID), append(formats, 1)
		} else {
			oids, formats = append(oids, 0), append(formats, 0)
		}
		ph[i] = fmt.Sprintf("$%d::%s", i+1, tp.KeyTypes[i])
	}
	row0 := "(" + strings.Join(ph, ", ") + ")"
	var conds []string
	bound := func(op string, b []string) {
		bp := make([]string, len(b))
		for i, v := range b {
			args, oids, formats = append(args, []byte(v)), append(oids, 0), append(formats, 0)
			bp[i] = fmt.Sprintf("$%d::%s", len(args), tp.KeyTypes[i])
		}
		conds = append(conds, fmt.Sprintf("%s %s (%s)", row0, op, strings.Join(bp, ", ")))
	}
	if r.Lo != nil {
		bound(">", r.Lo)
	}
	if r.Hi != nil {
		bound("<=", r.Hi)
	}
	if len(conds) == 0 {
		return true, nil
	}
	res := s.query.PgConn().ExecParams(ctx, "SELECT "+strings.Join(conds, " AND "), args, oids, formats, nil).Read()
	if res.Err != nil {
		return false, fmt.Errorf("snapshot filter: compare key of %s.%s: %w", rel.schema, rel.table, res.Err)
	}
	return len(res.Rows) == 1 && string(res.Rows[0][0]) == "t", nil
}
