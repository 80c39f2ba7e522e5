package apply

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// ErrNoPGDump is returned when CreateSchema needs pg_dump and pg_restore
// and neither Options.PGBinDir, pg_config, PATH nor /usr/lib/postgresql
// provides them.
var ErrNoPGDump = errors.New("pg_dump and pg_restore not found: install the PostgreSQL client " +
	"(`apt-get install postgresql-client`, at least the source's major version) or set the bin directory")

// createSchema copies the source's schema into an empty target: pg_dump
// --schema-only in custom format, then pg_restore of every entry except
// event triggers (pgtide's own capture trigger would point at the pgtide
// schema, which is not copied). Owners, privileges, publications and
// subscriptions are left out. The restore runs in a single transaction,
// so a failure leaves the target empty and the next start tries again.
func (a *Applier) createSchema(ctx context.Context) error {
	empty, err := a.targetEmpty(ctx)
	if err != nil || !empty {
		return err
	}
	dump, restore, err := findPGBin(a.opts.PGBinDir)
	if err != nil {
		return &PermanentError{Err: err}
	}
	dir, err := os.MkdirTemp("", "pgtide-schema-")
	if err != nil {
		return fmt.Errorf("create schema: %w", err)
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "schema.dump")

	a.opts.Logger.LogAttrs(ctx, slog.LevelInfo, "copying the source schema into the empty target")
	if err := run(ctx, dump, "--schema-only", "--format=custom", "--no-owner", "--no-privileges",
		"--no-publications", "--no-subscriptions", "--exclude-schema=pgtide", "--file="+file,
		"--dbname="+a.opts.SourceDSN); err != nil {
		return &PermanentError{Err: fmt.Errorf("apply of %q: dump the source schema: %w", a.opts.Source, err)}
	}
	list, err := output(ctx, restore, "--list", file)
	if err != nil {
		return &PermanentError{Err: fmt.Errorf("apply of %q: list the schema dump: %w", a.opts.Source, err)}
	}
	var keep bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(list))
	for sc.Scan() {
		if !strings.Contains(sc.Text(), " EVENT TRIGGER ") {
			keep.Write(sc.Bytes())
			keep.WriteByte('\n')
		}
	}
	listFile := filepath.Join(dir, "schema.list")
	if err := os.WriteFile(listFile, keep.Bytes(), 0o600); err != nil {
		return fmt.Errorf("create schema: %w", err)
	}
	if err := run(ctx, restore, "--use-list="+listFile, "--no-owner", "--no-privileges",
		"--single-transaction", "--exit-on-error", "--dbname="+a.opts.TargetDSN, file); err != nil {
		return &PermanentError{Err: fmt.Errorf("apply of %q: restore the source schema into the target: %w",
			a.opts.Source, err)}
	}
	a.opts.Logger.LogAttrs(ctx, slog.LevelInfo, "source schema copied into the target")
	return nil
}

// targetEmpty reports whether the target holds no table outside the
// system schemas and pgtide's.
func (a *Applier) targetEmpty(ctx context.Context) (bool, error) {
	conn, err := pgx.Connect(ctx, a.opts.TargetDSN)
	if err != nil {
		return false, fmt.Errorf("apply of %q: connect to the target: %w", a.opts.Source, err)
	}
	defer conn.Close(context.Background())
	var n int
	err = conn.QueryRow(ctx, `SELECT count(*) FROM pg_catalog.pg_class c
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgtide')
		  AND n.nspname NOT LIKE 'pg\_toast%'`).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("apply of %q: list the target's tables: %w", a.opts.Source, err)
	}
	return n == 0, nil
}

func run(ctx context.Context, name string, args ...string) error {
	_, err := output(ctx, name, args...)
	return err
}

func output(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 2000 {
			msg = msg[:2000] + "…"
		}
		return nil, fmt.Errorf("%s: %w: %s", filepath.Base(name), err, msg)
	}
	return out, nil
}

// findPGBin returns the paths of pg_dump and pg_restore: from dir when
// set, else next to the server binaries as pg_config reports them, else
// on PATH, else in the newest /usr/lib/postgresql/<version>/bin.
func findPGBin(dir string) (dump, restore string, err error) {
	var dirs []string
	if dir != "" {
		dirs = []string{dir}
	} else {
		if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
			dirs = append(dirs, strings.TrimSpace(string(out)))
		}
		if p, err := exec.LookPath("pg_dump"); err == nil {
			dirs = append(dirs, filepath.Dir(p))
			if r, err := filepath.EvalSymlinks(p); err == nil {
				dirs = append(dirs, filepath.Dir(r))
			}
		}
		dirs = append(dirs, versionDirs()...)
	}
	for _, d := range dirs {
		dump, restore = filepath.Join(d, "pg_dump"), filepath.Join(d, "pg_restore")
		if isExec(dump) && isExec(restore) {
			return dump, restore, nil
		}
	}
	if dir != "" {
		return "", "", fmt.Errorf("%w (looked in %s)", ErrNoPGDump, dir)
	}
	return "", "", ErrNoPGDump
}

// versionDirs lists /usr/lib/postgresql/<version>/bin, newest first.
func versionDirs() []string {
	entries, _ := os.ReadDir("/usr/lib/postgresql")
	var vers []int
	for _, e := range entries {
		if v, err := strconv.Atoi(e.Name()); err == nil {
			vers = append(vers, v)
		}
	}
	sort.Sort(sort.Reverse(sort.IntSlice(vers)))
	var out []string
	for _, v := range vers {
		out = append(out, filepath.Join("/usr/lib/postgresql", strconv.Itoa(v), "bin"))
	}
	return out
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}
