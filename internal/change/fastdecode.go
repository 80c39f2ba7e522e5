package change

import (
	"encoding/base64"
	"strconv"
	"time"
	"unicode/utf8"
)

// This file is DecodeBatch's fast path. encoding/json costs more CPU than
// the rest of a log reader (apply, the gateway) together, so a strict
// parser reads the exact layout Batch.AppendJSON writes; anything else
// (other key order, DDL records, escapes it never writes, any doubt) falls
// back to encoding/json, which also produces the errors.

// parser is a cursor over one message. Every method reports false at the
// first byte that does not fit the encoder's layout.
type parser struct {
	d []byte
	i int
}

func (p *parser) lit(s string) bool {
	if len(p.d)-p.i < len(s) || string(p.d[p.i:p.i+len(s)]) != s {
		return false
	}
	p.i += len(s)
	return true
}

func (p *parser) peek(c byte) bool { return p.i < len(p.d) && p.d[p.i] == c }

func (p *parser) uint(bits int) (uint64, bool) {
	start := p.i
	for p.i < len(p.d) && p.d[p.i] >= '0' && p.d[p.i] <= '9' {
		p.i++
	}
	// JSON forbids leading zeros; the encoder never writes them.
	if p.i == start || p.i-start > 20 || (p.d[start] == '0' && p.i-start > 1) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(p.d[start:p.i]), 10, bits)
	return n, err == nil
}

// str reads a JSON string as the encoder writes it: raw UTF-8 with the
// escapes \" \\ \n \r \t and \u00XX.
func (p *parser) str() ([]byte, bool) {
	if !p.lit(`"`) {
		return nil, false
	}
	start := p.i
	for p.i < len(p.d) {
		c := p.d[p.i]
		if c == '"' {
			s := p.d[start:p.i]
			p.i++
			return s, utf8.Valid(s)
		}
		if c == '\\' {
			return p.escapedStr(start)
		}
		if c < 0x20 {
			return nil, false
		}
		p.i++
	}
	return nil, false
}

func (p *parser) escapedStr(start int) ([]byte, bool) {
	out := append([]byte(nil), p.d[start:p.i]...)
	for p.i < len(p.d) {
		c := p.d[p.i]
		switch {
		case c == '"':
			p.i++
			return out, utf8.Valid(out)
		case c < 0x20:
			return nil, false
		case c != '\\':
			out = append(out, c)
			p.i++
			continue
		}
		if p.i+1 >= len(p.d) {
			return nil, false
		}
		switch p.d[p.i+1] {
		case '"', '\\':
			out = append(out, p.d[p.i+1])
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			if p.i+5 >= len(p.d) || p.d[p.i+2] != '0' || p.d[p.i+3] != '0' {
				return nil, false
			}
			v, err := strconv.ParseUint(string(p.d[p.i+4:p.i+6]), 16, 8)
			if err != nil || v >= 0x80 {
				return nil, false
			}
			out = append(out, byte(v))
			p.i += 4
		default:
			return nil, false
		}
		p.i += 2
	}
	return nil, false
}

func (p *parser) values(n int) ([]*Value, bool) {
	if !p.lit("[") {
		return nil, false
	}
	vals := make([]*Value, 0, n)
	for !p.peek(']') {
		if len(vals) > 0 && !p.lit(",") {
			return nil, false
		}
		switch {
		case p.lit("null"):
			vals = append(vals, nil)
		case p.peek('"'):
			s, ok := p.str()
			if !ok {
				return nil, false
			}
			vals = append(vals, &Value{Format: FormatText, Data: s})
		default:
			format := FormatBinary
			if p.lit(`{"t64":`) {
				format = FormatText
			} else if !p.lit(`{"b64":`) {
				return nil, false
			}
			s, ok := p.str()
			if !ok || !p.lit("}") {
				return nil, false
			}
			raw, err := base64.StdEncoding.DecodeString(string(s))
			if err != nil {
				return nil, false
			}
			vals = append(vals, &Value{Format: format, Data: raw})
		}
	}
	p.i++
	return vals, len(vals) == n
}

func (p *parser) row(n int) (Row, bool) {
	var r Row
	if !p.lit("{") {
		return r, false
	}
	ok, sep := true, ""
	if p.lit(`"new":`) {
		if r.New, ok = p.values(n); !ok {
			return r, false
		}
		sep = ","
	}
	if p.lit(sep + `"old":`) {
		if r.Old, ok = p.values(n); !ok {
			return r, false
		}
		r.OldKeyOnly = p.lit(`,"old_key_only":true`)
		sep = ","
	}
	if p.lit(sep + `"unchanged":[`) {
		for !p.peek(']') {
			if len(r.Unchanged) > 0 && !p.lit(",") {
				return r, false
			}
			s, ok := p.str()
			if !ok {
				return r, false
			}
			r.Unchanged = append(r.Unchanged, string(s))
		}
		p.i++
		if len(r.Unchanged) == 0 {
			return r, false
		}
	}
	return r, p.lit("}")
}

func (p *parser) strField(key string) (string, bool) {
	if !p.lit(key) {
		return "", false
	}
	s, ok := p.str()
	return string(s), ok
}

func fastDecode(data []byte) (*Batch, bool) {
	p := &parser{d: data}
	b := &Batch{}
	var ok bool
	if !p.lit(`{"v":1`) {
		return nil, false
	}
	if b.Source, ok = p.strField(`,"source":`); !ok {
		return nil, false
	}
	lsn, ok := p.strField(`,"lsn":`)
	if !ok {
		return nil, false
	}
	l, err := ParseLSN(lsn)
	if err != nil {
		return nil, false
	}
	b.LSN = l
	if !p.lit(`,"pos":`) {
		return nil, false
	}
	pos, ok := p.uint(32)
	if !ok || !p.lit(`,"xid":`) {
		return nil, false
	}
	xid, ok := p.uint(32)
	if !ok {
		return nil, false
	}
	b.FirstPos, b.Xid = uint32(pos), uint32(xid)
	ct, ok := p.strField(`,"commit_time":`)
	if !ok {
		return nil, false
	}
	if b.CommitTime, err = time.Parse(time.RFC3339Nano, ct); err != nil {
		return nil, false
	}
	if b.Schema, ok = p.strField(`,"schema":`); !ok {
		return nil, false
	}
	if b.Table, ok = p.strField(`,"table":`); !ok {
		return nil, false
	}
	op, ok := p.strField(`,"op":`)
	if !ok {
		return nil, false
	}
	b.Op = Op(op)
	if !b.Op.Valid() || b.Op == OpDDL || !p.lit(`,"columns":[`) {
		return nil, false
	}
	b.Columns = []Column{}
	for !p.peek(']') {
		if len(b.Columns) > 0 && !p.lit(",") {
			return nil, false
		}
		var c Column
		if c.Name, ok = p.strField(`{"name":`); !ok {
			return nil, false
		}
		if c.Type, ok = p.strField(`,"type":`); !ok || !p.lit(`,"oid":`) {
			return nil, false
		}
		oid, ok := p.uint(32)
		if !ok {
			return nil, false
		}
		c.OID = uint32(oid)
		c.Key = p.lit(`,"key":true`)
		if !p.lit("}") {
			return nil, false
		}
		b.Columns = append(b.Columns, c)
	}
	p.i++
	if !p.lit(`,"rows":[`) {
		return nil, false
	}
	for !p.peek(']') {
		if len(b.Rows) > 0 && !p.lit(",") {
			return nil, false
		}
		r, ok := p.row(len(b.Columns))
		if !ok {
			return nil, false
		}
		b.Rows = append(b.Rows, r)
	}
	p.i++
	b.Last = p.lit(`,"last":true`)
	b.Cascade = p.lit(`,"cascade":true`)
	b.RestartIdentity = p.lit(`,"restart_identity":true`)
	if !p.lit("}") || p.i != len(p.d) {
		return nil, false
	}
	// The checks of DecodeBatch.
	if b.FirstPos == 0 || len(b.Rows) == 0 || uint64(b.FirstPos)+uint64(len(b.Rows))-1 > 1<<32-1 {
		return nil, false
	}
	return b, true
}
