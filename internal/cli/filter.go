package cli

import (
	"fmt"
	"path"
	"strings"

	"github.com/pgtide/pgtide/internal/changelog"
)

// tableFilter selects the messages of the tables matching --tables
// patterns. Patterns the log can filter on (whole names or "*" per part)
// become NATS filter subjects, applied by the server; patterns with partial
// globs ("ord*") are matched here against each message's table.
type tableFilter struct {
	source   string
	subjects []string // filter subjects of whole-name patterns
	globs    [][2]string
}

// newTableFilter parses patterns of the form schema.table or table (any
// schema); no pattern selects every table.
func newTableFilter(source string, patterns []string) (*tableFilter, error) {
	f := &tableFilter{source: source}
	for _, p := range patterns {
		p = strings.TrimSpace(p)
		if p != "" && !strings.Contains(p, ".") {
			p = "*." + p
		}
		if schema, table, ok := globPattern(p); ok {
			f.globs = append(f.globs, [2]string{schema, table})
			continue
		}
		subj, err := changelog.TableFilter(source, p)
		if err != nil {
			return nil, usageErrorf("--tables: %v", err)
		}
		f.subjects = append(f.subjects, subj)
	}
	return f, nil
}

// globPattern splits an unquoted schema.table pattern whose parts hold
// wildcards inside a name ("ord*", "ite?s"), which NATS subjects cannot
// express. Whole-name patterns ("public.*") and quoted names are left to
// changelog.TableFilter.
func globPattern(p string) (schema, table string, ok bool) {
	if strings.Contains(p, `"`) {
		return "", "", false
	}
	schema, table, ok = strings.Cut(p, ".")
	if !ok || strings.Contains(table, ".") || !validGlob(schema) || !validGlob(table) {
		return "", "", false
	}
	partial := func(s string) bool { return s != "*" && strings.ContainsAny(s, "*?") }
	return schema, table, partial(schema) || partial(table)
}

func validGlob(g string) bool {
	_, err := path.Match(g, "")
	return g != "" && !strings.ContainsAny(g, `[]\`) && err == nil
}

// all reports whether the filter selects every table.
func (f *tableFilter) all() bool { return len(f.subjects) == 0 && len(f.globs) == 0 }

// serverFilters returns the subjects a reader may ask the server to filter
// on, or nil when some pattern needs matching here (then every message
// must be fetched).
func (f *tableFilter) serverFilters() []string {
	if len(f.globs) > 0 {
		return nil
	}
	return f.subjects
}

// match reports whether a message with subject belongs to a selected
// table.
func (f *tableFilter) match(subject string) bool {
	if f.all() {
		return true
	}
	for _, s := range f.subjects {
		if subjectMatch(s, subject) {
			return true
		}
	}
	if len(f.globs) == 0 {
		return false
	}
	schema, table, err := changelog.ParseSubject(f.source, subject)
	if err != nil {
		return false
	}
	for _, g := range f.globs {
		sm, _ := path.Match(g[0], schema)
		tm, _ := path.Match(g[1], table)
		if sm && tm {
			return true
		}
	}
	return false
}

// subjectMatch reports whether subject matches the NATS filter: '*'
// matches one token, '>' the rest.
func subjectMatch(filter, subject string) bool {
	ft := strings.Split(filter, ".")
	st := strings.Split(subject, ".")
	for i, t := range ft {
		if t == ">" {
			return len(st) > i
		}
		if i >= len(st) || (t != "*" && t != st[i]) {
			return false
		}
	}
	return len(ft) == len(st)
}

func (f *tableFilter) String() string {
	if f.all() {
		return "all tables"
	}
	parts := append([]string{}, f.subjects...)
	for _, g := range f.globs {
		parts = append(parts, fmt.Sprintf("%s.%s", g[0], g[1]))
	}
	return strings.Join(parts, ", ")
}
