package capture

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

//go:embed setup.sql
var setupSQL string

// eventTriggerSQL installs the DDL event trigger; it needs a superuser.
const eventTriggerSQL = `DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'pgtide_ddl') THEN
        CREATE EVENT TRIGGER pgtide_ddl ON ddl_command_end EXECUTE FUNCTION pgtide.on_ddl();
    END IF;
END $$`

// sqlstateInsufficientPrivilege is the SQLSTATE of a permission error.
const sqlstateInsufficientPrivilege = "42501"

// SetupResult reports what [Setup] found and changed.
type SetupResult struct {
	// Changes lists publication changes, e.g. "add to pgtide_shop: public.orders".
	Changes []string
	// Keyless lists tables captured without UPDATE and DELETE because they
	// have no primary key or replica identity.
	Keyless []string
	// SlotCreated is true when the replication slot was created now.
	SlotCreated bool
	// SlotDeferred is true when the initial snapshot is on: capture
	// creates the slot when it starts (if it does not exist yet).
	SlotDeferred bool
}

// Setup installs or verifies everything capture needs in the source
// database: the pgtide schema with its DDL log and source table, the two
// publications (full, and insert-and-truncate for tables without a
// replica identity), their table lists, the DDL event trigger when
// DDL capture is on, and the logical replication slot. It is idempotent.
//
// A missing privilege is reported as an error that says which one and how
// to proceed.
func Setup(ctx context.Context, opts Options) (SetupResult, error) {
	var res SetupResult
	if err := opts.validate(); err != nil {
		return res, err
	}
	conn, err := pgx.Connect(ctx, opts.DSN)
	if err != nil {
		return res, fmt.Errorf("setup: connect to source %q: %w", opts.Source, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	if err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		return setupObjects(ctx, tx, opts, &res)
	}); err != nil {
		return res, fmt.Errorf("setup of source %q: %w", opts.Source, err)
	}

	exists, err := inspectSlot(ctx, conn, opts.Slot)
	switch {
	case err != nil:
		return res, fmt.Errorf("setup of source %q: %w", opts.Source, err)
	case exists:
	case opts.Snapshot.Enabled:
		// Capture creates the slot itself, with the exported snapshot its
		// initial copy reads under.
		res.SlotDeferred = true
	default:
		_, err := conn.Exec(ctx, `SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, opts.Slot)
		if err != nil {
			return res, privilegeHint(fmt.Errorf("setup of source %q: create replication slot %s: %w",
				opts.Source, opts.Slot, err),
				"the role needs the REPLICATION attribute (ALTER ROLE … REPLICATION) and the server wal_level = logical")
		}
		res.SlotCreated = true
	}
	return res, nil
}

// setupObjects runs the transactional part of Setup.
func setupObjects(ctx context.Context, tx pgx.Tx, opts Options, res *SetupResult) error {
	// Keep pgtide's own DDL out of the DDL log.
	if _, err := tx.Exec(ctx, `SELECT set_config('pgtide.in_sync', 'on', true)`); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, setupSQL); err != nil {
		return privilegeHint(fmt.Errorf("install pgtide schema: %w", err),
			"the setup role needs CREATE on the database (or run `pgtide setup` as its owner)")
	}
	if err := upsertSource(ctx, tx, opts); err != nil {
		return err
	}
	if err := ensurePublication(ctx, tx, opts.Publication, "insert, update, delete, truncate"); err != nil {
		return err
	}
	if err := ensurePublication(ctx, tx, opts.keylessPublication(), "insert, truncate"); err != nil {
		return err
	}
	if opts.DDL {
		if _, err := tx.Exec(ctx, eventTriggerSQL); err != nil {
			return privilegeHint(fmt.Errorf("install DDL event trigger: %w", err),
				"PostgreSQL lets only superusers create event triggers: run `pgtide setup` as a superuser once, or set ddl: false to capture without DDL")
		}
	}
	return syncPublications(ctx, tx, opts, res)
}

func upsertSource(ctx context.Context, tx pgx.Tx, opts Options) error {
	include, exclude := opts.likePatterns()
	_, err := tx.Exec(ctx, `
		INSERT INTO pgtide.sources (name, publication, keyless_publication, schemas,
			include_tables, exclude_tables, keyless, ddl)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (name) DO UPDATE SET publication = EXCLUDED.publication,
			keyless_publication = EXCLUDED.keyless_publication, schemas = EXCLUDED.schemas,
			include_tables = EXCLUDED.include_tables, exclude_tables = EXCLUDED.exclude_tables,
			keyless = EXCLUDED.keyless, ddl = EXCLUDED.ddl`,
		opts.Source, opts.Publication, opts.keylessPublication(), opts.Schemas,
		include, exclude, opts.Keyless, opts.DDL)
	if err != nil {
		return fmt.Errorf("record source selection: %w", err)
	}
	return nil
}

// ensurePublication creates the publication or checks that an existing one
// publishes exactly the wanted operations.
func ensurePublication(ctx context.Context, tx pgx.Tx, name, publish string) error {
	var ins, upd, del, trunc, all bool
	err := tx.QueryRow(ctx, `SELECT pubinsert, pubupdate, pubdelete, pubtruncate, puballtables
		FROM pg_publication WHERE pubname = $1`, name).Scan(&ins, &upd, &del, &trunc, &all)
	if errors.Is(err, pgx.ErrNoRows) {
		sql := fmt.Sprintf("CREATE PUBLICATION %s WITH (publish = '%s')",
			pgx.Identifier{name}.Sanitize(), publish)
		if _, err := tx.Exec(ctx, sql); err != nil {
			return privilegeHint(fmt.Errorf("create publication %s: %w", name, err),
				"the setup role needs CREATE on the database")
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("inspect publication %s: %w", name, err)
	}
	have := publishList(ins, upd, del, trunc)
	if all || have != publish {
		return fmt.Errorf("publication %s exists but publishes %q (all tables: %v); pgtide needs %q for its own "+
			"table list: drop it or name another publication in the source's config", name, have, all, publish)
	}
	return nil
}

func publishList(ins, upd, del, trunc bool) string {
	var ops []string
	for _, op := range []struct {
		on   bool
		name string
	}{{ins, "insert"}, {upd, "update"}, {del, "delete"}, {trunc, "truncate"}} {
		if op.on {
			ops = append(ops, op.name)
		}
	}
	return strings.Join(ops, ", ")
}

func syncPublications(ctx context.Context, tx pgx.Tx, opts Options, res *SetupResult) error {
	rows, err := tx.Query(ctx, `SELECT action, table_name FROM pgtide.sync_publications() WHERE source = $1`, opts.Source)
	if err != nil {
		return privilegeHint(fmt.Errorf("sync publication table lists: %w", err),
			"the setup role must own the selected tables to add them to a publication")
	}
	for rows.Next() {
		var action, table string
		if err := rows.Scan(&action, &table); err != nil {
			return err
		}
		res.Changes = append(res.Changes, action+": "+table)
	}
	if err := rows.Err(); err != nil {
		return privilegeHint(fmt.Errorf("sync publication table lists: %w", err),
			"the setup role must own the selected tables to add them to a publication")
	}
	return tx.QueryRow(ctx, `SELECT coalesce(array_agg(schemaname || '.' || tablename ORDER BY 1), '{}')
		FROM pg_publication_tables WHERE pubname = $1`, opts.keylessPublication()).Scan(&res.Keyless)
}

// inspectSlot reports whether the slot exists, and checks that an
// existing one uses pgoutput in this database.
func inspectSlot(ctx context.Context, conn *pgx.Conn, slot string) (bool, error) {
	var plugin, db, current string
	err := conn.QueryRow(ctx, `SELECT coalesce(s.plugin, ''), coalesce(s.database, ''), current_database()
		FROM pg_replication_slots s WHERE s.slot_name = $1`, slot).Scan(&plugin, &db, &current)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("inspect replication slot %s: %w", slot, err)
	}
	if plugin != "pgoutput" || db != current {
		return false, fmt.Errorf("replication slot %s exists for plugin %q in database %q; pgtide needs a pgoutput slot "+
			"in database %q: drop it or name another slot in the source's config", slot, plugin, db, current)
	}
	return true, nil
}

// privilegeHint appends hint to err when err is a permission error.
func privilegeHint(err error, hint string) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == sqlstateInsufficientPrivilege {
		return fmt.Errorf("%w: %s", err, hint)
	}
	return err
}
