package snapshot

import (
	"fmt"
	"log/slog"
	"regexp"
	"strings"
)

// Config configures a [Manager].
type Config struct {
	// DataDir is pgtide's data directory; snapshots live in
	// DataDir/snapshots. Required. When running as root, the OS user
	// postgres must be able to traverse it.
	DataDir string

	// BinDir holds the PostgreSQL programs (pg_basebackup, postgres,
	// pg_resetwal). "" finds them.
	BinDir string

	// Datasets are the datasets snapshots may be taken of, by name.
	Datasets map[string]Dataset

	// Logger receives lifecycle messages. Nil discards them.
	Logger *slog.Logger
}

// Dataset is one database pgtide takes snapshots of.
type Dataset struct {
	// Source is the connection string of the server to copy, usually
	// the live replica kept by apply. Its user needs the REPLICATION
	// attribute. Required.
	Source string

	// Database is the database inside the snapshot that clients of the
	// dataset reach. "" means the dataset's name.
	Database string

	// Superuser is a superuser role of the copied cluster, used for
	// masking over the private socket. "" means "postgres".
	Superuser string

	// Role is the role instances serve clients as: it is created at
	// snapshot time when missing, as a login role without superuser
	// rights, with pg_read_all_data and pg_write_all_data. "" means
	// "pgtide_analyst".
	Role string

	// Keep is how many ready snapshots [Manager.Prune] keeps. Zero means 3.
	Keep int

	// Rules mask columns of Database, in order.
	Rules []Rule

	// Scripts are SQL scripts run in Database after the rules, each in
	// one implicit transaction. When any is given, the whole database
	// is rewritten afterwards.
	Scripts []string

	// Salt keys the hash methods, so that hashes cannot be reversed by
	// hashing guesses. "" means a random salt per snapshot: equal values
	// still hash equal within one snapshot, so joins keep working.
	Salt string
}

// Masking methods of a [Rule].
const (
	MethodHash   = "hash"   // md5 of salt and value, as hex text
	MethodSHA256 = "sha256" // sha256 of salt and value, as hex text
	MethodFixed  = "fixed"  // the rule's Value
	MethodNull   = "null"   // NULL
	MethodEmail  = "email"  // a fake local part at the original domain
)

// Rule masks one column.
type Rule struct {
	// Table is "schema.table" or "table" (schema public).
	Table string

	// Column is the column to mask.
	Column string

	// Method is one of hash, sha256, fixed, null, email.
	Method string

	// Value is the replacement for fixed; Postgres casts it to the
	// column's type.
	Value string

	// Key is a column whose value makes the local part of an email
	// ("user<key>@domain"). "" means a hash of the address.
	Key string
}

// identRE accepts the identifiers rules may name without quoting
// surprises: letters, digits, underscore, dollar.
var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]*$`)

// Validate reports the first problem of ds, naming the field.
func (ds Dataset) Validate(name string) error {
	if !identRE.MatchString(name) {
		return fmt.Errorf("snapshot: dataset name %q: use letters, digits and underscores", name)
	}

	if ds.Source == "" {
		return fmt.Errorf("snapshot: dataset %s: source is required", name)
	}

	for i, r := range ds.Rules {
		if err := r.validate(); err != nil {
			return fmt.Errorf("snapshot: dataset %s: rules[%d]: %w", name, i, err)
		}
	}

	return nil
}

func (r Rule) validate() error {
	schema, table := r.split()
	for _, id := range []string{schema, table, r.Column} {
		if !identRE.MatchString(id) {
			return fmt.Errorf("bad identifier %q in %s.%s", id, r.Table, r.Column)
		}
	}

	switch r.Method {
	case MethodHash, MethodSHA256, MethodNull, MethodFixed:
	case MethodEmail:
		if r.Key != "" && !identRE.MatchString(r.Key) {
			return fmt.Errorf("bad key column %q", r.Key)
		}
	default:
		return fmt.Errorf("unknown method %q (want hash, sha256, fixed, null or email)", r.Method)
	}

	return nil
}

// split returns the rule's schema and table.
func (r Rule) split() (schema, table string) {
	if s, t, ok := strings.Cut(r.Table, "."); ok {
		return s, t
	}

	return "public", r.Table
}

func (ds Dataset) database(name string) string {
	if ds.Database != "" {
		return ds.Database
	}

	return name
}

func (ds Dataset) superuser() string {
	if ds.Superuser != "" {
		return ds.Superuser
	}

	return "postgres"
}

// RoleName returns the role instances serve clients as.
func (ds Dataset) RoleName() string {
	if ds.Role != "" {
		return ds.Role
	}

	return "pgtide_analyst"
}

func (ds Dataset) keep() int {
	if ds.Keep > 0 {
		return ds.Keep
	}

	return 3
}
