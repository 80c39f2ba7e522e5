package apply

import (
	"context"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgtide/pgtide/internal/change"
)

// progressSchema creates the progress table. One row per source: the ID
// of the last applied record and the log sequence of its message. The row
// is written in the same target transaction as the data it covers, which
// makes apply exactly once.
const progressSchema = `CREATE SCHEMA IF NOT EXISTS pgtide;
CREATE TABLE IF NOT EXISTS pgtide.apply_progress (
    source     text PRIMARY KEY,
    lsn        pg_lsn NOT NULL,
    pos        bigint NOT NULL,
    seq        bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
)`

// progressUpsert moves the progress row forward. It only moves forward:
// if another session advanced it meanwhile (a second applier that got
// past the lock), the update matches no row and the division by zero
// aborts the transaction, data included.
const progressUpsert = `WITH up AS (
    INSERT INTO pgtide.apply_progress AS p (source, lsn, pos, seq, updated_at)
    VALUES ($1, $2::text::pg_lsn, $3::text::bigint, $4::text::bigint, now())
    ON CONFLICT (source) DO UPDATE
    SET lsn = EXCLUDED.lsn, pos = EXCLUDED.pos, seq = EXCLUDED.seq, updated_at = EXCLUDED.updated_at
    WHERE (p.lsn, p.pos) < (EXCLUDED.lsn, EXCLUDED.pos)
    RETURNING 1)
SELECT 1 / count(*) FROM up`

// progress is a stored apply position.
type progress struct {
	id  change.ID
	seq uint64
	ok  bool // a row exists
}

// ensureProgressTable creates the progress table if it is missing.
func ensureProgressTable(ctx context.Context, conn *pgconn.PgConn) error {
	if _, err := conn.Exec(ctx, progressSchema).ReadAll(); err != nil {
		return fmt.Errorf("create pgtide.apply_progress in the target: %w", err)
	}
	return nil
}

// readProgress returns the stored position of source.
func readProgress(ctx context.Context, conn *pgconn.PgConn, source string) (progress, error) {
	res := conn.ExecParams(ctx, `SELECT lsn::text, pos::text, seq::text FROM pgtide.apply_progress WHERE source = $1`,
		[][]byte{[]byte(source)}, nil, nil, nil).Read()
	if res.Err != nil {
		return progress{}, fmt.Errorf("read pgtide.apply_progress: %w", res.Err)
	}
	if len(res.Rows) == 0 {
		return progress{}, nil
	}
	r := res.Rows[0]
	lsn, err := change.ParseLSN(string(r[0]))
	if err != nil {
		return progress{}, fmt.Errorf("pgtide.apply_progress of %q: %w", source, err)
	}
	pos, err := strconv.ParseUint(string(r[1]), 10, 32)
	if err != nil {
		return progress{}, fmt.Errorf("pgtide.apply_progress of %q: pos: %w", source, err)
	}
	seq, err := strconv.ParseUint(string(r[2]), 10, 64)
	if err != nil {
		return progress{}, fmt.Errorf("pgtide.apply_progress of %q: seq: %w", source, err)
	}
	return progress{id: change.ID{LSN: lsn, Pos: uint32(pos)}, seq: seq, ok: true}, nil
}
