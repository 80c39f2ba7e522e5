package pgtest

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Exec connects to database over TCP as the superuser, runs sql with the
// simple query protocol and disconnects. sql may hold several statements
// separated by semicolons; they run as one implicit transaction unless
// they contain their own transaction control. The error is the first one
// the server reports, a *pgconn.PgError for SQL errors.
func (c *Cluster) Exec(ctx context.Context, database, sql string) error {
	conn, err := pgx.Connect(ctx, c.DSN(database))
	if err != nil {
		return fmt.Errorf("pgtest: connect to database %q: %w", database, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	if _, err := conn.PgConn().Exec(ctx, sql).ReadAll(); err != nil {
		return fmt.Errorf("pgtest: exec in database %q: %w", database, err)
	}

	return nil
}

// CreateDatabase creates database name, quoting it as an identifier, so
// any name PostgreSQL accepts works, mixed case included.
func (c *Cluster) CreateDatabase(ctx context.Context, name string) error {
	sql := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if err := c.Exec(ctx, "postgres", sql); err != nil {
		return fmt.Errorf("pgtest: create database %q: %w", name, err)
	}

	return nil
}

// Command returns a command that runs the program name (e.g. "pgbench",
// "psql", "pg_recvlogical") from [Cluster.BinDir] against this cluster;
// a name with a path separator is used as is. PGHOST, PGPORT, PGUSER and
// PGDATA point at the cluster, other PG* variables of the current
// environment are dropped, and the working directory is [Cluster.Dir].
// When running as root, the program runs as the OS user postgres, so
// files it writes must go where that user may write, such as
// [Cluster.Dir]. The caller may change the command before starting it.
func (c *Cluster) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	path := name
	if !strings.ContainsRune(name, filepath.Separator) {
		path = filepath.Join(c.binDir, name)
	}

	host := c.socketDir
	if host == "" {
		host = "127.0.0.1"
	}

	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = c.dir
	cmd.Env = c.user.env(
		"PGHOST="+host,
		"PGPORT="+strconv.Itoa(c.port),
		"PGUSER=postgres",
		"PGDATA="+c.dataDir,
	)
	c.user.apply(cmd, false)

	return cmd
}
