package config

import (
	"fmt"
	"slices"
	"strings"
)

// maxIdentifierBytes is PostgreSQL's limit on identifier length (NAMEDATALEN-1).
const maxIdentifierBytes = 63

// splitPattern splits "schema.table" into its parts; a bare "table" has no
// schema part.
func splitPattern(p string) (schema, table string, qualified bool) {
	if s, t, ok := strings.Cut(p, "."); ok {
		return s, t, true
	}
	return "", p, false
}

// globMatch reports whether name matches pattern, where '*' matches any
// run of characters (including none) and '?' exactly one character.
// Unlike path.Match, '*' also matches '/', which a quoted PostgreSQL name
// may contain.
func globMatch(pattern, name string) bool {
	p, n := []rune(pattern), []rune(name)
	// Iterative matching with one backtrack point: the last '*' seen and
	// the position in name it was tried at.
	pi, ni := 0, 0
	star, mark := -1, 0
	for ni < len(n) {
		switch {
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, ni
			pi++
		case pi < len(p) && (p[pi] == '?' || p[pi] == n[ni]):
			pi++
			ni++
		case star >= 0:
			pi = star + 1
			mark++
			ni = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

func (s *SourceConfig) validateTables(p *problems, path string) {
	schemasOK := s.validateSchemas(p, path)
	selects := schemaMatcher(s.Schemas)

	for i, pat := range s.Tables {
		at := fmt.Sprintf("%s.tables[%d]", path, i)
		if msg := checkTablePattern(pat); msg != "" {
			p.add(at, "%s", msg)
			continue
		}
		// A qualified pattern that can match no selected schema selects
		// nothing: most likely the schema is missing from schemas.
		if sp, _, qualified := splitPattern(pat); qualified && schemasOK && !selects(sp) {
			p.add(at, "%s names schema %s, which is not in %s.schemas %s: add it there",
				quote(pat), quote(sp), path, listString(s.Schemas))
		}
	}
	for i, pat := range s.ExcludeTables {
		if msg := checkTablePattern(pat); msg != "" {
			p.add(fmt.Sprintf("%s.exclude_tables[%d]", path, i), "%s", msg)
		}
	}
}

// schemaMatcher returns a function that reports whether a schema pattern
// matches one of schemas. Results are remembered, so that many patterns
// against many schemas stay cheap.
func schemaMatcher(schemas []string) func(pattern string) bool {
	set := make(map[string]bool, len(schemas))
	for _, s := range schemas {
		set[s] = true
	}
	memo := map[string]bool{}
	return func(pattern string) bool {
		if !strings.ContainsAny(pattern, "*?") {
			return set[pattern]
		}
		if m, ok := memo[pattern]; ok {
			return m
		}
		m := slices.ContainsFunc(schemas, func(s string) bool { return globMatch(pattern, s) })
		memo[pattern] = m
		return m
	}
}

// validateSchemas checks s.Schemas and reports whether they are usable for
// checking table patterns against.
func (s *SourceConfig) validateSchemas(p *problems, path string) bool {
	if len(s.Schemas) == 0 {
		p.add(path+".schemas", "must list at least one schema, e.g. [%s], or be left out to capture %q",
			DefaultSchema, DefaultSchema)
		return false
	}

	ok := true
	seen := map[string]int{}
	for i, name := range s.Schemas {
		at := fmt.Sprintf("%s.schemas[%d]", path, i)
		switch {
		case name == "":
			p.add(at, "empty schema name: give a schema such as %q", DefaultSchema)
		case len(name) > maxIdentifierBytes:
			p.add(at, "%s is longer than %d bytes, PostgreSQL's limit for names",
				quote(name), maxIdentifierBytes)
		case strings.ContainsAny(name, "*?"):
			p.add(at, "%s: schemas are exact names, wildcards work only in tables and exclude_tables",
				quote(name))
		default:
			if j, dup := seen[name]; dup {
				p.add(at, "%s is already listed as schemas[%d]: list each schema once", quote(name), j)
			}
			seen[name] = i
			continue
		}
		ok = false
	}
	return ok
}

// checkTablePattern returns what is wrong with a tables or exclude_tables
// pattern, or "".
func checkTablePattern(pat string) string {
	const form = `write "table" or "schema.table", where * matches any characters and ? one character`
	if pat == "" {
		return "empty pattern: " + form
	}
	if i := strings.IndexAny(pat, `[]\`); i >= 0 {
		return fmt.Sprintf("%s contains %q: only * and ? are wildcards; list such tables one by one, "+
			"or use ? for a single character", quote(pat), pat[i:i+1])
	}
	parts := strings.Split(pat, ".")
	if len(parts) > 2 {
		return fmt.Sprintf("%s has more than one '.': %s", quote(pat), form)
	}
	for _, part := range parts {
		if part == "" {
			return fmt.Sprintf("%s has an empty schema or table part: %s", quote(pat), form)
		}
		if len(part) > maxIdentifierBytes && !strings.ContainsAny(part, "*?") {
			return fmt.Sprintf("%s: %s is longer than %d bytes, PostgreSQL's limit for names",
				quote(pat), quote(part), maxIdentifierBytes)
		}
	}
	return ""
}

// listString formats a list of names as YAML flow, e.g. [public, sales].
func listString(list []string) string {
	return "[" + strings.Join(list, ", ") + "]"
}
