package changelog

import (
	"errors"
	"fmt"
	"strings"
)

// subjectRoot is the first token of every subject pgtide writes.
const subjectRoot = "pgtide"

// StreamName returns the JetStream stream that holds the log of source:
// "PGTIDE_" followed by source in upper case with '-' replaced by '_'.
func StreamName(source string) string {
	return "PGTIDE_" + strings.ReplaceAll(strings.ToUpper(source), "-", "_")
}

// SubjectPrefix returns the subject prefix shared by every message of
// source, "pgtide.<source>", without a trailing dot.
func SubjectPrefix(source string) string {
	return subjectRoot + "." + source
}

// Subject returns the subject of changes to schema.table of source:
// "pgtide.<source>.<schema>.<table>", with schema and table escaped by
// [EscapeToken] so each is exactly one subject token.
func Subject(source, schema, table string) string {
	return SubjectPrefix(source) + "." + EscapeToken(schema) + "." + EscapeToken(table)
}

// ParseSubject is the inverse of [Subject]: it returns the schema and table
// of a subject of source. It fails when subject does not belong to source or
// holds a malformed escape.
func ParseSubject(source, subject string) (schema, table string, err error) {
	prefix := SubjectPrefix(source) + "."
	rest, ok := strings.CutPrefix(subject, prefix)
	if !ok {
		return "", "", fmt.Errorf("changelog: subject %q does not start with %q", subject, prefix)
	}

	escSchema, escTable, ok := strings.Cut(rest, ".")
	if !ok || strings.Contains(escTable, ".") {
		return "", "", fmt.Errorf("changelog: subject %q: want %s<schema>.<table>", subject, prefix)
	}

	if schema, err = UnescapeToken(escSchema); err != nil {
		return "", "", fmt.Errorf("changelog: subject %q: schema: %w", subject, err)
	}
	if table, err = UnescapeToken(escTable); err != nil {
		return "", "", fmt.Errorf("changelog: subject %q: table: %w", subject, err)
	}
	return schema, table, nil
}

// ValidateSource reports whether source can name a log: it must be
// non-empty and hold only ASCII letters, digits, '_' and '-', which keeps
// it a single subject token and a valid stream name.
func ValidateSource(source string) error {
	if source == "" {
		return errors.New("changelog: source name is empty")
	}
	for i := 0; i < len(source); i++ {
		if !isSafeByte(source[i]) {
			return fmt.Errorf("changelog: source name %q: byte %q at offset %d "+
				"is not a letter, digit, '_' or '-'", source, source[i], i)
		}
	}
	return nil
}

// emptyToken encodes the empty string. No other input escapes to it: every
// other '%' in an escaped token is followed by two hex digits.
const emptyToken = "%"

const upperHex = "0123456789ABCDEF"

// isSafeByte reports whether b stands for itself in an escaped token.
func isSafeByte(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' ||
		b == '_' || b == '-'
}

// EscapeToken encodes s as one NATS subject token. ASCII letters, digits,
// '_' and '-' stand for themselves; every other byte, including '.', '*',
// '>', '%', spaces and each byte of a multi-byte UTF-8 character, becomes
// '%' followed by two upper-case hex digits. The empty string becomes "%".
// The encoding is one-to-one; [UnescapeToken] reverses it.
func EscapeToken(s string) string {
	if s == "" {
		return emptyToken
	}

	n := 0
	for i := 0; i < len(s); i++ {
		if !isSafeByte(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}

	var b strings.Builder
	b.Grow(len(s) + 2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isSafeByte(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(upperHex[c>>4])
		b.WriteByte(upperHex[c&0x0f])
	}
	return b.String()
}

// UnescapeToken decodes a token produced by [EscapeToken]. It accepts only
// the canonical form, so that every accepted token maps back to itself: it
// rejects a '%' not followed by two upper-case hex digits, an escape of a
// byte that needs none, and any byte that should have been escaped.
func UnescapeToken(s string) (string, error) {
	if s == emptyToken {
		return "", nil
	}
	if s == "" {
		return "", errors.New("changelog: empty token (the empty string escapes to \"%\")")
	}

	if strings.IndexByte(s, '%') < 0 {
		for i := 0; i < len(s); i++ {
			if !isSafeByte(s[i]) {
				return "", unescapedByteError(s, i)
			}
		}
		return s, nil
	}

	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			if !isSafeByte(c) {
				return "", unescapedByteError(s, i)
			}
			out = append(out, c)
			continue
		}

		if i+2 >= len(s) {
			return "", fmt.Errorf("changelog: token %q: truncated escape at offset %d", s, i)
		}
		hi, okHi := unhex(s[i+1])
		lo, okLo := unhex(s[i+2])
		if !okHi || !okLo {
			return "", fmt.Errorf("changelog: token %q: invalid escape %q at offset %d "+
				"(want '%%' and two upper-case hex digits)", s, s[i:i+3], i)
		}
		d := hi<<4 | lo
		if isSafeByte(d) {
			return "", fmt.Errorf("changelog: token %q: escape %q at offset %d encodes %q, "+
				"which must not be escaped", s, s[i:i+3], i, d)
		}
		out = append(out, d)
		i += 2
	}
	return string(out), nil
}

func unescapedByteError(s string, i int) error {
	return fmt.Errorf("changelog: token %q: byte %q at offset %d must be escaped", s, s[i], i)
}

// unhex decodes one upper-case hex digit.
func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
