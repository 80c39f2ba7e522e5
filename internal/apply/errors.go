package apply

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgtide/pgtide/internal/change"
)

// ErrLocked is returned by [Applier.Run] when another applier holds the
// target's lock. The error wrapping it names the holder when the target
// can tell.
var ErrLocked = errors.New("apply: another applier is running on the target")

// PermanentError is an error that restarting the applier cannot fix: the
// operator must act (fix the target's schema, resolve a divergence, run a
// statement by hand). Nothing after the failing record was applied, so
// restarting the applier after the fix resumes exactly there.
type PermanentError struct {
	Err error
}

// Error returns the underlying error's text.
func (e *PermanentError) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e *PermanentError) Unwrap() error { return e.Err }

func permanent(format string, args ...any) error {
	return &PermanentError{Err: fmt.Errorf(format, args...)}
}

// DivergenceError reports a record that does not fit the target: an
// update or delete that hit no row, or an insert whose key already exists.
// Under [PolicyStop] it stops the applier (wrapped in a PermanentError).
type DivergenceError struct {
	Source string
	ID     change.ID
	Schema string
	Table  string
	Op     change.Op
	// Key is the row's key as "col=value, ...", or the whole old row for
	// tables without a key.
	Key string
	// Reason says what happened, e.g. "hit no row".
	Reason string
}

// Error says what diverged where and how to proceed.
func (e *DivergenceError) Error() string {
	return fmt.Sprintf("apply of %q: divergence at %s: %s of %s (%s) %s in the target; "+
		"the replica no longer matches the source: repair the row, or restart with on_conflict "+
		"%q or %q", e.Source, e.ID, e.Op, qualified(e.Schema, e.Table), e.Key, e.Reason,
		PolicyLog, PolicyUpsert)
}

// SchemaError reports a target table that cannot receive a record: the
// table or a column is missing, or a column's type does not fit.
type SchemaError struct {
	Source string
	ID     change.ID
	Schema string
	Table  string
	// Column is empty when the whole table is concerned.
	Column string
	Reason string
}

// Error names the table, column and record, and says how to proceed.
func (e *SchemaError) Error() string {
	what := qualified(e.Schema, e.Table)
	if e.Column != "" {
		what = fmt.Sprintf("column %q of %s", e.Column, what)
	}
	return fmt.Sprintf("apply of %q: at %s: %s %s; fix the target and restart: "+
		"nothing of this source transaction was applied, the applier resumes with it",
		e.Source, e.ID, what, e.Reason)
}

// isPermanentPg reports whether a server error stems from the data or the
// schema (which retrying cannot fix) rather than from the connection or
// the server's state.
func isPermanentPg(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code[:2] {
	case "08", "53", "57", "58", "40", "55":
		// connection, resources, operator intervention (shutdown), system,
		// serialization or deadlock, object in use: transient.
		return false
	}
	return true
}

func qualified(schema, table string) string {
	return quoteIdent(schema) + "." + quoteIdent(table)
}
