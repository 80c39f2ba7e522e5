package apply

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
)

// lockKey is the advisory lock that makes an applier the only one of its
// target database: the two int4 halves of pg_try_advisory_lock(int4,
// int4), which pg_locks shows as classid and objid.
const (
	lockClass = 0x70677464 // "pgtd"
	lockObj   = 0x61706c79 // "aply"
)

// lock takes the target's applier lock on conn, which must stay open for
// as long as the applier runs. When another session holds it, the error
// wraps ErrLocked and names the holder as pg_stat_activity shows it.
func lock(ctx context.Context, conn *pgconn.PgConn) error {
	res := conn.ExecParams(ctx, fmt.Sprintf("SELECT pg_try_advisory_lock(%d, %d)", lockClass, lockObj),
		nil, nil, nil, nil).Read()
	if res.Err != nil {
		return fmt.Errorf("take the applier lock: %w", res.Err)
	}
	if string(res.Rows[0][0]) == "t" {
		return nil
	}
	res = conn.ExecParams(ctx, fmt.Sprintf(`SELECT a.pid::text, coalesce(a.application_name, ''),
			coalesce(host(a.client_addr), 'local'), coalesce(a.backend_start::text, '')
		FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.classid = %d AND l.objid = %d AND l.objsubid = 2
		  AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
		  AND l.granted`, lockClass, lockObj), nil, nil, nil, nil).Read()
	if res.Err == nil && len(res.Rows) > 0 {
		r := res.Rows[0]
		return fmt.Errorf("%w: held by pid %s (application %q, client %s, connected %s); "+
			"stop that applier first", ErrLocked, r[0], r[1], r[2], r[3])
	}
	return fmt.Errorf("%w; stop that applier first", ErrLocked)
}
