package gateway

import (
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pgtide/pgtide/internal/change"
	"github.com/pgtide/pgtide/internal/changelog"
)

// Limits on subscription options.
const (
	maxTables      = 64
	maxColumns     = 256
	maxDebounce    = time.Minute
	maxSubIDLen    = 32
	maxOptionBytes = 16 << 10
)

// Subscription is what a client asks for, on every transport: the query
// parameters of /v1/changes, the body of a WebSocket "subscribe" message,
// and the gRPC Subscription message carry the same fields.
type Subscription struct {
	// Source names the source database (required).
	Source string `json:"source"`
	// Tables are "schema.table" patterns; "*" stands for a whole name and
	// names holding '.', '*' or '"' are double-quoted as in SQL. Empty
	// selects every table the credential may read.
	Tables []string `json:"tables,omitempty"`
	// Ops are the operations delivered; empty delivers all.
	Ops []string `json:"ops,omitempty"`
	// Columns limits key, new, old and unchanged to these columns.
	Columns []string `json:"columns,omitempty"`
	// Where is a row predicate in the expr language.
	Where string `json:"where,omitempty"`
	// Transactions adds a "commit" change after the last record of every
	// transaction the subscription delivered from.
	Transactions bool `json:"transactions,omitempty"`
	// Debounce is a Go duration; see the package documentation.
	Debounce string `json:"debounce,omitempty"`
	// From is "beginning", "now" (the default) or a cursor.
	From string `json:"from,omitempty"`
}

// plan is a checked, compiled subscription. It is immutable.
type plan struct {
	source   string
	filters  []string // subject filters; empty means every subject
	ops      map[change.Op]bool
	proj     projection // columns shown; nil shows all
	predProj projection // columns predicates see; nil sees all
	where    []*predicate
	tx       bool
	debounce time.Duration
	from     string
}

// compile checks sub for id and returns its plan. Errors are *Error with a
// code that says which option is wrong.
func compile(sub Subscription, id *identity) (*plan, error) {
	if sub.Source == "" {
		return nil, errorf(CodeInvalidOption, "source is required")
	}
	if err := changelog.ValidateSource(sub.Source); err != nil {
		return nil, errorf(CodeInvalidOption, "source: %v", err)
	}
	if err := id.allowSource(sub.Source); err != nil {
		return nil, err
	}
	if len(sub.Tables) > maxTables {
		return nil, errorf(CodeInvalidOption, "%d tables given, at most %d allowed", len(sub.Tables), maxTables)
	}
	if len(sub.Columns) > maxColumns {
		return nil, errorf(CodeInvalidOption, "%d columns given, at most %d allowed", len(sub.Columns), maxColumns)
	}

	p := &plan{source: sub.Source, tx: sub.Transactions, from: sub.From}
	filters, err := id.tableFilters(sub.Source, sub.Tables)
	if err != nil {
		return nil, err
	}
	p.filters = filters

	for _, o := range sub.Ops {
		op := change.Op(strings.ToLower(o))
		if !op.Valid() {
			return nil, errorf(CodeInvalidOption, "op %q is not one of insert, update, delete, truncate, ddl, read", o)
		}
		if p.ops == nil {
			p.ops = make(map[change.Op]bool)
		}
		p.ops[op] = true
	}

	if p.proj, err = id.columns(sub.Columns); err != nil {
		return nil, err
	}
	p.predProj = id.grantProjection()
	if id.where != nil {
		p.where = append(p.where, id.where)
	}
	if sub.Where != "" {
		w, err := compilePredicate(sub.Where)
		if err != nil {
			return nil, err
		}
		p.where = append(p.where, w)
	}

	if sub.Debounce != "" {
		d, err := time.ParseDuration(sub.Debounce)
		if err != nil || d < 0 || d > maxDebounce {
			return nil, errorf(CodeInvalidOption, "debounce %q is not a duration between 0s and %v", sub.Debounce, maxDebounce)
		}
		p.debounce = d
	}
	return p, nil
}

// subscriptionFromQuery reads a Subscription from URL query parameters:
// source, tables (comma-separated; "table" may repeat), ops, columns,
// where, transactions (or tx), debounce and from. Unknown parameters are
// errors, so a typo is not silently ignored.
func subscriptionFromQuery(q url.Values, extra ...string) (Subscription, error) {
	var sub Subscription
	for k, vs := range q {
		v := vs[len(vs)-1]
		switch k {
		case "source":
			sub.Source = v
		case "tables", "table":
			for _, v := range vs {
				ts, err := splitList(v)
				if err != nil {
					return sub, errorf(CodeInvalidOption, "%s: %v", k, err)
				}
				sub.Tables = append(sub.Tables, ts...)
			}
		case "ops", "op":
			for _, v := range vs {
				sub.Ops = append(sub.Ops, splitPlain(v)...)
			}
		case "columns", "column":
			for _, v := range vs {
				cs, err := splitList(v)
				if err != nil {
					return sub, errorf(CodeInvalidOption, "%s: %v", k, err)
				}
				sub.Columns = append(sub.Columns, cs...)
			}
		case "where":
			sub.Where = v
		case "transactions", "tx":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return sub, errorf(CodeInvalidOption, "%s %q is not a boolean", k, v)
			}
			sub.Transactions = b
		case "debounce":
			sub.Debounce = v
		case "from":
			sub.From = v
		case "access_token":
		default:
			if !contains(extra, k) {
				return sub, errorf(CodeInvalidOption, "unknown parameter %q", k)
			}
		}
	}
	return sub, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// splitPlain splits a comma-separated list, dropping empty items.
func splitPlain(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// splitList splits a comma-separated list whose items may hold commas
// inside double quotes, as quoted table names do.
func splitList(s string) ([]string, error) {
	var out []string
	quoted := false
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			quoted = !quoted
		case ',':
			if !quoted {
				if p := strings.TrimSpace(s[start:i]); p != "" {
					out = append(out, p)
				}
				start = i + 1
			}
		}
	}
	if quoted {
		return nil, errorf(CodeInvalidOption, "unterminated double quote in %q", s)
	}
	if p := strings.TrimSpace(s[start:]); p != "" {
		out = append(out, p)
	}
	return out, nil
}
