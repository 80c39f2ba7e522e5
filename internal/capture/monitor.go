package capture

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// monitorInterval is how often slot health is read from the server.
const monitorInterval = 5 * time.Second

// monitor watches the slot from a separate connection: lag and retained
// WAL as metrics, the WAL retention alert, a lost slot (sent on fatal), and
// heartbeats that write a logical message into the source's WAL so the
// slot moves on while the captured tables are idle. Its failures are logged
// and retried: they never stop the stream.
func (s *session) monitor(ctx context.Context, fatal chan<- error) {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.WithoutCancel(ctx))
		}
	}()
	check := time.NewTicker(monitorInterval)
	defer check.Stop()
	var heartbeat <-chan time.Time
	if s.opts.HeartbeatInterval > 0 {
		t := time.NewTicker(s.opts.HeartbeatInterval)
		defer t.Stop()
		heartbeat = t.C
	}
	var lastAlert time.Time
	for {
		beat := false
		select {
		case <-ctx.Done():
			return
		case <-check.C:
		case <-heartbeat:
			beat = true
		}
		if conn == nil || conn.IsClosed() {
			var err error
			if conn, err = pgx.Connect(ctx, s.opts.DSN); err != nil {
				s.c.log.Warn("slot monitor cannot connect", "err", err)
				conn = nil
				continue
			}
		}
		if err := s.checkSlot(ctx, conn, fatal, &lastAlert); err != nil && ctx.Err() == nil {
			s.c.log.Warn("slot monitor query failed", "err", err)
		}
		if beat {
			s.beat(ctx, conn)
		}
	}
}

// checkSlot refreshes the slot metrics and raises the retention alert.
func (s *session) checkSlot(ctx context.Context, conn *pgx.Conn, fatal chan<- error, lastAlert *time.Time) error {
	var lag, retained int64
	var status string
	err := conn.QueryRow(ctx, `SELECT
			coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn), 0)::bigint,
			coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::bigint,
			coalesce(wal_status, '')
		FROM pg_replication_slots WHERE slot_name = $1`, s.opts.Slot).Scan(&lag, &retained, &status)
	if err != nil {
		return err
	}
	s.c.m.slotLagBytes.Set(float64(lag))
	s.c.m.retainedWAL.Set(float64(retained))
	if status == "lost" {
		select {
		case fatal <- errSlotLost(s.opts.Slot):
		default:
		}
		return nil
	}
	over := s.opts.MaxRetainedWAL > 0 && retained > s.opts.MaxRetainedWAL
	if !over {
		s.c.m.retentionOver.Set(0)
		return nil
	}
	s.c.m.retentionOver.Set(1)
	if time.Since(*lastAlert) >= time.Minute {
		*lastAlert = time.Now()
		s.c.log.Error("replication slot retains too much WAL",
			"retained_bytes", retained, "max_retained_wal", s.opts.MaxRetainedWAL,
			"lag_bytes", lag, "wal_status", status,
			"hint", "capture is behind or stalled; the source's disk fills until the slot advances. "+
				"Check the change log, or cap it on the server with max_slot_wal_keep_size")
	}
	return nil
}

// beat writes a non-transactional logical message: it gives the walsender
// WAL of this database to decode, so keepalives carry a newer position.
func (s *session) beat(ctx context.Context, conn *pgx.Conn) {
	if _, err := conn.Exec(ctx, `SELECT pg_logical_emit_message(false, 'pgtide.heartbeat', '')`); err != nil && ctx.Err() == nil {
		s.c.log.Debug("heartbeat failed", "err", err)
	}
}
