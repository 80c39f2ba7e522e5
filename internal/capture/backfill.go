package capture

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgtide/pgtide/internal/change"
)

// ErrBackfillUnsupported is returned by [Capture.Backfill] when the source
// cannot carry the watermarks a backfill needs (PostgreSQL before 14).
var ErrBackfillUnsupported = errors.New("online backfill needs PostgreSQL 14 or later (logical messages)")

// ErrBackfillRequest marks errors of [Capture.Backfill] caused by the
// request itself (no tables, an unknown table, a table without a key),
// as opposed to failures to reach the source or the log.
var ErrBackfillRequest = errors.New("bad backfill request")

// backfillPlan is a requested backfill, stored in the log's state bucket
// so it continues after a restart.
type backfillPlan struct {
	ID      string          `json:"id"`
	Tables  []backfillTable `json:"tables"`
	Created time.Time       `json:"created"`
}

// backfillTable is one table of a backfill and how far it got.
type backfillTable struct {
	tablePlan
	// Hi is the largest key when the table's backfill began: rows
	// inserted after it reach the log through the stream anyway.
	Hi      []string `json:"hi,omitempty"`
	Started bool     `json:"started,omitempty"`
	LastKey []string `json:"last_key,omitempty"`
	Rows    int64    `json:"rows"`
	Done    bool     `json:"done"`
}

// BackfillStatus is the progress of one table of a backfill.
type BackfillStatus struct {
	ID    string
	Table string
	Rows  int64
	Done  bool
}

// defaultBackfillChunk is the number of rows one backfill window reads;
// it bounds the rows held in memory between two watermarks.
const defaultBackfillChunk = 5000

func backfillStateKey(source string) string { return "backfill." + source }

// Backfill queues an online backfill of tables ("schema.table", or a bare
// name in the source's first schema that has it) while the stream goes
// on, and returns its id. Each table must be captured and have a primary
// key or replica identity index. The backfill runs while capture streams
// and survives restarts; its rows arrive as read records.
func (c *Capture) Backfill(ctx context.Context, tables []string) (string, error) {
	if len(tables) == 0 {
		return "", fmt.Errorf("backfill: name at least one table: %w", ErrBackfillRequest)
	}
	conn, err := pgx.Connect(ctx, c.opts.DSN)
	if err != nil {
		return "", fmt.Errorf("backfill: connect to source %q: %w", c.opts.Source, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if serverVersionNum(conn.PgConn().ParameterStatus("server_version")) < 140000 {
		return "", ErrBackfillUnsupported
	}
	plan := backfillPlan{ID: strconv.FormatInt(time.Now().UnixMilli(), 36), Created: time.Now().UTC()}
	for _, name := range tables {
		tp, err := c.backfillTable(ctx, conn, name)
		if err != nil {
			return "", err
		}
		plan.Tables = append(plan.Tables, backfillTable{tablePlan: tp})
	}
	c.backfillMu.Lock()
	defer c.backfillMu.Unlock()
	plans, err := c.loadBackfills(ctx)
	if err != nil {
		return "", err
	}
	if err := c.saveBackfills(ctx, append(plans, plan)); err != nil {
		return "", err
	}
	select {
	case c.backfillWake <- struct{}{}:
	default:
	}
	c.log.Info("backfill queued", "backfill", plan.ID, "tables", strings.Join(tables, ","))
	return plan.ID, nil
}

// backfillTable resolves and checks one table of a backfill request.
func (c *Capture) backfillTable(ctx context.Context, conn *pgx.Conn, name string) (tablePlan, error) {
	var schema, table string
	err := conn.QueryRow(ctx, `SELECT schemaname::text, tablename::text FROM pg_publication_tables
		WHERE pubname = ANY ($1) AND (schemaname || '.' || tablename = $2
		   OR (tablename = $2 AND schemaname = ANY ($3)))
		ORDER BY array_position($3, schemaname::text) LIMIT 1`,
		[]string{c.opts.Publication, c.opts.keylessPublication()}, name, c.opts.Schemas).Scan(&schema, &table)
	if errors.Is(err, pgx.ErrNoRows) {
		return tablePlan{}, fmt.Errorf("backfill: table %q is not captured by source %q (unknown, or not selected by "+
			"its schemas and tables): %w", name, c.opts.Source, ErrBackfillRequest)
	}
	if err != nil {
		return tablePlan{}, fmt.Errorf("backfill: look up %q: %w", name, err)
	}
	s := &session{c: c, opts: &c.opts, query: conn}
	tp, _, err := s.planTable(ctx, schema, table)
	if err != nil {
		return tablePlan{}, err
	}
	if len(tp.Key) == 0 {
		return tablePlan{}, fmt.Errorf("backfill: table %s.%s has no primary key or replica identity index; "+
			"a backfill reads in key order and needs one: %w", schema, table, ErrBackfillRequest)
	}
	tp.Chunks = nil
	return tp, nil
}

func (c *Capture) loadBackfills(ctx context.Context) ([]backfillPlan, error) {
	data, err := c.opts.Log.GetState(ctx, backfillStateKey(c.opts.Source))
	if err != nil || data == nil {
		return nil, err
	}
	var plans []backfillPlan
	if err := json.Unmarshal(data, &plans); err != nil {
		return nil, fmt.Errorf("backfill state of source %q is unreadable: %w", c.opts.Source, err)
	}
	return plans, nil
}

func (c *Capture) saveBackfills(ctx context.Context, plans []backfillPlan) error {
	data, err := json.Marshal(plans)
	if err != nil {
		return err
	}
	c.publishBackfillStatus(plans)
	return c.opts.Log.PutState(ctx, backfillStateKey(c.opts.Source), data)
}

// finishedKept is how many finished backfills Status keeps listing.
const finishedKept = 16

func (c *Capture) publishBackfillStatus(plans []backfillPlan) {
	st := slices.Clone(c.finishedBackfills)
	for _, p := range plans {
		for _, t := range p.Tables {
			st = append(st, BackfillStatus{ID: p.ID, Table: t.Schema + "." + t.Table, Rows: t.Rows, Done: t.Done})
		}
	}
	c.backfillStatus.Store(&st)
}

// backfillRunner works through queued backfills while the session streams.
// Its failures end only itself (logged); the next session tries again.
func (s *session) backfillRunner(ctx context.Context) {
	cfg, err := pgx.ParseConfig(s.opts.DSN)
	if err != nil {
		s.c.log.Warn("backfill runner cannot parse the source DSN", "err", err)
		return
	}
	pinParams(cfg.RuntimeParams, "pgtide-backfill", false)
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		s.c.log.Warn("backfill runner cannot connect", "err", err)
		return
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for {
		if err := s.runBackfills(ctx, conn); err != nil {
			if ctx.Err() == nil {
				s.c.log.Warn("backfill failed, retrying in the next session", "err", err)
			}
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-s.c.backfillWake:
		}
	}
}

// runBackfills runs every queued backfill to its end.
func (s *session) runBackfills(ctx context.Context, conn *pgx.Conn) error {
	for {
		s.c.backfillMu.Lock()
		plans, err := s.c.loadBackfills(ctx)
		s.c.backfillMu.Unlock()
		if err != nil || len(plans) == 0 {
			return err
		}
		plan := plans[0]
		for i := range plan.Tables {
			if err := s.backfillTable(ctx, conn, &plan, i); err != nil {
				return err
			}
		}
		s.c.log.Info("backfill done", "backfill", plan.ID)
		if err := s.updateBackfill(ctx, plan, true); err != nil {
			return err
		}
	}
}

// updateBackfill stores a plan's progress, or removes it when finished.
func (s *session) updateBackfill(ctx context.Context, plan backfillPlan, finished bool) error {
	s.c.backfillMu.Lock()
	defer s.c.backfillMu.Unlock()
	plans, err := s.c.loadBackfills(ctx)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(plans, func(p backfillPlan) bool { return p.ID == plan.ID })
	switch {
	case i < 0:
	case finished:
		plans = slices.Delete(plans, i, i+1)
		for _, t := range plan.Tables {
			s.c.finishedBackfills = append(s.c.finishedBackfills,
				BackfillStatus{ID: plan.ID, Table: t.Schema + "." + t.Table, Rows: t.Rows, Done: true})
		}
		if n := len(s.c.finishedBackfills); n > finishedKept {
			s.c.finishedBackfills = s.c.finishedBackfills[n-finishedKept:]
		}
	default:
		plans[i] = plan
	}
	return s.c.saveBackfills(ctx, plans)
}

// backfillTable reads one table window by window, in key order.
func (s *session) backfillTable(ctx context.Context, conn *pgx.Conn, plan *backfillPlan, t int) error {
	bt := &plan.Tables[t]
	if !bt.Started {
		hi, err := maxKey(ctx, conn, &bt.tablePlan)
		if err != nil {
			return err
		}
		bt.Hi, bt.Started, bt.Done = hi, true, hi == nil
	}
	for !bt.Done {
		cols, err := s.tableColumnsOn(ctx, conn, &bt.tablePlan)
		if err != nil {
			return err
		}
		n, last, err := s.backfillWindow(ctx, conn, plan.ID, bt, cols)
		if err != nil {
			return err
		}
		if n == 0 {
			bt.Done = true
		} else if last != nil {
			bt.LastKey = last
			bt.Rows += int64(n)
		}
		if err := s.updateBackfill(ctx, *plan, false); err != nil {
			return err
		}
	}
	return nil
}

// backfillWindow runs one chunk between watermarks. It returns the rows
// read and the last key, or a nil key when the window was invalidated and
// must be read again.
func (s *session) backfillWindow(ctx context.Context, conn *pgx.Conn, id string, bt *backfillTable,
	cols []change.Column) (int, []string, error) {
	rel := windowRelation(s.opts.Source, &bt.tablePlan, cols)
	w := &window{id: fmt.Sprintf("%s/%d", id, s.c.windowSeq.Add(1)), rel: rel}
	for _, k := range bt.Key {
		w.keyIdx = append(w.keyIdx, slices.IndexFunc(cols, func(c change.Column) bool { return c.Name == k }))
	}
	s.windows.add(w)
	defer s.windows.remove(w.id)
	if err := s.emitWatermark(ctx, conn, w.id, "low"); err != nil {
		return 0, nil, err
	}
	rows, last, err := s.readWindow(ctx, conn, &bt.tablePlan, cols, bt.LastKey, bt.Hi)
	if err != nil || len(rows) == 0 {
		return 0, nil, err
	}
	s.windows.setRows(w, rows)
	if err := s.emitWatermark(ctx, conn, w.id, "high"); err != nil {
		return 0, nil, err
	}
	select {
	case <-w.done:
	case <-ctx.Done():
		return 0, nil, ctx.Err()
	}
	if w.invalid {
		return len(rows), nil, nil
	}
	// The window's records are published; make them durable before the
	// progress that says so.
	if err := s.pub.Flush(ctx); err != nil {
		return 0, nil, err
	}
	return len(rows), last, nil
}

func (s *session) emitWatermark(ctx context.Context, conn *pgx.Conn, id, kind string) error {
	msg, _ := json.Marshal(watermarkMsg{Source: s.opts.Source, Window: id, Kind: kind})
	_, err := conn.Exec(ctx, `SELECT pg_logical_emit_message(true, $1, $2)`, watermarkPrefix, string(msg))
	if err != nil {
		return fmt.Errorf("backfill: write %s watermark: %w", kind, err)
	}
	return nil
}

// readWindow reads the next rows after lastKey in key order, in the
// stream's value format, with the pinned session settings.
func (s *session) readWindow(ctx context.Context, conn *pgx.Conn, tp *tablePlan, cols []change.Column,
	lastKey, hi []string) ([]change.Row, []string, error) {
	r := &snapshotRun{s: s}
	sql, params := r.chunkQuery(tp, cols, chunkJob{lo: lastKey, hi: hi})
	sql += " LIMIT " + strconv.Itoa(defaultBackfillChunk)
	args := make([][]byte, len(params))
	for i, p := range params {
		args[i] = []byte(p)
	}
	format := int16(0)
	if s.opts.Binary {
		format = 1
	}
	formats := make([]int16, len(cols)+len(tp.Key))
	for i := range cols {
		formats[i] = format
	}
	rr := conn.PgConn().ExecParams(ctx, sql, args, nil, nil, formats)
	arena := newRowArena(len(cols), defaultBackfillChunk, format == 1)
	var rows []change.Row
	for rr.NextRow() {
		row, _ := arena.add(rr.Values())
		rows = append(rows, row)
	}
	last := arena.lastKey()
	if _, err := rr.Close(); err != nil {
		return nil, nil, fmt.Errorf("backfill: read %s.%s: %w", tp.Schema, tp.Table, err)
	}
	if len(rows) == 0 {
		last = nil
	}
	return rows, last, nil
}

// maxKey returns the table's largest key as text, or nil when it is empty.
func maxKey(ctx context.Context, conn *pgx.Conn, tp *tablePlan) ([]string, error) {
	cols := make([]string, len(tp.Key))
	desc := make([]string, len(tp.Key))
	for i, k := range tp.Key {
		cols[i] = fmt.Sprintf("%s::text AS pgtide_key_%d", quoteIdent(k), i)
		desc[i] = quoteIdent(k) + " DESC"
	}
	sql := fmt.Sprintf("SELECT %s FROM %s ORDER BY %s LIMIT 1", strings.Join(cols, ", "),
		qualified(tp.Schema, tp.Table), strings.Join(desc, ", "))
	res := conn.PgConn().ExecParams(ctx, sql, nil, nil, nil, nil).Read()
	if res.Err != nil {
		return nil, fmt.Errorf("backfill: largest key of %s.%s: %w", tp.Schema, tp.Table, res.Err)
	}
	if len(res.Rows) == 0 {
		return nil, nil
	}
	key := make([]string, len(res.Rows[0]))
	for i, v := range res.Rows[0] {
		key[i] = string(v)
	}
	return key, nil
}

// tableColumnsOn is tableColumns on another connection.
func (s *session) tableColumnsOn(ctx context.Context, conn *pgx.Conn, tp *tablePlan) ([]change.Column, error) {
	q := &session{c: s.c, opts: s.opts, query: conn}
	return q.tableColumns(ctx, tp)
}
