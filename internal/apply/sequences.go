package apply

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
)

// SyncSequences brings the target's sequences in step with the source's:
// it reads the last value of every sequence of the source (outside the
// system schemas and pgtide's) and sets the target's sequence of the same
// name to it. Sequences the target lacks are skipped and logged. It
// returns how many sequences it set. Run it before a cut-over, after the
// applier caught up; the applier also runs it every
// Options.SequenceSyncInterval.
//
// Sequence values are not part of logical decoding, so this is the only
// way they reach the replica. A target sequence is only ever moved to the
// source's value, which is at or after every value the applied rows hold.
func (a *Applier) SyncSequences(ctx context.Context) (int, error) {
	if a.opts.SourceDSN == "" {
		return 0, fmt.Errorf("apply of %q: sync sequences: no source DSN given", a.opts.Source)
	}
	src, err := pgx.Connect(ctx, a.opts.SourceDSN)
	if err != nil {
		return 0, fmt.Errorf("apply of %q: sync sequences: connect to the source: %w", a.opts.Source, err)
	}
	defer src.Close(context.Background())
	rows, err := src.Query(ctx, `SELECT schemaname::text, sequencename::text, last_value
		FROM pg_catalog.pg_sequences
		WHERE last_value IS NOT NULL AND schemaname NOT IN ('pg_catalog', 'information_schema', 'pgtide')`)
	if err != nil {
		return 0, fmt.Errorf("apply of %q: sync sequences: read the source: %w", a.opts.Source, err)
	}
	var schemas, names []string
	var values []int64
	for rows.Next() {
		var s, n string
		var v int64
		if err := rows.Scan(&s, &n, &v); err != nil {
			return 0, fmt.Errorf("apply of %q: sync sequences: %w", a.opts.Source, err)
		}
		schemas, names, values = append(schemas, s), append(names, n), append(values, v)
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("apply of %q: sync sequences: read the source: %w", a.opts.Source, err)
	}

	dst, err := pgx.Connect(ctx, a.opts.TargetDSN)
	if err != nil {
		return 0, fmt.Errorf("apply of %q: sync sequences: connect to the target: %w", a.opts.Source, err)
	}
	defer dst.Close(context.Background())
	rows, err = dst.Query(ctx, `SELECT v.s, v.n, c.oid IS NOT NULL
			AND pg_catalog.setval(c.oid, v.val, true) IS NOT NULL
		FROM unnest($1::text[], $2::text[], $3::bigint[]) AS v(s, n, val)
		LEFT JOIN pg_catalog.pg_namespace ns ON ns.nspname = v.s
		LEFT JOIN pg_catalog.pg_class c ON c.relnamespace = ns.oid AND c.relname = v.n AND c.relkind = 'S'`,
		schemas, names, values)
	if err != nil {
		return 0, fmt.Errorf("apply of %q: sync sequences: set the target's: %w", a.opts.Source, err)
	}
	set := 0
	var missing []string
	for rows.Next() {
		var s, n string
		var ok bool
		if err := rows.Scan(&s, &n, &ok); err != nil {
			return set, fmt.Errorf("apply of %q: sync sequences: %w", a.opts.Source, err)
		}
		if ok {
			set++
		} else {
			missing = append(missing, qualified(s, n))
		}
	}
	if err := rows.Err(); err != nil {
		return set, fmt.Errorf("apply of %q: sync sequences: set the target's: %w", a.opts.Source, err)
	}
	if len(missing) > 0 {
		a.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "sequences missing in the target",
			slog.Any("sequences", missing))
	}
	a.opts.Logger.LogAttrs(ctx, slog.LevelDebug, "sequences synced", slog.Int("count", set))
	return set, nil
}
