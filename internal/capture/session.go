package capture

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgtide/pgtide/internal/change"
	"github.com/pgtide/pgtide/internal/changelog"
)

// pinnedParams are set on every connection that produces values (the
// replication connection, snapshot and backfill readers) so that every
// value's text form is the same whatever the server's or role's defaults:
// output functions run with these settings.
var pinnedParams = map[string]string{
	"DateStyle":          "ISO, YMD",
	"IntervalStyle":      "postgres",
	"TimeZone":           "UTC",
	"extra_float_digits": "3",
	"bytea_output":       "hex",
	"client_encoding":    "UTF8",
	"lc_monetary":        "C",
}

// pinParams adds pinnedParams, application_name and, for a replication
// connection, the replication mode to a connection's startup parameters.
func pinParams(params map[string]string, app string, replication bool) {
	for k, v := range pinnedParams {
		params[k] = v
	}
	params["application_name"] = app
	if replication {
		params["replication"] = "database"
	}
}

// session is one replication connection's life: from START_REPLICATION to
// the first error or the end of the context.
type session struct {
	c     *Capture
	opts  *Options
	repl  *pgconn.PgConn
	query *pgx.Conn
	pub   *changelog.Publisher
	track *tracker
	types *typeNamer

	rels map[uint32]*relation
	// lastID is the newest record the log held when the session started;
	// records up to it are already stored and are skipped.
	lastID change.ID

	// tx is the transaction being decoded; inTx is false between
	// transactions.
	tx   txState
	inTx bool
	// batch is the open batch of the current transaction, nil when none.
	batch      *openBatch
	serverEnd  change.LSN
	lastCommit time.Time
	// filter skips changes a resumed snapshot already holds; nil when none.
	filter *streamFilter
	// messages is true when the server sends logical messages (14+),
	// which online backfills need.
	messages bool
	// windows are the open backfill chunks (see backfill.go).
	windows *windows
	// wg tracks the session's goroutines; close waits for them.
	wg sync.WaitGroup
}

type txState struct {
	lsn        change.LSN
	xid        uint32
	commitTime time.Time
	pos        uint32
	published  int
}

// openBatch is a batch being filled, with its relation and size so far.
type openBatch struct {
	change.Batch
	rel   *relation
	bytes int
}

func (c *Capture) runSession(ctx context.Context) (err error) {
	s := &session{c: c, opts: &c.opts, rels: map[uint32]*relation{}}
	defer s.close(ctx)

	if err := s.open(ctx); err != nil {
		return err
	}

	monCtx, stopMonitor := context.WithCancel(ctx)
	fatal := make(chan error, 1)
	s.wg.Go(func() { s.monitor(monCtx, fatal) })
	if s.messages {
		s.windows = newWindows()
		s.wg.Go(func() { s.backfillRunner(monCtx) })
	}
	defer func() {
		stopMonitor()
		s.settle(ctx)
	}()

	c.ready.Store(true)
	c.lastErr.Store(nil)
	c.m.connected.Set(1)
	c.log.Info("capture streaming", "resume_after", s.lastID.String(), "confirmed_lsn", s.track.confirmable.String())
	err = s.stream(ctx, fatal)
	if ctx.Err() != nil {
		s.shutdown(ctx)
		return nil
	}
	return err
}

// open connects, reads where the log ends and starts replication.
func (s *session) open(ctx context.Context) error {
	cfg, err := pgconn.ParseConfig(s.opts.DSN)
	if err != nil {
		return permanent("parse DSN of source %q: %w", s.opts.Source, err)
	}
	pinParams(cfg.RuntimeParams, "pgtide-capture-"+s.opts.Source, true)
	if s.repl, err = pgconn.ConnectConfig(ctx, cfg); err != nil {
		return fmt.Errorf("open replication connection: %w", err)
	}
	if s.query, err = pgx.Connect(ctx, s.opts.DSN); err != nil {
		return fmt.Errorf("open query connection: %w", err)
	}
	s.types = &typeNamer{conn: s.query, cache: map[typeKey]string{}}

	confirmed, exists, err := s.slotPosition(ctx)
	if err != nil {
		return err
	}
	s.track = newTracker(confirmed, s.opts.ConfirmDelay)
	if _, err := s.opts.Log.EnsureStream(ctx, s.opts.Source, s.opts.Retention); err != nil {
		return fmt.Errorf("ensure log stream: %w", err)
	}
	if s.pub, err = s.opts.Log.NewPublisher(ctx, s.opts.Source, s.opts.MaxPending); err != nil {
		return fmt.Errorf("open log publisher: %w", err)
	}
	s.wg.Go(s.ackLoop)
	if err := s.readLogEnd(ctx); err != nil {
		return err
	}
	if err := s.prepareSnapshot(ctx, exists); err != nil {
		return err
	}
	if !exists && !s.opts.Snapshot.Enabled {
		return permanent("replication slot %s does not exist: run `pgtide setup` for source %q",
			s.opts.Slot, s.opts.Source)
	}
	return s.startReplication(ctx)
}

// slotPosition checks the slot and returns its confirmed position and
// whether it exists.
func (s *session) slotPosition(ctx context.Context) (change.LSN, bool, error) {
	var confirmed, status string
	var active bool
	err := s.query.QueryRow(ctx, `SELECT coalesce(confirmed_flush_lsn::text, '0/0'),
			coalesce(wal_status, ''), active
		FROM pg_replication_slots WHERE slot_name = $1`, s.opts.Slot).Scan(&confirmed, &status, &active)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read slot %s: %w", s.opts.Slot, err)
	}
	if status == "lost" {
		return 0, false, errSlotLost(s.opts.Slot)
	}
	if active {
		return 0, false, fmt.Errorf("replication slot %s is in use by another process (another pgtide capture "+
			"for source %q?); retrying", s.opts.Slot, s.opts.Source)
	}
	lsn, err := change.ParseLSN(confirmed)
	return lsn, true, err
}

func errSlotLost(slot string) error {
	return permanent("replication slot %s is lost: the server removed WAL the slot still needed "+
		"(max_slot_wal_keep_size), so changes are missing; drop the slot and set the source up again "+
		"with a new snapshot", slot)
}

// readLogEnd finds the newest record in the log; capture resumes after
// it. It reads the message at the sequence the publisher will append
// after, not merely the newest one: should a write of an earlier session
// still land, the publisher's first write fails on its expected sequence
// and the session restarts, instead of repeating what that write stored.
func (s *session) readLogEnd(ctx context.Context) error {
	seq := s.pub.LastSeq()
	if seq == 0 {
		return nil
	}
	last, err := s.opts.Log.Message(ctx, s.opts.Source, seq)
	if err != nil {
		return fmt.Errorf("read end of log: %w", err)
	}
	if last == nil {
		// Retention removed it; the slot confirmed it long ago.
		return nil
	}
	b, err := change.DecodeBatch(last.Data)
	if err != nil {
		return permanent("the log's last message (sequence %d) is not a pgtide change batch: %w", last.Seq, err)
	}
	s.lastID = b.LastID()
	return nil
}

func (s *session) startReplication(ctx context.Context) error {
	args := []string{
		"proto_version '1'",
		fmt.Sprintf("publication_names '%s,%s'", s.opts.Publication, s.opts.keylessPublication()),
	}
	v, _ := strconv.Atoi(s.repl.ParameterStatus("server_version_num"))
	if v == 0 {
		v = serverVersionNum(s.repl.ParameterStatus("server_version"))
	}
	if v >= 140000 {
		// Logical messages carry the watermarks of online backfills.
		args = append(args, "messages 'true'")
		s.messages = true
	}
	if s.opts.Binary {
		if v < 140000 {
			return permanent("binary: true needs PostgreSQL 14 or later; source %q runs %s",
				s.opts.Source, s.repl.ParameterStatus("server_version"))
		}
		args = append(args, "binary 'true'")
	}
	// Start at 0: the server resumes from the slot's confirmed position.
	err := pglogrepl.StartReplication(ctx, s.repl, s.opts.Slot, 0,
		pglogrepl.StartReplicationOptions{PluginArgs: args})
	if err != nil {
		return fmt.Errorf("start replication on slot %s: %w", s.opts.Slot, err)
	}
	return nil
}

// serverVersionNum turns "15.4 (Debian …)" into 150004.
func serverVersionNum(v string) int {
	var major, minor int
	fmt.Sscanf(v, "%d.%d", &major, &minor)
	return major*10000 + minor
}

// stream is the replication loop: receive, decode, publish, and report the
// confirmable position every status interval. Reads wait on a socket
// deadline at the next status time rather than on a context per message,
// which would cost a context and a watcher for every row; ctx is therefore
// checked between reads, at least once per status interval.
func (s *session) stream(ctx context.Context, fatal <-chan error) error {
	conn := s.repl.Conn()
	defer conn.SetReadDeadline(time.Time{})
	next := time.Now().Add(s.opts.StatusInterval)
	deadline := time.Time{}
	for ctx.Err() == nil {
		if err := s.checkHealth(fatal); err != nil {
			return err
		}
		if !time.Now().Before(next) {
			if err := s.sendStatus(ctx); err != nil {
				return err
			}
			next = time.Now().Add(s.opts.StatusInterval)
		}
		if !deadline.Equal(next) {
			deadline = next
			conn.SetReadDeadline(deadline)
		}
		msg, err := s.repl.ReceiveMessage(context.Background())
		if err != nil {
			if pgconn.Timeout(err) {
				continue
			}
			return fmt.Errorf("receive from replication stream: %w", err)
		}
		if err := s.handle(ctx, msg, &next); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// checkHealth returns the monitor's fatal finding or a publish failure.
func (s *session) checkHealth(fatal <-chan error) error {
	select {
	case err := <-fatal:
		return err
	default:
	}
	if err := s.pub.Err(); err != nil {
		return fmt.Errorf("log publish failed: %w", err)
	}
	return nil
}

func (s *session) handle(ctx context.Context, msg pgproto3.BackendMessage, next *time.Time) error {
	switch msg := msg.(type) {
	case *pgproto3.CopyData:
		if len(msg.Data) == 0 {
			return errors.New("empty CopyData message in replication stream")
		}
		switch msg.Data[0] {
		case pglogrepl.PrimaryKeepaliveMessageByteID:
			pkm, err := pglogrepl.ParsePrimaryKeepaliveMessage(msg.Data[1:])
			if err != nil {
				return fmt.Errorf("parse keepalive: %w", err)
			}
			s.serverEnd = change.LSN(pkm.ServerWALEnd)
			if !s.inTx {
				s.track.idle(s.serverEnd, time.Now())
			}
			if pkm.ReplyRequested {
				*next = time.Time{}
			}
		case pglogrepl.XLogDataByteID:
			xld, err := pglogrepl.ParseXLogData(msg.Data[1:])
			if err != nil {
				return fmt.Errorf("parse XLogData: %w", err)
			}
			s.serverEnd = change.LSN(xld.ServerWALEnd)
			// The receive buffer is reused; values alias this copy.
			return s.decode(ctx, bytes.Clone(xld.WALData))
		}
	case *pgproto3.ErrorResponse:
		return pgconn.ErrorResponseToPgError(msg)
	case *pgproto3.CopyDone:
		return errors.New("server ended the replication stream")
	}
	return nil
}

// sendStatus reports the confirmable position and refreshes lag metrics.
// Between transactions with everything acknowledged it asks the server for
// a keepalive, whose WAL end then becomes confirmable: that is how the slot
// advances while captured tables are idle.
func (s *session) sendStatus(ctx context.Context) error {
	now := time.Now()
	lsn := s.track.confirm(now)
	idle := !s.inTx && s.track.settled()
	err := pglogrepl.SendStandbyStatusUpdate(ctx, s.repl, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: pglogrepl.LSN(lsn),
		ReplyRequested:   idle,
	})
	if err != nil {
		return fmt.Errorf("send standby status: %w", err)
	}
	s.c.confirmed.Store(uint64(lsn))
	s.c.m.confirmedLSN.Set(float64(lsn))
	lag := 0.0
	if !idle && !s.lastCommit.IsZero() {
		lag = now.Sub(s.lastCommit).Seconds()
	}
	s.c.m.lagSeconds.Set(lag)
	return nil
}

// ackLoop turns acknowledgements into confirmable positions. It ends when
// the publisher closes or breaks.
func (s *session) ackLoop() {
	for tag := range s.pub.Acked() {
		s.track.ack(change.LSN(tag), time.Now())
	}
}

// shutdown confirms what may be confirmed after a graceful stop.
func (s *session) shutdown(ctx context.Context) {
	if !s.settle(ctx) {
		return
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.sendStatus(sctx); err != nil {
		s.c.log.Debug("final status update failed", "err", err)
	}
}

// settle waits (up to 10 s) until every publish is acknowledged or has
// failed, so that no write of this session lands after the next one has
// read the end of the log. It reports whether all were acknowledged.
func (s *session) settle(ctx context.Context) bool {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.pub.Flush(fctx); err != nil {
		s.c.log.Warn("log writes unsettled at session end", "err", err)
		return false
	}
	return true
}

func (s *session) close(ctx context.Context) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if s.pub != nil {
		s.pub.Close() // ends the ack loop
	}
	s.wg.Wait()
	if s.repl != nil {
		s.repl.Close(cctx)
	}
	if s.query != nil {
		s.query.Close(cctx)
	}
}
