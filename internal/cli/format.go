package cli

import (
	"bufio"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pgtide/pgtide/internal/change"
)

// Limits of the human format, which is for eyes, not machines: the JSON
// format carries every value in full.
const (
	maxValueRunes     = 60
	maxStatementRunes = 200
)

// timeFormat is the commit time in the human format: UTC, milliseconds.
const timeFormat = "2006-01-02T15:04:05.000Z07:00"

// recordPrinter writes records in the human or the JSON format. It is not
// safe for concurrent use.
type recordPrinter struct {
	w    *bufio.Writer
	json bool
	buf  []byte
}

func newRecordPrinter(w io.Writer, asJSON bool) *recordPrinter {
	return &recordPrinter{w: bufio.NewWriter(w), json: asJSON}
}

// print writes one record; call flush to push the output out.
func (p *recordPrinter) print(r change.Record) error {
	if p.json {
		b, err := json.Marshal(newJSONRecord(r))
		if err != nil {
			return err
		}
		p.w.Write(b)
		return p.w.WriteByte('\n')
	}
	p.buf = appendHuman(p.buf[:0], r)
	p.buf = append(p.buf, '\n')
	_, err := p.w.Write(p.buf)
	return err
}

func (p *recordPrinter) flush() error { return p.w.Flush() }

// appendHuman appends the one-line human form of r:
//
//	<commit time> <lsn:pos> <op> schema.table key={…} new={col=val, …} (commit)
func appendHuman(b []byte, r change.Record) []byte {
	b = r.CommitTime.UTC().AppendFormat(b, timeFormat)
	b = append(b, ' ')
	b = append(b, r.ID.String()...)
	b = append(b, ' ')
	b = append(b, r.Op...)
	b = append(b, ' ')

	switch r.Op {
	case change.OpDDL:
		b = appendDDL(b, r.DDL)
	case change.OpTruncate:
		b = appendTable(b, r)
		if r.Cascade {
			b = append(b, " cascade"...)
		}
		if r.RestartIdentity {
			b = append(b, " restart identity"...)
		}
	default:
		b = appendTable(b, r)
		b = appendRow(b, r)
	}

	if r.Last {
		b = append(b, " (commit)"...)
	}
	return b
}

func appendTable(b []byte, r change.Record) []byte {
	b = append(b, r.Schema...)
	b = append(b, '.')
	return append(b, r.Table...)
}

func appendDDL(b []byte, d *change.DDL) []byte {
	if d == nil {
		return append(b, "(no statement)"...)
	}
	if d.Tag != "" {
		b = append(b, d.Tag...)
		b = append(b, ": "...)
	}
	stmt := strings.Join(strings.Fields(d.Statement), " ")
	return append(b, truncate(stmt, maxStatementRunes)...)
}

// appendRow appends the key and the values of an insert, update, delete or
// read record.
func appendRow(b []byte, r change.Record) []byte {
	keyRow := r.New
	if r.Op == change.OpDelete || keyRow == nil {
		keyRow = r.Old
	}
	if hasKey(r.Columns) && keyRow != nil {
		b = append(b, " key="...)
		b = appendValues(b, r, keyRow, true)
	}

	if r.New != nil {
		b = append(b, " new="...)
		b = appendValues(b, r, r.New, false)
	}
	switch {
	case r.Old == nil:
	case r.OldKeyOnly && r.Op == change.OpUpdate:
		// Sent only when the update changed the key.
		b = append(b, " old_key="...)
		b = appendValues(b, r, r.Old, true)
	case !r.OldKeyOnly:
		b = append(b, " old="...)
		b = appendValues(b, r, r.Old, false)
	}
	return b
}

func hasKey(cols []change.Column) bool {
	return slices.ContainsFunc(cols, func(c change.Column) bool { return c.Key })
}

// appendValues appends {col=val, …} for row, only key columns when
// keyOnly.
func appendValues(b []byte, r change.Record, row []*change.Value, keyOnly bool) []byte {
	b = append(b, '{')
	first := true
	for i, c := range r.Columns {
		if keyOnly && !c.Key {
			continue
		}
		if !first {
			b = append(b, ", "...)
		}
		first = false
		b = append(b, c.Name...)
		b = append(b, '=')
		switch {
		case i < len(row) && row[i] != nil:
			b = appendValue(b, row[i])
		case slices.Contains(r.Unchanged, c.Name):
			b = append(b, "<unchanged>"...)
		default:
			b = append(b, "null"...)
		}
	}
	return append(b, '}')
}

// appendValue appends one value, shortened to maxValueRunes and quoted
// when it would otherwise be ambiguous.
func appendValue(b []byte, v *change.Value) []byte {
	if v.Format == change.FormatBinary || !utf8.Valid(v.Data) {
		// Show raw bytes as hex, as bytea_output = hex does.
		n := min(len(v.Data), maxValueRunes/2)
		b = append(b, `\x`...)
		b = hex.AppendEncode(b, v.Data[:n])
		if n < len(v.Data) {
			b = append(b, "…"...)
		}
		return b
	}
	s := truncate(string(v.Data), maxValueRunes)
	if needsQuote(s) {
		return strconv.AppendQuote(b, s)
	}
	return append(b, s...)
}

// needsQuote reports whether s could be misread unquoted in a {k=v, …}
// list: it is empty, looks like a marker, or holds separators, quotes or
// non-printing characters.
func needsQuote(s string) bool {
	if s == "" || s == "null" || s == "<unchanged>" {
		return true
	}
	for _, c := range s {
		switch {
		case c == ' ' || c == ',' || c == '{' || c == '}' || c == '=' || c == '"' || c == '\\':
			return true
		case !unicode.IsPrint(c):
			return true
		}
	}
	return false
}

// truncate shortens s to at most n runes, marking a cut with "…".
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// jsonRecord is the --json form of a record. Values are strings, null for
// SQL NULL, {"b64": …} for binary values and {"t64": …} for text that is
// not valid UTF-8.
type jsonRecord struct {
	Source          string          `json:"source"`
	ID              string          `json:"id"`
	LSN             string          `json:"lsn"`
	Pos             uint32          `json:"pos"`
	Xid             uint32          `json:"xid"`
	CommitTime      time.Time       `json:"commit_time"`
	Schema          string          `json:"schema"`
	Table           string          `json:"table"`
	Op              change.Op       `json:"op"`
	Columns         []change.Column `json:"columns"`
	New             *jsonRow        `json:"new"`
	Old             *jsonRow        `json:"old"`
	OldKeyOnly      bool            `json:"old_key_only,omitempty"`
	Unchanged       []string        `json:"unchanged"`
	Last            bool            `json:"last"`
	Cascade         bool            `json:"cascade,omitempty"`
	RestartIdentity bool            `json:"restart_identity,omitempty"`
	DDL             *change.DDL     `json:"ddl"`
}

func newJSONRecord(r change.Record) jsonRecord {
	j := jsonRecord{
		Source:          r.Source,
		ID:              r.ID.String(),
		LSN:             r.ID.LSN.String(),
		Pos:             r.ID.Pos,
		Xid:             r.Xid,
		CommitTime:      r.CommitTime.UTC(),
		Schema:          r.Schema,
		Table:           r.Table,
		Op:              r.Op,
		Columns:         r.Columns,
		OldKeyOnly:      r.OldKeyOnly,
		Unchanged:       r.Unchanged,
		Last:            r.Last,
		Cascade:         r.Cascade,
		RestartIdentity: r.RestartIdentity,
		DDL:             r.DDL,
	}
	if j.Columns == nil {
		j.Columns = []change.Column{}
	}
	if j.Unchanged == nil {
		j.Unchanged = []string{}
	}
	if r.New != nil {
		j.New = &jsonRow{cols: r.Columns, vals: r.New, skip: r.Unchanged}
	}
	if r.Old != nil {
		j.Old = &jsonRow{cols: r.Columns, vals: r.Old, keyOnly: r.OldKeyOnly}
	}
	return j
}

// jsonRow marshals a row as an object of column names to values, in
// column order. Unchanged TOAST columns are left out (they are listed in
// "unchanged"), as are non-key columns of a key-only old row.
type jsonRow struct {
	cols    []change.Column
	vals    []*change.Value
	skip    []string
	keyOnly bool
}

// MarshalJSON implements json.Marshaler.
func (r *jsonRow) MarshalJSON() ([]byte, error) {
	b := []byte{'{'}
	first := true
	for i, c := range r.cols {
		if (r.keyOnly && !c.Key) || slices.Contains(r.skip, c.Name) {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		name, err := json.Marshal(c.Name)
		if err != nil {
			return nil, err
		}
		b = append(b, name...)
		b = append(b, ':')
		var v *change.Value
		if i < len(r.vals) {
			v = r.vals[i]
		}
		b = appendJSONValue(b, v)
	}
	return append(b, '}'), nil
}

func appendJSONValue(b []byte, v *change.Value) []byte {
	switch {
	case v == nil:
		return append(b, "null"...)
	case v.Format == change.FormatBinary:
		b = append(b, `{"b64":"`...)
		b = base64.StdEncoding.AppendEncode(b, v.Data)
		return append(b, `"}`...)
	case !utf8.Valid(v.Data):
		b = append(b, `{"t64":"`...)
		b = base64.StdEncoding.AppendEncode(b, v.Data)
		return append(b, `"}`...)
	}
	s, _ := json.Marshal(string(v.Data)) // valid UTF-8: cannot fail
	return append(b, s...)
}
