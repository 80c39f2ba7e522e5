package changelog

import (
	"fmt"
	"strings"
)

// TableFilter turns a table pattern of source into a NATS filter subject
// for [ReadOptions.Filters].
//
// The pattern has the form schema.table. Each part is a name, or "*" for
// every name ("public.*" becomes "pgtide.<source>.public.*", "*.*" every
// table). A name holding '.', '*' or '"' is written in double quotes, with
// an embedded '"' doubled, as in SQL: "odd.schema"."x*y". Names are taken
// literally; unquoted names are not folded to lower case. A '*' inside an
// unquoted name ("ord*") is rejected, because a NATS wildcard matches whole
// tokens only.
func TableFilter(source, pattern string) (string, error) {
	if err := ValidateSource(source); err != nil {
		return "", err
	}

	parts, err := splitTablePattern(strings.TrimSpace(pattern))
	if err != nil {
		return "", fmt.Errorf("changelog: table pattern %q: %w", pattern, err)
	}

	var b strings.Builder
	b.WriteString(SubjectPrefix(source))
	for _, p := range parts {
		b.WriteByte('.')
		if p.wildcard {
			b.WriteByte('*')
		} else {
			b.WriteString(EscapeToken(p.name))
		}
	}
	return b.String(), nil
}

// patternPart is one dot-separated part of a table pattern.
type patternPart struct {
	name     string
	wildcard bool
}

// splitTablePattern parses schema.table into its two parts.
func splitTablePattern(pattern string) ([]patternPart, error) {
	if pattern == "" {
		return nil, fmt.Errorf("empty pattern, want schema.table such as public.orders or public.*")
	}

	var parts []patternPart
	rest := pattern
	for {
		part, tail, err := cutPatternPart(rest)
		if err != nil {
			return nil, err
		}
		parts = append(parts, part)
		if tail == "" {
			break
		}
		rest = tail[1:] // skip the '.'
		if rest == "" {
			return nil, fmt.Errorf("ends with '.', want schema.table")
		}
	}

	if len(parts) != 2 {
		return nil, fmt.Errorf("has %d dot-separated parts, want 2 (schema.table); "+
			"quote names that hold a dot", len(parts))
	}
	return parts, nil
}

// cutPatternPart parses one part at the start of s and returns it with the
// rest of s, which is empty or starts with '.'.
func cutPatternPart(s string) (patternPart, string, error) {
	if strings.HasPrefix(s, `"`) {
		var name strings.Builder
		for i := 1; i < len(s); i++ {
			if s[i] != '"' {
				name.WriteByte(s[i])
				continue
			}
			if i+1 < len(s) && s[i+1] == '"' {
				name.WriteByte('"')
				i++
				continue
			}
			rest := s[i+1:]
			if rest != "" && rest[0] != '.' {
				err := fmt.Errorf("unexpected %q after quoted name %q", rest, name.String())
				return patternPart{}, "", err
			}
			if name.Len() == 0 {
				return patternPart{}, "", fmt.Errorf(`empty quoted name ""`)
			}
			return patternPart{name: name.String()}, rest, nil
		}
		return patternPart{}, "", fmt.Errorf("unterminated quoted name %s", s)
	}

	end := strings.IndexByte(s, '.')
	if end < 0 {
		end = len(s)
	}
	name, rest := s[:end], s[end:]

	switch {
	case name == "":
		return patternPart{}, "", fmt.Errorf("empty name, want schema.table")
	case name == "*":
		return patternPart{wildcard: true}, rest, nil
	case strings.Contains(name, "*"):
		return patternPart{}, "", fmt.Errorf("%q: '*' must stand alone for a whole schema or "+
			"table name (as in public.*); partial globs are not supported", name)
	case strings.Contains(name, `"`):
		return patternPart{}, "", fmt.Errorf("%q: a '\"' may appear only in a quoted name", name)
	}
	return patternPart{name: name}, rest, nil
}
