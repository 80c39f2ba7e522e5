package gateway

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/pgtide/pgtide/internal/change"
)

// Type OIDs whose text form maps onto a JSON type other than string.
const (
	oidBool    = 16
	oidInt8    = 20
	oidInt2    = 21
	oidInt4    = 23
	oidOID     = 26
	oidJSON    = 114
	oidFloat4  = 700
	oidFloat8  = 701
	oidNumeric = 1700
	oidJSONB   = 3802
)

// maxSafeInt is the largest integer a JSON number holds exactly in
// JavaScript (2^53).
const maxSafeInt = 1 << 53

// appendValue appends the JSON form of a column value of type oid:
//
//   - NULL is null;
//   - int2, int4 and oid are numbers, int8 a number when |v| <= 2^53 and a
//     string otherwise;
//   - float4 and float8 are numbers, except NaN and ±Infinity (strings);
//   - numeric is a string, because a JSON number loses its precision;
//   - bool is true or false; json and jsonb are embedded as they are;
//   - binary-format values, and text that is not valid UTF-8, are
//     {"base64": "…"};
//   - everything else, arrays included, is the Postgres text as a string.
func appendValue(dst []byte, oid uint32, v *change.Value) []byte {
	if v == nil {
		return append(dst, "null"...)
	}
	if v.Format != change.FormatText || !utf8.Valid(v.Data) {
		dst = append(dst, `{"base64":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, v.Data)
		return append(dst, `"}`...)
	}
	s := v.Data
	switch oid {
	case oidInt2, oidInt4, oidOID:
		if isInteger(s) {
			return append(dst, s...)
		}
	case oidInt8:
		if n, err := strconv.ParseInt(string(s), 10, 64); err == nil && n <= maxSafeInt && n >= -maxSafeInt {
			return append(dst, s...)
		}
	case oidFloat4, oidFloat8:
		if f, err := strconv.ParseFloat(string(s), 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) && json.Valid(s) {
			return append(dst, s...)
		}
	case oidBool:
		switch string(s) {
		case "t":
			return append(dst, "true"...)
		case "f":
			return append(dst, "false"...)
		}
	case oidJSON, oidJSONB:
		if json.Valid(s) {
			return appendCompactJSON(dst, s)
		}
	}
	return appendString(dst, s)
}

// isInteger reports whether s is an optionally signed run of digits.
func isInteger(s []byte) bool {
	if len(s) > 0 && s[0] == '-' {
		s = s[1:]
	}
	if len(s) == 0 || len(s) > 1 && s[0] == '0' {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// appendCompactJSON appends valid JSON src without insignificant spaces
// (json text keeps the client's layout, and may hold newlines that would
// break an SSE data line).
func appendCompactJSON(dst, src []byte) []byte {
	buf := bytes.NewBuffer(dst)
	if err := json.Compact(buf, src); err != nil {
		return appendString(dst[:len(dst):len(dst)], src)
	}
	return buf.Bytes()
}

// goValue converts a column value for the row predicate: integers become
// int, floats and numeric float64 (numeric loses precision here, which
// suits comparisons), bool bool, json and jsonb their decoded form, and
// everything else its text.
func goValue(oid uint32, v *change.Value) any {
	if v == nil {
		return nil
	}
	if v.Format != change.FormatText {
		return string(v.Data)
	}
	s := string(v.Data)
	switch oid {
	case oidInt2, oidInt4, oidOID, oidInt8:
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return int(n)
		}
	case oidFloat4, oidFloat8, oidNumeric:
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return f
		}
	case oidBool:
		switch s {
		case "t":
			return true
		case "f":
			return false
		}
	case oidJSON, oidJSONB:
		var x any
		if json.Unmarshal(v.Data, &x) == nil {
			return x
		}
	}
	return s
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. s must be valid UTF-8.
// U+2028 and U+2029 are escaped so the output is safe inside JavaScript.
func appendString[T string | []byte](dst []byte, s T) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
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
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(string(s[i:min(i+4, len(s))]))
		if r == utf8.RuneError && size == 1 {
			// Invalid UTF-8 (only in names, never in values, which
			// are checked first) becomes U+FFFD.
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			start = i + 1
		} else if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			start = i + size
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
