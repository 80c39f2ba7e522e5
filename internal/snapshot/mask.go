package snapshot

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgtide/pgtide/internal/instance/pgproc"
)

// maskSettings keep the private masking server quiet and alone: no TCP,
// no autovacuum holding snapshots while old row versions are dropped, and
// no statement text in its log.
var maskSettings = map[string]string{
	"autovacuum":              "off",
	"log_statement":           "none",
	"log_min_error_statement": "panic",
	"log_min_messages":        "warning",
	"max_wal_senders":         "0",
	"wal_level":               "minimal",
	"archive_mode":            "off",
	"hot_standby":             "off",
}

// mask boots the copy privately, applies the dataset's rules and scripts,
// rewrites what held original values and stops the server cleanly.
func (m *Manager) mask(ctx context.Context, ds Dataset, snap *Snapshot) error {
	base := filepath.Dir(snap.DataDir)

	sock, cleanup, err := socketDir(base)
	if err != nil {
		return err
	}
	defer cleanup()

	if err := m.runner.Chown(sock); err != nil {
		return err
	}

	logFile := filepath.Join(base, "mask.log")
	// The masking log may quote values in error messages; it never
	// stays with the snapshot.
	defer os.Remove(logFile)

	srv, err := m.runner.Start(ctx, pgproc.ServerOptions{
		DataDir:   snap.DataDir,
		SocketDir: sock,
		Settings:  maskSettings,
		LogFile:   logFile,
	})
	if err != nil {
		return fmt.Errorf("boot the copy for masking: %w", err)
	}

	runErr := m.runMasking(ctx, ds, snap, sock)
	stopErr := stopClean(srv)

	if runErr != nil {
		return runErr
	}

	return stopErr
}

func (m *Manager) runMasking(ctx context.Context, ds Dataset, snap *Snapshot, sock string) error {
	db := ds.database(snap.Dataset)

	conn, err := pgconn.Connect(ctx, fmt.Sprintf("host=%s port=5432 user=%s dbname=%s sslmode=disable",
		sock, ds.superuser(), db))
	if err != nil {
		return fmt.Errorf("connect to the copy as %s: %w", ds.superuser(), err)
	}
	defer conn.Close(context.Background())

	salt := ds.Salt
	if salt == "" {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		salt = hex.EncodeToString(b)
	}

	steps := maskingSQL(ds.Rules, salt)
	steps = append(steps, ds.Scripts...)
	steps = append(steps, scrubSQL(ds.Rules, len(ds.Scripts) > 0)...)
	steps = append(steps, roleSQL(ds.RoleName())...)
	steps = append(steps, "CHECKPOINT")

	for i, sql := range steps {
		if _, err := conn.Exec(ctx, sql).ReadAll(); err != nil {
			return fmt.Errorf("masking step %d of %d: %w", i+1, len(steps), err)
		}
	}

	m.log.DebugContext(ctx, "snapshot masked", "snapshot", snap.ID, "steps", len(steps))

	return nil
}

// maskingSQL returns one UPDATE per table, setting every masked column at
// once, with triggers and foreign-key checks off
// (session_replication_role = replica) so no trigger copies the original
// values elsewhere.
func maskingSQL(rules []Rule, salt string) []string {
	if len(rules) == 0 {
		return nil
	}

	var order []string
	sets := map[string][]string{}

	for _, r := range rules {
		t := qualified(r)
		if _, ok := sets[t]; !ok {
			order = append(order, t)
		}

		sets[t] = append(sets[t], quoteIdent(r.Column)+" = "+maskExpr(r, salt))
	}

	out := []string{"SET session_replication_role = replica"}
	for _, t := range order {
		out = append(out, "UPDATE "+t+" SET "+strings.Join(sets[t], ", "))
	}

	return append(out, "RESET session_replication_role")
}

// maskExpr is the SQL expression replacing one column's value.
func maskExpr(r Rule, salt string) string {
	col := quoteIdent(r.Column)
	s := quoteLiteral(salt)

	switch r.Method {
	case MethodHash:
		return fmt.Sprintf("md5(%s || %s::text)", s, col)
	case MethodSHA256:
		return fmt.Sprintf("encode(sha256(convert_to(%s || %s::text, 'UTF8')), 'hex')", s, col)
	case MethodFixed:
		return fmt.Sprintf("CASE WHEN %s IS NULL THEN NULL ELSE %s END", col, quoteLiteral(r.Value))
	case MethodEmail:
		local := fmt.Sprintf("'u' || left(md5(%s || %s::text), 12)", s, col)
		if r.Key != "" {
			local = fmt.Sprintf("'user' || %s::text", quoteIdent(r.Key))
		}

		return fmt.Sprintf("CASE WHEN %s IS NULL THEN NULL ELSE %s || '@' || split_part(%s::text, '@', 2) END",
			col, local, col)
	default: // MethodNull; Validate rejects anything else.
		return "NULL"
	}
}

// scrubSQL removes the original values from the files: new statistics
// (pg_statistic samples column values), then rewrites of the tables and
// of the statistics catalogs, so no old row version, index entry or free
// space keeps them. With scripts, whatever they touched is unknown, so the
// whole database is rewritten.
func scrubSQL(rules []Rule, scripts bool) []string {
	if len(rules) == 0 && !scripts {
		return nil
	}

	var out []string
	if scripts {
		out = append(out, "ANALYZE", "VACUUM FULL")
	} else {
		seen := map[string]bool{}
		for _, r := range rules {
			t := qualified(r)
			if !seen[t] {
				seen[t] = true
				out = append(out, "ANALYZE "+t, "VACUUM FULL "+t)
			}
		}
	}

	return append(out,
		"VACUUM FULL pg_catalog.pg_statistic",
		"VACUUM FULL pg_catalog.pg_statistic_ext_data")
}

// roleSQL creates the role instances serve clients as: it logs in, reads
// and writes all data of its disposable copy, and may create tables in
// schema public, but is no superuser.
func roleSQL(role string) []string {
	r := quoteIdent(role)
	return []string{
		fmt.Sprintf(`DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = %s) THEN CREATE ROLE %s LOGIN; END IF;
END $$`, quoteLiteral(role), r),
		fmt.Sprintf("ALTER ROLE %s LOGIN NOSUPERUSER NOCREATEROLE NOREPLICATION NOBYPASSRLS", r),
		fmt.Sprintf("GRANT pg_read_all_data, pg_write_all_data TO %s", r),
		fmt.Sprintf(`DO $$ BEGIN
  IF EXISTS (SELECT FROM pg_namespace WHERE nspname = 'public') THEN GRANT CREATE ON SCHEMA public TO %s; END IF;
END $$`, r),
	}
}

func qualified(r Rule) string {
	schema, table := r.split()
	return quoteIdent(schema) + "." + quoteIdent(table)
}

func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
