package apply

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strings"

	"github.com/pgtide/pgtide/internal/change"
)

// ddl replays a captured DDL statement inside the open target transaction,
// so the schema change commits together with the progress that covers it.
//
// Capture records the client's whole query string, which may hold several
// statements. Each is classified (see classifyStatement): DDL runs;
// DML is skipped because its row changes arrive as records of their own;
// transaction control is skipped because the applier owns the
// transaction; DO blocks run, because DDL inside them is only captured as
// the whole block; statements that cannot run in a transaction block are
// rewritten (CONCURRENTLY is dropped) or skipped with a warning.
func (e *executor) ddl(ctx context.Context, b *change.Batch) error {
	if err := e.flushAll(ctx); err != nil {
		return err
	}
	d := b.DDL
	id := recordID(b, 0)
	if d == nil {
		return &PermanentError{Err: fmt.Errorf("apply of %q: ddl record %s has no statement", e.a.opts.Source, id)}
	}
	// Capture's event trigger recorded search_path pg_catalog for every
	// statement before it kept the caller's; for such old records the
	// target database's default is the best guess.
	if path := d.SearchPath; path != "" && path != "pg_catalog" {
		res := e.conn.ExecParams(ctx, "SELECT pg_catalog.set_config('search_path', $1, true)",
			[][]byte{[]byte(path)}, nil, nil, nil).Read()
		if res.Err != nil {
			return fmt.Errorf("apply of %q: set search_path for DDL at %s: %w", e.a.opts.Source, id, res.Err)
		}
	}
	for _, stmt := range splitStatements(d.Statement) {
		sql, action := classifyStatement(stmt)
		if action != actionRun {
			e.a.opts.Logger.LogAttrs(ctx, slog.LevelDebug, "ddl statement skipped",
				slog.String("id", id.String()), slog.String("reason", string(action)),
				slog.String("statement", truncate(stmt, 200)))
			if action == actionUnsupported {
				e.a.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "ddl statement not replayed",
					slog.String("id", id.String()), slog.String("statement", truncate(stmt, 200)))
			}
			continue
		}
		if _, err := e.conn.Exec(ctx, sql).ReadAll(); err != nil {
			err = fmt.Errorf("apply of %q: DDL at %s failed in the target: %q: %w; "+
				"make the target's schema match the source's state before it and restart",
				e.a.opts.Source, id, truncate(sql, 300), err)
			if isPermanentPg(err) {
				return &PermanentError{Err: err}
			}
			return err
		}
	}
	if err := e.conn.Exec(ctx, "RESET search_path").Close(); err != nil {
		return fmt.Errorf("apply of %q: reset search_path after DDL at %s: %w", e.a.opts.Source, id, err)
	}
	e.a.m.rows[change.OpDDL].Inc()
	return e.forget(ctx)
}

// stmtAction says what the applier does with one statement of a DDL
// record.
type stmtAction string

const (
	actionRun         stmtAction = "run"
	actionDML         stmtAction = "data change, applied from its records"
	actionTxControl   stmtAction = "transaction control, the applier owns the transaction"
	actionEmpty       stmtAction = "empty"
	actionUnsupported stmtAction = "cannot run in a replica's transaction"
)

var (
	concurrently = regexp.MustCompile(`(?i)^(\s*(?:create\s+(?:unique\s+)?index|drop\s+index|reindex\s+(?:\(.*?\)\s*)?\w+))\s+concurrently\b`)
	leadingWords = regexp.MustCompile(`^[A-Za-z]+(?:\s+[A-Za-z]+)?`)
)

// classifyStatement decides what to do with one statement and returns it,
// possibly rewritten. CREATE INDEX, DROP INDEX and REINDEX with
// CONCURRENTLY cannot run in a transaction block: the keyword is dropped,
// which gives the same result with a stronger lock on the replica.
// Subscriptions are never replayed: a replica must not start replicating
// from somewhere else on its own.
func classifyStatement(stmt string) (string, stmtAction) {
	body := strings.TrimSpace(stripComments(stmt))
	if body == "" {
		return "", actionEmpty
	}
	words := strings.ToUpper(strings.Join(strings.Fields(leadingWords.FindString(body)), " "))
	first, _, _ := strings.Cut(words, " ")
	switch first {
	case "BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT", "SAVEPOINT", "RELEASE", "PREPARE":
		if words == "PREPARE TRANSACTION" || first != "PREPARE" {
			return "", actionTxControl
		}
		return "", actionDML
	case "SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "WITH", "COPY", "TRUNCATE", "VALUES",
		"TABLE", "EXPLAIN", "EXECUTE", "CALL", "LOCK", "NOTIFY", "LISTEN", "UNLISTEN",
		"VACUUM", "ANALYZE", "CHECKPOINT", "CLUSTER", "DISCARD", "FETCH", "MOVE", "CLOSE",
		"DECLARE", "DEALLOCATE", "LOAD", "SHOW", "RESET":
		return "", actionDML
	case "SET":
		// Session settings would outlive the group; keep them local to
		// the target transaction.
		if words == "SET LOCAL" {
			return stmt, actionRun
		}
		if words == "SET SESSION" {
			return "SET LOCAL" + strings.TrimSpace(body)[len("SET SESSION"):], actionRun
		}
		if strings.HasPrefix(words, "SET ROLE") || strings.HasPrefix(words, "SET TRANSACTION") ||
			strings.HasPrefix(words, "SET CONSTRAINTS") {
			return "", actionDML
		}
		return "SET LOCAL" + strings.TrimSpace(body)[len("SET"):], actionRun
	case "CREATE", "ALTER", "DROP":
		if strings.HasSuffix(words, "SUBSCRIPTION") || strings.HasSuffix(words, "DATABASE") ||
			strings.HasSuffix(words, "SYSTEM") || strings.HasSuffix(words, "TABLESPACE") {
			return "", actionUnsupported
		}
	}
	if m := concurrently.FindStringSubmatchIndex(body); m != nil {
		return body[:m[3]] + body[m[1]:], actionRun
	}
	return stmt, actionRun
}

// splitStatements splits a query string at top-level semicolons, keeping
// quoted strings, quoted identifiers, dollar-quoted bodies and comments
// intact.
func splitStatements(q string) []string {
	var out []string
	start := 0
	for i := 0; i < len(q); {
		switch c := q[i]; {
		case c == '\'' || c == '"':
			i = skipQuoted(q, i, c)
		case c == '-' && i+1 < len(q) && q[i+1] == '-':
			for i < len(q) && q[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(q) && q[i+1] == '*':
			i = skipBlockComment(q, i)
		case c == '$':
			i = skipDollar(q, i)
		case c == ';':
			out = append(out, q[start:i])
			i++
			start = i
		default:
			i++
		}
	}
	if strings.TrimSpace(q[start:]) != "" {
		out = append(out, q[start:])
	}
	return out
}

// skipQuoted returns the index after the quoted string or identifier at i;
// a doubled quote is part of it. Backslash escapes of E” strings are
// honoured.
func skipQuoted(q string, i int, quote byte) int {
	escapes := quote == '\'' && i > 0 && (q[i-1] == 'E' || q[i-1] == 'e')
	for i++; i < len(q); i++ {
		switch {
		case escapes && q[i] == '\\':
			i++
		case q[i] == quote:
			if i+1 < len(q) && q[i+1] == quote {
				i++
				continue
			}
			return i + 1
		}
	}
	return len(q)
}

// skipBlockComment skips a (nestable) /* */ comment at i.
func skipBlockComment(q string, i int) int {
	depth := 0
	for i < len(q) {
		switch {
		case strings.HasPrefix(q[i:], "/*"):
			depth++
			i += 2
		case strings.HasPrefix(q[i:], "*/"):
			depth--
			i += 2
			if depth == 0 {
				return i
			}
		default:
			i++
		}
	}
	return len(q)
}

var dollarTag = regexp.MustCompile(`^\$([A-Za-z_][A-Za-z0-9_]*)?\$`)

// skipDollar skips a dollar-quoted string at i, or just the '$' of a
// parameter reference.
func skipDollar(q string, i int) int {
	if i > 0 && (isIdentChar(q[i-1])) {
		return i + 1
	}
	tag := dollarTag.FindString(q[i:])
	if tag == "" {
		return i + 1
	}
	end := strings.Index(q[i+len(tag):], tag)
	if end < 0 {
		return len(q)
	}
	return i + len(tag) + end + len(tag)
}

func isIdentChar(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

// stripComments removes leading comments so the first keyword can be
// read.
func stripComments(s string) string {
	for {
		s = strings.TrimSpace(s)
		switch {
		case strings.HasPrefix(s, "--"):
			if i := strings.IndexByte(s, '\n'); i >= 0 {
				s = s[i+1:]
			} else {
				return ""
			}
		case strings.HasPrefix(s, "/*"):
			s = s[skipBlockComment(s, 0):]
		default:
			return s
		}
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
