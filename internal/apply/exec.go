package apply

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgtide/pgtide/internal/change"
)

// executor writes records to the target through one connection. It
// pipelines prepared statements (results are read once per Pipeline
// statements or when the order of effects requires it) and sends runs of
// inserts with COPY. Not safe for concurrent use.
type executor struct {
	a    *Applier
	conn *pgconn.PgConn
	mode writeMode

	tables map[tableKey]*table
	plans  map[string]*plan
	nstmt  int

	batch  *pgconn.Batch
	queued []queued
	run    *insertRun
	trunc  *truncRun
	inTx   bool

	progress *plan
	copyBuf  []byte
	vals     [][]byte
	fmts     []int16
}

// queued is a statement sent in the current pipeline batch.
type queued struct {
	p    *plan // nil for control statements
	b    *change.Batch
	i    int // row index in b
	what string
}

// truncRun collects the tables of consecutive TRUNCATE records of one
// transaction, so they are truncated in one statement as on the source
// (tables referencing each other can only be truncated together).
type truncRun struct {
	b      *change.Batch // first record: options and ID
	tables []string
}

// carefulError asks the session to roll back and apply again, from the
// last committed progress, in careful mode up to and including the
// transaction of until: a divergence the policy resolves was met in fast
// mode, where statements are pipelined and inserts use COPY.
type carefulError struct {
	until change.ID
	why   string
}

func (e *carefulError) Error() string {
	return fmt.Sprintf("divergence at %s (%s): re-applying in careful mode", e.until, e.why)
}

func newExecutor(a *Applier, conn *pgconn.PgConn) *executor {
	return &executor{
		a: a, conn: conn,
		mode:   writeMode{policy: a.opts.OnConflict},
		tables: map[tableKey]*table{},
		plans:  map[string]*plan{},
		batch:  &pgconn.Batch{},
	}
}

func recordID(b *change.Batch, i int) change.ID {
	return change.ID{LSN: b.LSN, Pos: b.FirstPos + uint32(i)}
}

// table returns the target table of b, checked against b's columns.
func (e *executor) table(ctx context.Context, b *change.Batch, i int) (*table, error) {
	k := tableKey{b.Schema, b.Table}
	t, ok := e.tables[k]
	if !ok {
		var err error
		t, err = loadTable(ctx, e.conn, e.a.opts.Source, recordID(b, i), b.Schema, b.Table)
		if err != nil {
			return nil, err
		}
		e.tables[k] = t
	}
	if err := t.check(e.a.opts.Source, recordID(b, i), b.Columns); err != nil {
		return nil, err
	}
	return t, nil
}

// begin opens the target transaction if none is open.
func (e *executor) begin() {
	if !e.inTx {
		e.batch.ExecParams("BEGIN", nil, nil, nil, nil)
		e.queued = append(e.queued, queued{what: "BEGIN"})
		e.inTx = true
	}
}

// apply writes records from..len of b. DDL runs after everything queued
// before it.
func (e *executor) apply(ctx context.Context, b *change.Batch, from int) error {
	e.begin()
	if b.Op != change.OpTruncate {
		if err := e.flushTruncate(); err != nil {
			return err
		}
	}
	switch b.Op {
	case change.OpDDL:
		return e.ddl(ctx, b)
	case change.OpTruncate:
		return e.truncate(ctx, b)
	}
	t, err := e.table(ctx, b, from)
	if err != nil {
		return err
	}
	if b.Op != change.OpInsert || e.mode.careful {
		if err := e.flushRun(ctx); err != nil {
			return err
		}
	}
	for i := from; i < len(b.Rows); i++ {
		r := &b.Rows[i]
		switch b.Op {
		case change.OpInsert, change.OpRead:
			if b.Op == change.OpInsert && !e.mode.careful && copyable(r) {
				if err := e.addRun(ctx, t, b, i); err != nil {
					return err
				}
				continue
			}
			if err := e.flushRun(ctx); err != nil {
				return err
			}
			if err := e.queueInsert(ctx, t, b, i); err != nil {
				return err
			}
		case change.OpUpdate, change.OpDelete:
			if err := e.queueChange(ctx, t, b, i); err != nil {
				return err
			}
		}
	}
	return nil
}

func (e *executor) queueInsert(ctx context.Context, t *table, b *change.Batch, i int) error {
	key := planKey("i", b, nil, rowMatch{}, e.mode)
	p, ok := e.plans[key]
	if !ok {
		p = insertPlan(t, b, e.mode)
		e.plans[key] = p
	}
	return e.queue(ctx, p, b, i)
}

func (e *executor) queueChange(ctx context.Context, t *table, b *change.Batch, i int) error {
	r := &b.Rows[i]
	mt, err := matchOf(t, b, r)
	if err != nil {
		return &PermanentError{Err: fmt.Errorf("apply of %q: %s at %s: %w", e.a.opts.Source, b.Op, recordID(b, i), err)}
	}
	key := planKey(string(b.Op), b, r, mt, e.mode)
	p, ok := e.plans[key]
	if !ok {
		if b.Op == change.OpUpdate {
			p = updatePlan(t, b, r, mt)
		} else {
			p = deletePlan(t, b, r, mt)
		}
		if p == nil {
			// Nothing the target can receive changed (only generated
			// columns): nothing to do.
			return nil
		}
		e.plans[key] = p
	}
	return e.queue(ctx, p, b, i)
}

// queue prepares p if needed and adds row i of b to the pipeline.
func (e *executor) queue(ctx context.Context, p *plan, b *change.Batch, i int) error {
	if p.name == "" {
		e.nstmt++
		name := "pgtide_" + strconv.Itoa(e.nstmt)
		if _, err := e.conn.Prepare(ctx, name, p.sql, nil); err != nil {
			return e.stmtError(queued{p: p, b: b, i: i}, err)
		}
		p.name = name
	}
	e.vals, e.fmts = p.bind(&b.Rows[i], e.vals, e.fmts)
	e.batch.ExecPrepared(p.name, e.vals, e.fmts, nil)
	e.queued = append(e.queued, queued{p: p, b: b, i: i})
	if len(e.queued) >= e.a.opts.Pipeline || e.mode.careful {
		return e.flushBatch(ctx)
	}
	return nil
}

func (e *executor) addRun(ctx context.Context, t *table, b *change.Batch, i int) error {
	if e.run != nil && (e.run.t != t || (e.run.b != b && !slices.Equal(e.run.b.Columns, b.Columns))) {
		if err := e.flushRun(ctx); err != nil {
			return err
		}
	}
	if e.run == nil {
		e.run = &insertRun{t: t, b: b}
	}
	e.run.rows = append(e.run.rows, runRow{b: b, i: i})
	for _, v := range b.Rows[i].New {
		if v != nil {
			e.run.bytes += len(v.Data) + 1
		}
	}
	if len(e.run.rows) >= copyMaxRows || e.run.bytes >= copyMaxBytes {
		return e.flushRun(ctx)
	}
	return nil
}

// flushRun sends the open insert run: as COPY when it is long enough,
// else as prepared inserts in the pipeline.
func (e *executor) flushRun(ctx context.Context) error {
	r := e.run
	if r == nil {
		return nil
	}
	e.run = nil
	if len(r.rows) < copyMinRows {
		for _, rr := range r.rows {
			if err := e.queueInsert(ctx, r.t, rr.b, rr.i); err != nil {
				return err
			}
		}
		return nil
	}
	if err := e.flushBatch(ctx); err != nil {
		return err
	}
	e.copyBuf = r.encode(e.copyBuf[:0])
	tag, err := e.conn.CopyFrom(ctx, bytes.NewReader(e.copyBuf), r.copySQL())
	if err != nil {
		return e.copyError(r, err)
	}
	if int(tag.RowsAffected()) != len(r.rows) {
		return fmt.Errorf("COPY into %s wrote %d rows, want %d", r.t.qname, tag.RowsAffected(), len(r.rows))
	}
	e.a.m.rows[change.OpInsert].Add(float64(len(r.rows)))
	return nil
}

var copyLine = regexp.MustCompile(`line (\d+)`)

// copyError maps a COPY failure to the row it names (the server reports
// the line in Where).
func (e *executor) copyError(r *insertRun, err error) error {
	q := queued{b: r.rows[0].b, i: r.rows[0].i, what: "COPY into " + r.t.qname}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		if m := copyLine.FindStringSubmatch(pe.Where); m != nil {
			if n, _ := strconv.Atoi(m[1]); n >= 1 && n <= len(r.rows) {
				q.b, q.i = r.rows[n-1].b, r.rows[n-1].i
			}
		}
		if pe.Code == "23505" {
			q.p = insertPlan(r.t, q.b, e.mode)
		}
	}
	return e.stmtError(q, err)
}

func (e *executor) truncate(ctx context.Context, b *change.Batch) error {
	if err := e.flushRun(ctx); err != nil {
		return err
	}
	if tr := e.trunc; tr != nil && (tr.b.LSN != b.LSN || tr.b.Cascade != b.Cascade ||
		tr.b.RestartIdentity != b.RestartIdentity) {
		if err := e.flushTruncate(); err != nil {
			return err
		}
	}
	if _, err := e.table(ctx, b, 0); err != nil {
		return err
	}
	if e.trunc == nil {
		e.trunc = &truncRun{b: b}
	}
	e.trunc.tables = append(e.trunc.tables, qualified(b.Schema, b.Table))
	return nil
}

// flushTruncate queues the collected TRUNCATE. ONLY keeps it to the tables
// the source truncated: their partitions and children arrive as records of
// their own.
func (e *executor) flushTruncate() error {
	tr := e.trunc
	if tr == nil {
		return nil
	}
	e.trunc = nil
	sql := "TRUNCATE ONLY " + strings.Join(tr.tables, ", ")
	if tr.b.RestartIdentity {
		sql += " RESTART IDENTITY"
	}
	if tr.b.Cascade {
		sql += " CASCADE"
	}
	e.batch.ExecParams(sql, nil, nil, nil, nil)
	e.queued = append(e.queued, queued{b: tr.b, what: sql})
	e.a.m.rows[change.OpTruncate].Add(float64(len(tr.tables)))
	return nil
}

// flushAll sends everything queued and checks the results.
func (e *executor) flushAll(ctx context.Context) error {
	if err := e.flushRun(ctx); err != nil {
		return err
	}
	if err := e.flushTruncate(); err != nil {
		return err
	}
	return e.flushBatch(ctx)
}

// flushBatch sends the pipeline and reads every result. Statements that
// must affect one row and affected none are divergences.
func (e *executor) flushBatch(ctx context.Context) error {
	if len(e.queued) == 0 {
		return nil
	}
	batch, qs := e.batch, e.queued
	e.batch, e.queued = &pgconn.Batch{}, e.queued[len(e.queued):]
	mrr := e.conn.ExecBatch(ctx, batch)
	n := 0
	var firstErr error
	var diverged []int
	for mrr.NextResult() {
		tag, err := mrr.ResultReader().Close()
		if err != nil {
			firstErr = err
			break
		}
		q := qs[n]
		if q.p != nil {
			e.a.m.rows[q.b.Op].Inc()
			if q.p.expect && tag.RowsAffected() == 0 {
				diverged = append(diverged, n)
			}
		}
		n++
	}
	if err := mrr.Close(); err != nil && firstErr == nil {
		firstErr = err
	}
	e.queued = qs[:0]
	if firstErr != nil {
		if n < len(qs) {
			return e.stmtError(qs[n], firstErr)
		}
		return fmt.Errorf("send statements to the target: %w", firstErr)
	}
	for _, i := range diverged {
		if err := e.diverged(ctx, qs[i]); err != nil {
			return err
		}
	}
	return nil
}

// diverged handles a statement that affected no row, as the policy says.
func (e *executor) diverged(ctx context.Context, q queued) error {
	r := &q.b.Rows[q.i]
	id := recordID(q.b, q.i)
	op := q.b.Op
	reason := "hit no row"
	if op == change.OpInsert || op == change.OpRead {
		reason = "conflicts with an existing row"
	}
	d := &DivergenceError{Source: e.a.opts.Source, ID: id, Schema: q.b.Schema, Table: q.b.Table,
		Op: op, Key: describeKey(q.p, r), Reason: reason}
	if e.mode.policy == PolicyStop {
		return &PermanentError{Err: d}
	}
	e.a.m.divergences[string(op)].Inc()
	e.a.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "divergence",
		slog.String("source", d.Source), slog.String("id", id.String()),
		slog.String("table", qualified(d.Schema, d.Table)), slog.String("op", string(op)),
		slog.String("key", d.Key), slog.String("reason", reason), slog.String("policy", e.mode.policy))
	if e.mode.policy != PolicyUpsert || op != change.OpUpdate {
		return nil
	}
	if !e.mode.careful {
		return &carefulError{until: id, why: d.Error()}
	}
	// Upsert: the row is missing; insert it when the record holds it whole.
	if len(r.Unchanged) > 0 {
		e.a.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "divergence not repaired: unchanged TOAST values unknown",
			slog.String("id", id.String()), slog.String("table", qualified(d.Schema, d.Table)))
		return nil
	}
	t, err := e.table(ctx, q.b, q.i)
	if err != nil {
		return err
	}
	up := *q.b
	up.Op = change.OpRead // insert ... on conflict do update
	return e.queueInsert(ctx, t, &up, q.i)
}

// stmtError maps a failed statement to the error Run reports.
func (e *executor) stmtError(q queued, err error) error {
	var pe *pgconn.PgError
	src := e.a.opts.Source
	if q.b == nil {
		if q.what == "update progress" && errors.As(err, &pe) && pe.Code == "22012" {
			return fmt.Errorf("%w: the progress of %q in the target moved ahead of this applier",
				ErrLocked, src)
		}
		return fmt.Errorf("apply of %q: %s: %w", src, q.what, err)
	}
	id := recordID(q.b, q.i)
	if errors.As(err, &pe) {
		isInsert := q.b.Op == change.OpInsert || q.b.Op == change.OpRead
		if pe.Code == "23505" && isInsert {
			key := pe.Detail
			if q.p != nil {
				key = describeKey(q.p, &q.b.Rows[q.i])
			}
			d := &DivergenceError{Source: src, ID: id, Schema: q.b.Schema, Table: q.b.Table,
				Op: q.b.Op, Key: key, Reason: "conflicts with an existing row (" + pe.Detail + ")"}
			if e.mode.policy == PolicyStop || e.mode.careful {
				return &PermanentError{Err: d}
			}
			return &carefulError{until: id, why: d.Error()}
		}
		if pe.Code == "42P01" {
			return &PermanentError{Err: &SchemaError{Source: src, ID: id, Schema: q.b.Schema, Table: q.b.Table,
				Reason: "does not exist in the target (" + pe.Message + ")"}}
		}
		if pe.ColumnName != "" || pe.Code == "42703" || pe.Code[:2] == "22" {
			col := pe.ColumnName
			return &PermanentError{Err: &SchemaError{Source: src, ID: id, Schema: q.b.Schema,
				Table: q.b.Table, Column: col, Reason: "cannot take the record: " + pe.Error()}}
		}
	}
	what := q.what
	if what == "" {
		what = fmt.Sprintf("%s into %s", q.b.Op, qualified(q.b.Schema, q.b.Table))
	}
	err = fmt.Errorf("apply of %q: %s at %s: %w", src, what, id, err)
	if isPermanentPg(err) {
		return &PermanentError{Err: err}
	}
	return err
}

// commit sends what is queued, checks it, then sends the progress row
// and COMMIT.
func (e *executor) commit(ctx context.Context, id change.ID, seq uint64) error {
	if !e.inTx {
		return nil
	}
	// The data's results are checked before COMMIT is sent: a divergence
	// must stop the group before it commits.
	if err := e.flushAll(ctx); err != nil {
		return err
	}
	if e.progress == nil {
		e.progress = &plan{sql: progressUpsert}
	}
	if e.progress.name == "" {
		if _, err := e.conn.Prepare(ctx, "pgtide_progress", progressUpsert, nil); err != nil {
			return fmt.Errorf("apply of %q: prepare the progress update: %w", e.a.opts.Source, err)
		}
		e.progress.name = "pgtide_progress"
	}
	e.batch.ExecPrepared(e.progress.name, [][]byte{
		[]byte(e.a.opts.Source), []byte(id.LSN.String()),
		[]byte(strconv.FormatUint(uint64(id.Pos), 10)), []byte(strconv.FormatUint(seq, 10)),
	}, nil, nil)
	e.queued = append(e.queued, queued{what: "update progress"})
	e.batch.ExecParams("COMMIT", nil, nil, nil, nil)
	e.queued = append(e.queued, queued{what: "COMMIT"})
	e.inTx = false
	return e.flushBatch(ctx)
}

// reset forgets everything queued after a failure; the caller closes or
// rolls back the connection.
func (e *executor) reset() {
	e.batch, e.queued, e.run, e.trunc, e.inTx = &pgconn.Batch{}, e.queued[:0], nil, nil, false
}

// forget drops cached tables and prepared statements, after DDL.
func (e *executor) forget(ctx context.Context) error {
	e.tables = map[tableKey]*table{}
	e.plans = map[string]*plan{}
	if e.progress != nil {
		e.progress.name = ""
	}
	if err := e.conn.Exec(ctx, "DEALLOCATE ALL").Close(); err != nil {
		return fmt.Errorf("deallocate statements after DDL: %w", err)
	}
	return nil
}
