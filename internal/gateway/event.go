package gateway

import (
	"strconv"
	"time"

	"github.com/pgtide/pgtide/internal/change"
)

// opCommit is the operation of the transaction boundary a subscription
// with Transactions receives after the last record of a transaction.
const opCommit = "commit"

// event is one change ready to send: its metadata for the transports that
// carry it apart (gRPC, metrics) and its JSON, built once.
type event struct {
	cursor     string
	op         string
	schema     string
	table      string
	id         change.ID
	xid        uint32
	commitTime time.Time
	last       bool
	// key identifies the row for debouncing: schema, table and the key
	// values; empty when the record has no key.
	key string
	// ackID is set on deliveries of a consumer group.
	ackID string
	json  []byte
}

// projection selects the columns a subscription sees; nil sees all.
type projection map[string]bool

func (p projection) has(name string) bool { return p == nil || p[name] }

// newEvent encodes record r at cursor for a subscription that sees the
// columns of proj. The JSON is
//
//	{"cursor":…,"source":…,"op":…,"schema":…,"table":…,"lsn":…,"pos":…,
//	 "xid":…,"commit_time":…,"last":…,"key":{…},"new":{…},"old":{…},
//	 "unchanged":[…],"ddl":{…},"cascade":…,"restart_identity":…}
//
// where key, new, old, unchanged, ddl, cascade and restart_identity appear
// only when they apply.
func newEvent(r *change.Record, cursor string, proj projection) *event {
	ev := &event{
		cursor:     cursor,
		op:         string(r.Op),
		schema:     r.Schema,
		table:      r.Table,
		id:         r.ID,
		xid:        r.Xid,
		commitTime: r.CommitTime,
		last:       r.Last,
	}
	b := make([]byte, 0, 256)
	b = appendHeader(b, r, string(r.Op), cursor)

	keyStart := len(b)
	keyRow := r.New
	if r.Op == change.OpDelete || keyRow == nil {
		keyRow = r.Old
	}
	if keyRow != nil {
		b = appendRow(b, `,"key":`, r, keyRow, proj, true, true)
		if len(b) > keyStart {
			ev.key = r.Schema + "." + r.Table + string(b[keyStart+len(`,"key":`):])
		}
	}
	if r.New != nil {
		b = appendRow(b, `,"new":`, r, r.New, proj, false, false)
	}
	if r.Old != nil {
		b = appendRow(b, `,"old":`, r, r.Old, proj, r.OldKeyOnly, false)
	}
	if len(r.Unchanged) > 0 {
		b = append(b, `,"unchanged":[`...)
		n := 0
		for _, name := range r.Unchanged {
			if !proj.has(name) {
				continue
			}
			if n > 0 {
				b = append(b, ',')
			}
			b = appendString(b, name)
			n++
		}
		b = append(b, ']')
	}
	if r.DDL != nil {
		b = appendDDL(b, r.DDL)
	}
	if r.Op == change.OpTruncate {
		b = append(b, `,"cascade":`...)
		b = strconv.AppendBool(b, r.Cascade)
		b = append(b, `,"restart_identity":`...)
		b = strconv.AppendBool(b, r.RestartIdentity)
	}
	ev.json = append(b, '}')
	return ev
}

// commitEvent returns the transaction boundary after record r.
func commitEvent(r *change.Record, cursor string) *event {
	b := appendHeader(make([]byte, 0, 160), r, opCommit, cursor)
	return &event{
		cursor:     cursor,
		op:         opCommit,
		id:         r.ID,
		xid:        r.Xid,
		commitTime: r.CommitTime,
		last:       true,
		json:       append(b, '}'),
	}
}

// appendHeader appends the opening brace and the fields every change has.
func appendHeader(b []byte, r *change.Record, op, cursor string) []byte {
	b = append(b, `{"cursor":`...)
	b = appendString(b, cursor)
	b = append(b, `,"source":`...)
	b = appendString(b, r.Source)
	b = append(b, `,"op":`...)
	b = appendString(b, op)
	if op != opCommit {
		b = append(b, `,"schema":`...)
		b = appendString(b, r.Schema)
		b = append(b, `,"table":`...)
		b = appendString(b, r.Table)
	}
	b = append(b, `,"lsn":"`...)
	b = append(b, r.ID.LSN.String()...)
	b = append(b, `","pos":`...)
	b = strconv.AppendUint(b, uint64(r.ID.Pos), 10)
	b = append(b, `,"xid":`...)
	b = strconv.AppendUint(b, uint64(r.Xid), 10)
	b = append(b, `,"commit_time":"`...)
	b = r.CommitTime.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","last":`...)
	return strconv.AppendBool(b, r.Last)
}

// appendRow appends name and the object of row's visible values. With
// keyOnly it holds the key columns only; with omitEmpty nothing is
// appended when no column is left. Unchanged TOAST columns are left out.
func appendRow(
	b []byte, name string, r *change.Record, row []*change.Value, proj projection, keyOnly, omitEmpty bool,
) []byte {
	start := len(b)
	b = append(b, name...)
	b = append(b, '{')
	n := 0
	for i, col := range r.Columns {
		if i >= len(row) || !proj.has(col.Name) || keyOnly && !col.Key {
			continue
		}
		v := row[i]
		if v == nil && isUnchanged(r, col.Name) {
			continue
		}
		if n > 0 {
			b = append(b, ',')
		}
		b = appendString(b, col.Name)
		b = append(b, ':')
		b = appendValue(b, col.OID, v)
		n++
	}
	if omitEmpty && n == 0 {
		return b[:start]
	}
	return append(b, '}')
}

func isUnchanged(r *change.Record, name string) bool {
	for _, u := range r.Unchanged {
		if u == name {
			return true
		}
	}
	return false
}

func appendDDL(b []byte, d *change.DDL) []byte {
	b = append(b, `,"ddl":{"tag":`...)
	b = appendString(b, d.Tag)
	b = append(b, `,"statement":`...)
	b = appendString(b, d.Statement)
	if d.SearchPath != "" {
		b = append(b, `,"search_path":`...)
		b = appendString(b, d.SearchPath)
	}
	if d.User != "" {
		b = append(b, `,"user":`...)
		b = appendString(b, d.User)
	}
	if len(d.Objects) > 0 {
		b = append(b, `,"objects":[`...)
		for i, o := range d.Objects {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, o)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// predicateEnv returns the variables the row predicate sees for r.
func predicateEnv(r *change.Record, proj projection) map[string]any {
	return map[string]any{
		"op":     string(r.Op),
		"schema": r.Schema,
		"table":  r.Table,
		"new":    rowMap(r, r.New, proj),
		"old":    rowMap(r, r.Old, proj),
	}
}

// rowMap converts row to a map of Go values; a missing row is an empty map
// so that `new.x` is nil rather than an error.
func rowMap(r *change.Record, row []*change.Value, proj projection) map[string]any {
	m := make(map[string]any, len(row))
	for i, col := range r.Columns {
		if i < len(row) && proj.has(col.Name) {
			m[col.Name] = goValue(col.OID, row[i])
		}
	}
	return m
}
