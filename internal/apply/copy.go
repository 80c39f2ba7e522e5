package apply

import (
	"fmt"
	"strings"

	"github.com/pgtide/pgtide/internal/change"
)

// Bounds of one COPY: a run of inserts longer than this is sent in
// several COPY statements, so memory stays bounded whatever the size of a
// source transaction.
const (
	copyMaxRows  = 10000
	copyMaxBytes = 8 << 20
	// copyMinRows is the shortest run worth a COPY; shorter runs go as
	// prepared INSERTs in the pipeline, which needs no extra round trip.
	copyMinRows = 8
)

// insertRun collects consecutive inserts into one table with one column
// set, in text format, for COPY. It keeps the rows' batches so a short run
// can still be sent as single INSERTs.
type insertRun struct {
	t     *table
	b     *change.Batch // batch of the first row: columns and names
	rows  []runRow
	bytes int
}

type runRow struct {
	b *change.Batch
	i int
}

// copyable reports whether every value of row r is in text format.
func copyable(r *change.Row) bool {
	for _, v := range r.New {
		if v != nil && v.Format != change.FormatText {
			return false
		}
	}
	return true
}

// copySQL returns the COPY statement of the run. COPY writes identity
// columns as given (as OVERRIDING SYSTEM VALUE would); generated columns
// are left out.
func (r *insertRun) copySQL() string {
	var cols []string
	for _, c := range r.b.Columns {
		if !r.t.cols[c.Name].generated {
			cols = append(cols, quoteIdent(c.Name))
		}
	}
	return fmt.Sprintf("COPY %s (%s) FROM STDIN", r.t.qname, strings.Join(cols, ", "))
}

// encode appends the run's rows in COPY text format to dst.
func (r *insertRun) encode(dst []byte) []byte {
	skip := make([]bool, len(r.b.Columns))
	for i, c := range r.b.Columns {
		skip[i] = r.t.cols[c.Name].generated
	}
	for _, rr := range r.rows {
		row := &rr.b.Rows[rr.i]
		first := true
		for i, v := range row.New {
			if skip[i] {
				continue
			}
			if !first {
				dst = append(dst, '\t')
			}
			first = false
			if v == nil {
				dst = append(dst, '\\', 'N')
				continue
			}
			dst = appendCopyText(dst, v.Data)
		}
		dst = append(dst, '\n')
	}
	return dst
}

// appendCopyText escapes a text value for COPY's text format: backslash,
// and the delimiter and line characters.
// https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.2
func appendCopyText(dst, s []byte) []byte {
	for _, c := range s {
		switch c {
		case '\\':
			dst = append(dst, '\\', '\\')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		default:
			dst = append(dst, c)
		}
	}
	return dst
}
