package change

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// encodingVersion is written into every batch; decoders reject others.
const encodingVersion = 1

// AppendJSON appends the log encoding of b to dst. The encoder is written
// by hand because it runs once per captured row batch on the hot path; the
// decoder uses encoding/json.
func (b *Batch) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"v":1,"source":`...)
	dst = appendString(dst, b.Source)
	dst = append(dst, `,"lsn":"`...)
	dst = append(dst, b.LSN.String()...)
	dst = append(dst, `","pos":`...)
	dst = strconv.AppendUint(dst, uint64(b.FirstPos), 10)
	dst = append(dst, `,"xid":`...)
	dst = strconv.AppendUint(dst, uint64(b.Xid), 10)
	dst = append(dst, `,"commit_time":"`...)
	dst = b.CommitTime.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","schema":`...)
	dst = appendString(dst, b.Schema)
	dst = append(dst, `,"table":`...)
	dst = appendString(dst, b.Table)
	dst = append(dst, `,"op":`...)
	dst = appendString(dst, string(b.Op))
	dst = appendColumns(dst, b.Columns)
	dst = append(dst, `,"rows":[`...)
	for i := range b.Rows {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendRow(dst, &b.Rows[i])
	}
	dst = append(dst, ']')
	dst = appendFlag(dst, "last", b.Last)
	dst = appendFlag(dst, "cascade", b.Cascade)
	dst = appendFlag(dst, "restart_identity", b.RestartIdentity)
	if b.DDL != nil {
		ddl, _ := json.Marshal(b.DDL) // a struct of strings cannot fail
		dst = append(dst, `,"ddl":`...)
		dst = append(dst, ddl...)
	}
	return append(dst, '}')
}

func appendFlag(dst []byte, name string, on bool) []byte {
	if !on {
		return dst
	}
	dst = append(dst, `,"`...)
	dst = append(dst, name...)
	return append(dst, `":true`...)
}

func appendColumns(dst []byte, cols []Column) []byte {
	dst = append(dst, `,"columns":[`...)
	for i, c := range cols {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"name":`...)
		dst = appendString(dst, c.Name)
		dst = append(dst, `,"type":`...)
		dst = appendString(dst, c.Type)
		dst = append(dst, `,"oid":`...)
		dst = strconv.AppendUint(dst, uint64(c.OID), 10)
		if c.Key {
			dst = append(dst, `,"key":true`...)
		}
		dst = append(dst, '}')
	}
	return append(dst, ']')
}

func appendRow(dst []byte, r *Row) []byte {
	dst = append(dst, '{')
	sep := false
	if r.New != nil {
		dst = append(dst, `"new":`...)
		dst = appendValues(dst, r.New)
		sep = true
	}
	if r.Old != nil {
		if sep {
			dst = append(dst, ',')
		}
		dst = append(dst, `"old":`...)
		dst = appendValues(dst, r.Old)
		sep = true
		if r.OldKeyOnly {
			dst = append(dst, `,"old_key_only":true`...)
		}
	}
	if len(r.Unchanged) > 0 {
		if sep {
			dst = append(dst, ',')
		}
		dst = append(dst, `"unchanged":[`...)
		for i, name := range r.Unchanged {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, name)
		}
		dst = append(dst, ']')
	}
	return append(dst, '}')
}

func appendValues(dst []byte, vals []*Value) []byte {
	dst = append(dst, '[')
	for i, v := range vals {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendValue(dst, v)
	}
	return append(dst, ']')
}

// appendValue writes null, a JSON string (text that is valid UTF-8), or an
// object holding base64: {"b64":…} for binary format, {"t64":…} for text
// that is not valid UTF-8.
func appendValue(dst []byte, v *Value) []byte {
	switch {
	case v == nil:
		return append(dst, "null"...)
	case v.Format == FormatText && utf8.Valid(v.Data):
		return appendStringBytes(dst, v.Data)
	}
	key := `{"b64":"`
	if v.Format == FormatText {
		key = `{"t64":"`
	}
	dst = append(dst, key...)
	dst = base64.StdEncoding.AppendEncode(dst, v.Data)
	return append(dst, `"}`...)
}

const hexDigits = "0123456789abcdef"

func appendString(dst []byte, s string) []byte {
	return appendStringBytes(dst, []byte(s))
}

// appendStringBytes writes s as a JSON string. s must be valid UTF-8
// (names from the catalog and checked values are).
func appendStringBytes(dst []byte, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// wireBatch mirrors the JSON layout written by AppendJSON.
type wireBatch struct {
	V               int       `json:"v"`
	Source          string    `json:"source"`
	LSN             string    `json:"lsn"`
	Pos             uint32    `json:"pos"`
	Xid             uint32    `json:"xid"`
	CommitTime      time.Time `json:"commit_time"`
	Schema          string    `json:"schema"`
	Table           string    `json:"table"`
	Op              Op        `json:"op"`
	Columns         []Column  `json:"columns"`
	Rows            []wireRow `json:"rows"`
	Last            bool      `json:"last"`
	Cascade         bool      `json:"cascade"`
	RestartIdentity bool      `json:"restart_identity"`
	DDL             *DDL      `json:"ddl"`
}

type wireRow struct {
	New        []*Value `json:"new"`
	Old        []*Value `json:"old"`
	OldKeyOnly bool     `json:"old_key_only"`
	Unchanged  []string `json:"unchanged"`
}

// UnmarshalJSON decodes a value written by the batch encoder: a string,
// or an object with exactly one of "b64" and "t64".
func (v *Value) UnmarshalJSON(data []byte) error {
	if len(data) > 0 && data[0] == '"' {
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
		*v = Value{Format: FormatText, Data: []byte(s)}
		return nil
	}
	var obj struct {
		B64 *string `json:"b64"`
		T64 *string `json:"t64"`
	}
	if err := json.Unmarshal(data, &obj); err != nil {
		return fmt.Errorf("value: want a string or {\"b64\"|\"t64\": base64}: %w", err)
	}
	enc, format := obj.B64, FormatBinary
	if obj.T64 != nil {
		enc, format = obj.T64, FormatText
	}
	if enc == nil || (obj.B64 != nil && obj.T64 != nil) {
		return errors.New("value: want exactly one of \"b64\" and \"t64\"")
	}
	raw, err := base64.StdEncoding.DecodeString(*enc)
	if err != nil {
		return fmt.Errorf("value: bad base64: %w", err)
	}
	*v = Value{Format: format, Data: raw}
	return nil
}

// DecodeBatch decodes one log message written by [Batch.AppendJSON]. It
// checks the structure (version, operation, LSN, row widths) so a consumer
// never sees a half-valid batch; the error says what is wrong.
func DecodeBatch(data []byte) (*Batch, error) {
	if b, ok := fastDecode(data); ok {
		return b, nil
	}
	return decodeJSON(data)
}

// decodeJSON is DecodeBatch through encoding/json: the reference decoder
// and the source of every error message.
func decodeJSON(data []byte) (*Batch, error) {
	var w wireBatch
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, fmt.Errorf("decode change batch: %w", err)
	}
	b, err := w.batch()
	if err != nil {
		return nil, fmt.Errorf("decode change batch: %w", err)
	}
	return b, nil
}

func (w *wireBatch) batch() (*Batch, error) {
	if w.V != encodingVersion {
		return nil, fmt.Errorf("encoding version %d, this build reads %d", w.V, encodingVersion)
	}
	if !w.Op.Valid() {
		return nil, fmt.Errorf("unknown op %q", w.Op)
	}
	lsn, err := ParseLSN(w.LSN)
	if err != nil {
		return nil, err
	}
	if w.Pos == 0 || len(w.Rows) == 0 {
		return nil, errors.New("a batch needs pos >= 1 and at least one row")
	}
	if uint64(w.Pos)+uint64(len(w.Rows))-1 > 1<<32-1 {
		return nil, errors.New("positions overflow 32 bits")
	}
	b := &Batch{
		Source: w.Source, LSN: lsn, FirstPos: w.Pos, Xid: w.Xid,
		CommitTime: w.CommitTime, Schema: w.Schema, Table: w.Table, Op: w.Op,
		Columns: w.Columns, Last: w.Last, Cascade: w.Cascade,
		RestartIdentity: w.RestartIdentity, DDL: w.DDL,
		Rows: make([]Row, len(w.Rows)),
	}
	for i, r := range w.Rows {
		if err := checkWidth(r.New, len(w.Columns)); err != nil {
			return nil, fmt.Errorf("row %d: new: %w", i, err)
		}
		if err := checkWidth(r.Old, len(w.Columns)); err != nil {
			return nil, fmt.Errorf("row %d: old: %w", i, err)
		}
		b.Rows[i] = Row(r)
	}
	return b, nil
}

func checkWidth(vals []*Value, n int) error {
	if vals != nil && len(vals) != n {
		return fmt.Errorf("%d values for %d columns", len(vals), n)
	}
	return nil
}
