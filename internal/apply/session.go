package apply

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgtide/pgtide/internal/change"
	"github.com/pgtide/pgtide/internal/changelog"
)

// targetSettings are the session settings of the applier's connection:
// the same output settings capture pins on the source, so text values
// read back compare equal, and the replica role, so the target's
// ordinary triggers, rules and foreign key checks stay quiet as under
// native logical replication (the source already enforced them, and
// cascaded changes arrive as records of their own).
var targetSettings = map[string]string{
	"TimeZone":           "UTC",
	"DateStyle":          "ISO, YMD",
	"IntervalStyle":      "postgres",
	"extra_float_digits": "3",
	"bytea_output":       "hex",
	"lc_monetary":        "C",
	"client_encoding":    "UTF8",
}

// chunk is a run of consecutive log messages on its way to the apply
// loop, handed over together so goroutine hand-offs are paid per chunk,
// not per message. Chunks are decoded in parallel; ready is closed once
// msgs are decoded. err ends the stream after msgs: a message that did not
// decode, or the reader's final error.
type chunk struct {
	msgs  []logMsg
	size  int
	ready chan struct{}
	err   error
}

// logMsg is one log message and its decoded batch.
type logMsg struct {
	seq     uint64
	pending uint64
	data    []byte
	b       *change.Batch
}

// Bounds of a chunk: it is also handed over as soon as the log holds no
// more messages, so a chunk never waits for more.
const (
	chunkMsgs  = 64
	chunkBytes = 1 << 20
)

// budget bounds the bytes of log messages read but not yet applied, so
// the reader runs ahead of the target (decoding while a COPY runs) with
// bounded memory.
type budget struct {
	mu   sync.Mutex
	cond *sync.Cond
	used int
	max  int
	done bool
}

func newBudget(max int) *budget {
	b := &budget{max: max}
	b.cond = sync.NewCond(&b.mu)
	return b
}

// acquire waits until n bytes fit (a single message larger than the
// budget is let through alone) and reports false once closed.
func (b *budget) acquire(n int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for !b.done && b.used > 0 && b.used+n > b.max {
		b.cond.Wait()
	}
	b.used += n
	return !b.done
}

func (b *budget) release(n int) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
	b.cond.Broadcast()
}

func (b *budget) close() {
	b.mu.Lock()
	b.done = true
	b.mu.Unlock()
	b.cond.Broadcast()
}

// connect opens a connection to the target with the applier's settings.
func (a *Applier) connect(ctx context.Context, role string) (*pgconn.PgConn, error) {
	cfg, err := pgconn.ParseConfig(a.opts.TargetDSN)
	if err != nil {
		return nil, &PermanentError{Err: fmt.Errorf("apply of %q: target DSN: %w", a.opts.Source, err)}
	}
	for k, v := range targetSettings {
		cfg.RuntimeParams[k] = v
	}
	cfg.RuntimeParams["application_name"] = "pgtide apply " + a.opts.Source + " " + role
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("apply of %q: connect to the target: %w", a.opts.Source, err)
	}
	return conn, nil
}

// session runs one apply session: lock, load progress, read and apply
// until ctx ends or an error.
func (a *Applier) session(ctx context.Context, careful **change.ID) error {
	lockConn, err := a.connect(ctx, "lock")
	if err != nil {
		return err
	}
	defer lockConn.Close(context.Background())
	if err := lock(ctx, lockConn); err != nil {
		return err
	}
	if a.opts.CreateSchema {
		if err := a.createSchema(ctx); err != nil {
			return err
		}
	}
	if err := ensureProgressTable(ctx, lockConn); err != nil {
		return err
	}

	conn, err := a.connect(ctx, "writer")
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if err := conn.Exec(ctx, "SET session_replication_role = replica").Close(); err != nil {
		return &PermanentError{Err: fmt.Errorf("apply of %q: set session_replication_role in the target "+
			"(the applier's role must be a superuser): %w", a.opts.Source, err)}
	}

	p, err := readProgress(ctx, conn, a.opts.Source)
	if err != nil {
		return err
	}
	skip, startSeq, err := a.startPoint(ctx, p)
	if err != nil {
		return err
	}
	a.mu.Lock()
	if p.ok {
		a.applied, a.appliedSeq = p.id, p.seq
	}
	a.mu.Unlock()
	a.opts.Logger.LogAttrs(ctx, slog.LevelInfo, "apply started",
		slog.String("after", skip.String()), slog.Uint64("seq", startSeq))

	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	ch := make(chan *chunk, 1024)
	bud := newBudget(readAhead)
	stopBudget := context.AfterFunc(sctx, bud.close)
	defer stopBudget()
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		a.read(sctx, startSeq, ch, bud)
	}()
	monDone := make(chan struct{})
	go func() {
		defer close(monDone)
		a.monitor(sctx, lockConn, cancel)
	}()
	defer func() {
		cancel(nil)
		<-readDone
		<-monDone
	}()

	a.running.Store(true)
	a.m.running.Set(1)
	err = a.loop(sctx, conn, ch, bud, skip, careful)
	if cause := context.Cause(sctx); err != nil && cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return err
}

// startPoint returns the last record ID to skip and the first log
// sequence to read.
func (a *Applier) startPoint(ctx context.Context, p progress) (change.ID, uint64, error) {
	skip := p.id
	if a.opts.StartAfterLSN != 0 && skip.LSN <= a.opts.StartAfterLSN {
		skip = change.ID{LSN: a.opts.StartAfterLSN, Pos: math.MaxUint32}
	}
	if !p.ok {
		return skip, 0, nil
	}
	info, err := a.opts.Log.Info(ctx, a.opts.Source)
	if err != nil {
		return skip, 0, fmt.Errorf("apply of %q: read the log's extent: %w", a.opts.Source, err)
	}
	switch {
	case p.seq >= info.LastSeq && info.Msgs > 0 && p.seq > info.LastSeq:
		// The log was recreated: its sequences mean something else.
		// Read it all; records up to the stored ID are skipped.
		return skip, 0, nil
	case info.Msgs > 0 && p.seq+1 < info.FirstSeq:
		return skip, 0, &PermanentError{Err: fmt.Errorf("apply of %q: the log no longer holds the records "+
			"after %s (sequence %d; it starts at %d): the replica cannot catch up and must be rebuilt; "+
			"keep the log longer (retention)", a.opts.Source, p.id, p.seq, info.FirstSeq)}
	}
	return skip, p.seq + 1, nil
}

// readAhead is the most bytes of log messages held between the reader
// and the apply loop.
const readAhead = 64 << 20

// read reads the log from seq and hands its messages to ch in order, in
// chunks decoded by a few workers in parallel, until ctx ends. Its last
// chunk carries the error that ended it.
func (a *Applier) read(ctx context.Context, seq uint64, ch chan<- *chunk, bud *budget) {
	work := make(chan *chunk, cap(ch))
	var wg sync.WaitGroup
	for range max(1, min(runtime.GOMAXPROCS(0), 4)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range work {
				a.decode(c)
			}
		}()
	}
	defer func() {
		close(work)
		wg.Wait()
	}()
	var cur *chunk
	send := func() error {
		c := cur
		cur = nil
		if !bud.acquire(c.size) {
			return ctx.Err()
		}
		select {
		case work <- c:
		case <-ctx.Done():
			return ctx.Err()
		}
		select {
		case ch <- c:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	err := a.opts.Log.Read(ctx, a.opts.Source, changelog.ReadOptions{StartSeq: seq, Batch: a.opts.ReadBatch},
		func(m *changelog.Message) error {
			if cur == nil {
				cur = &chunk{ready: make(chan struct{})}
			}
			cur.msgs = append(cur.msgs, logMsg{seq: m.Seq, pending: m.Pending, data: m.Data})
			cur.size += len(m.Data)
			if m.Pending == 0 || len(cur.msgs) >= chunkMsgs || cur.size >= chunkBytes {
				return send()
			}
			return nil
		})
	if err == nil {
		err = errors.New("log reader stopped")
	}
	last := cur
	if last == nil {
		last = &chunk{ready: make(chan struct{})}
	}
	last.err = fmt.Errorf("apply of %q: read the log: %w", a.opts.Source, err)
	a.decode(last)
	select {
	case ch <- last:
	case <-ctx.Done():
	}
}

// decode decodes the messages of c and closes c.ready. A message that
// does not decode ends the chunk with a PermanentError.
func (a *Applier) decode(c *chunk) {
	defer close(c.ready)
	for i := range c.msgs {
		m := &c.msgs[i]
		b, err := change.DecodeBatch(m.data)
		if err != nil {
			c.msgs = c.msgs[:i]
			c.err = &PermanentError{Err: fmt.Errorf("apply of %q: log message %d: %w", a.opts.Source, m.seq, err)}
			return
		}
		m.b, m.data = b, nil
	}
}

// group is the target transaction being built.
type group struct {
	start    time.Time
	txs      int
	rows     int
	ddl      bool // a finished transaction of the group held DDL
	ddlInTx  bool // the current transaction holds DDL
	boundary bool // the last applied record ended its transaction
	lastID   change.ID
	lastSeq  uint64
	lastTime time.Time
}

// loop applies items until ctx ends or an error.
func (a *Applier) loop(ctx context.Context, conn *pgconn.PgConn, ch <-chan *chunk, bud *budget, skip change.ID,
	careful **change.ID,
) error {
	e := newExecutor(a, conn)
	g := group{boundary: true}
	var pending uint64
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()

	commit := func(ctx context.Context) error {
		if err := e.commit(ctx, g.lastID, g.lastSeq); err != nil {
			return err
		}
		a.committed(g.lastID, g.lastSeq, g.lastTime, g.rows, g.txs)
		if a.opts.Logger.Enabled(ctx, slog.LevelDebug) {
			a.opts.Logger.LogAttrs(ctx, slog.LevelDebug, "group committed",
				slog.String("id", g.lastID.String()), slog.Int("transactions", g.txs),
				slog.Int("rows", g.rows), slog.Duration("open", time.Since(g.start)))
		}
		if *careful != nil && !g.lastID.Less(**careful) {
			*careful = nil
		}
		g = group{boundary: true}
		return nil
	}
	// stop ends the session on ctx: the open group commits when it holds
	// whole transactions only.
	stop := func() error {
		if e.inTx && g.boundary && g.txs > 0 {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			return commit(cctx)
		}
		return nil
	}

	var cur *chunk
	idx := 0
	defer func() {
		if cur != nil {
			bud.release(cur.size)
		}
	}()
	for {
		more := cur != nil && idx < len(cur.msgs)
		if e.inTx && g.boundary && (g.txs >= a.opts.GroupMaxTx || g.rows >= a.opts.GroupMaxRows || g.ddl ||
			(!more && len(ch) == 0 && pending == 0)) {
			if err := commit(ctx); err != nil {
				return err
			}
			continue
		}
		if !more {
			if cur != nil {
				bud.release(cur.size)
				if cur.err != nil {
					if ctx.Err() != nil {
						return stop()
					}
					return cur.err
				}
				cur = nil
			}
			var c *chunk
			if e.inTx && g.boundary {
				timer.Reset(max(time.Until(g.start.Add(a.opts.GroupMaxDelay)), 0))
				select {
				case c = <-ch:
					timer.Stop()
				case <-timer.C:
					if err := commit(ctx); err != nil {
						return err
					}
					continue
				case <-ctx.Done():
					return stop()
				}
			} else {
				select {
				case c = <-ch:
				case <-ctx.Done():
					return stop()
				}
			}
			select {
			case <-c.ready:
			case <-ctx.Done():
				bud.release(c.size)
				return stop()
			}
			cur, idx = c, 0
			continue
		}
		it := &cur.msgs[idx]
		idx++
		pending = it.pending
		b := it.b
		if !skip.Less(b.LastID()) {
			continue
		}
		from := 0
		if b.LSN == skip.LSN && b.FirstPos <= skip.Pos {
			from = int(skip.Pos-b.FirstPos) + 1
		}
		if !e.inTx {
			g.start = time.Now()
			e.mode.careful = *careful != nil
		}
		if err := e.apply(ctx, b, from); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		g.rows += len(b.Rows) - from
		g.ddlInTx = g.ddlInTx || b.Op == change.OpDDL
		g.boundary = b.Last
		if b.Last {
			g.txs++
			g.lastID, g.lastSeq, g.lastTime = b.LastID(), it.seq, b.CommitTime
			g.ddl = g.ddl || g.ddlInTx
			g.ddlInTx = false
		}
	}
}

// monitor updates lag and rate once a second, keeps the lock connection
// checked and runs the periodic sequence sync. It cancels the session
// when the lock connection fails, because the lock went with it.
func (a *Applier) monitor(ctx context.Context, lockConn *pgconn.PgConn, cancel context.CancelCauseFunc) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastRows, lastAt := a.rows.Load(), time.Now()
	var nextSeqSync time.Time
	if a.opts.SourceDSN != "" && a.opts.SequenceSyncInterval > 0 {
		nextSeqSync = time.Now().Add(a.opts.SequenceSyncInterval)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if err := lockConn.Ping(ctx); err != nil {
			if ctx.Err() == nil {
				cancel(fmt.Errorf("apply of %q: the connection holding the applier lock failed: %w",
					a.opts.Source, err))
			}
			return
		}
		a.updateLag(ctx, &lastRows, &lastAt)
		if !nextSeqSync.IsZero() && time.Now().After(nextSeqSync) {
			if _, err := a.SyncSequences(ctx); err != nil && ctx.Err() == nil {
				a.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "sequence sync failed", slog.Any("err", err))
			}
			nextSeqSync = time.Now().Add(a.opts.SequenceSyncInterval)
		}
	}
}

func (a *Applier) updateLag(ctx context.Context, lastRows *int64, lastAt *time.Time) {
	var end change.ID
	if m, err := a.opts.Log.Last(ctx, a.opts.Source); err == nil && m != nil {
		if b, err := change.DecodeBatch(m.Data); err == nil {
			end = b.LastID()
		}
	}
	rows, now := a.rows.Load(), time.Now()
	rate := float64(rows-*lastRows) / now.Sub(*lastAt).Seconds()
	*lastRows, *lastAt = rows, now

	a.mu.Lock()
	if end != (change.ID{}) {
		a.logEnd = end
	}
	a.lagSeconds, a.lagBytes = 0, 0
	if a.applied.Less(a.logEnd) {
		if !a.commitTime.IsZero() {
			a.lagSeconds = max(now.Sub(a.commitTime).Seconds(), 0)
		}
		if a.logEnd.LSN > a.applied.LSN {
			a.lagBytes = uint64(a.logEnd.LSN - a.applied.LSN)
		}
	}
	// A short moving average, so the figure neither jumps per group nor
	// lags minutes behind.
	a.rate = 0.5*a.rate + 0.5*rate
	lagS, lagB, r := a.lagSeconds, a.lagBytes, a.rate
	a.mu.Unlock()
	a.m.lagSeconds.Set(lagS)
	a.m.lagBytes.Set(float64(lagB))
	a.m.rowsPerSec.Set(r)
}
