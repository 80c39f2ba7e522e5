package capture

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgtide/pgtide/internal/change"
	"github.com/pgtide/pgtide/internal/changelog"
)

func quoteIdent(s string) string { return pgx.Identifier{s}.Sanitize() }

// prepareSnapshot runs before replication starts. It takes the initial
// snapshot when the slot is new, resumes one that was interrupted, and
// loads the stream filter a resumed snapshot leaves behind. It returns the
// slot's starting position when it created the slot.
func (s *session) prepareSnapshot(ctx context.Context, slotExists bool) error {
	plan, err := loadPlan(ctx, s)
	if err != nil {
		return err
	}
	switch {
	case plan != nil && plan.State == snapDone:
	case plan == nil && (slotExists || !s.opts.Snapshot.Enabled):
		return nil
	case plan == nil || (plan.State == snapPending && !slotExists):
		if plan, err = s.freshSnapshot(ctx); err != nil {
			return err
		}
	case !slotExists:
		return permanent("snapshot of source %q was interrupted and its slot %s is gone: drop the "+
			"source's log stream and state, then set it up again", s.opts.Source, s.opts.Slot)
	default:
		if err := s.resumeSnapshot(ctx, plan); err != nil {
			return err
		}
	}
	s.filter = newStreamFilter(plan)
	return nil
}

// freshSnapshot creates the slot with an exported snapshot and reads every
// planned table under it.
func (s *session) freshSnapshot(ctx context.Context) (*snapshotPlan, error) {
	plan := &snapshotPlan{State: snapPending, StartSeq: s.pub.LastSeq() + 1, Started: time.Now().UTC()}
	// Record the intent first: a crash right after the slot exists must
	// resume the snapshot, not stream without one.
	if err := savePlan(ctx, s, plan); err != nil {
		return nil, err
	}
	res, err := pglogrepl.CreateReplicationSlot(ctx, s.repl, s.opts.Slot, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: "EXPORT_SNAPSHOT"})
	if err != nil {
		return nil, privilegeHint(fmt.Errorf("create replication slot %s: %w", s.opts.Slot, err),
			"the role needs the REPLICATION attribute")
	}
	lsn, err := change.ParseLSN(res.ConsistentPoint)
	if err != nil {
		return nil, err
	}
	s.track = newTracker(lsn, s.opts.ConfirmDelay)
	if plan.Tables, plan.Estimated, err = s.planTables(ctx); err != nil {
		return nil, err
	}
	plan.State = snapRunning
	if err := savePlan(ctx, s, plan); err != nil {
		return nil, err
	}
	s.c.log.Info("snapshot started", "lsn", lsn.String(), "tables", len(plan.Tables), "rows_estimated", plan.Estimated)
	var jobs []chunkJob
	for t, tp := range plan.Tables {
		for c, ch := range tp.Chunks {
			jobs = append(jobs, chunkJob{ref: chunkRef{t, c}, lo: ch.Lo, hi: ch.Hi})
		}
	}
	if err := s.runSnapshot(ctx, plan, lsn, res.SnapshotName, jobs, nil); err != nil {
		return nil, err
	}
	return plan, nil
}

// resumeSnapshot finishes an interrupted snapshot. The exported snapshot
// died with the old session, so the rest is read under a new one, taken
// by a temporary slot at a later LSN; the parts read under it are recorded
// so the stream skips their older changes.
func (s *session) resumeSnapshot(ctx context.Context, plan *snapshotPlan) error {
	lsn := s.track.confirmable // the slot never advances during a snapshot
	var err error
	if plan.State == snapPending {
		if plan.Tables, plan.Estimated, err = s.planTables(ctx); err != nil {
			return err
		}
		plan.State = snapRunning
	}
	progress, err := s.scanSnapshot(ctx, plan)
	if err != nil {
		return err
	}
	temp, err := s.tempSnapshot(ctx)
	if err != nil {
		return err
	}
	defer temp.conn.Close(context.WithoutCancel(ctx))

	var jobs []chunkJob
	var truncate []int
	for t, tp := range plan.Tables {
		keyless := len(tp.Key) == 0
		for c, ch := range tp.Chunks {
			p := progress[chunkRef{t, c}]
			if p.Done {
				continue
			}
			job := chunkJob{ref: chunkRef{t, c}, lo: ch.Lo, hi: ch.Hi}
			r := resumeRange{Table: t, Lo: ch.Lo, Hi: ch.Hi, LSN: temp.lsn, Whole: keyless}
			if p.LastKey != nil && !keyless {
				job.lo, r.Lo = p.LastKey, p.LastKey
			}
			if keyless && p.Rows {
				truncate = append(truncate, t)
			}
			jobs = append(jobs, job)
			plan.Resumes = append(plan.Resumes, r)
		}
	}
	if err := savePlan(ctx, s, plan); err != nil {
		return err
	}
	s.c.log.Info("snapshot resumed", "lsn", lsn.String(), "resume_lsn", temp.lsn.String(), "chunks_left", len(jobs))
	return s.runSnapshot(ctx, plan, lsn, temp.snapshot, jobs, truncate)
}

// runSnapshot reads jobs and marks the plan done.
func (s *session) runSnapshot(ctx context.Context, plan *snapshotPlan, lsn change.LSN, snapshot string,
	jobs []chunkJob, truncate []int) error {
	run, err := newSnapshotRun(ctx, s, plan, lsn)
	if err != nil {
		return err
	}
	s.c.snapEstimated.Store(plan.Estimated)
	s.c.snapStarted.Store(time.Now().UnixNano())
	s.c.snapDone.Store(false)
	for _, t := range truncate {
		if err := run.publishTruncate(ctx, t); err != nil {
			return err
		}
	}
	if err := run.run(ctx, snapshot, jobs); err != nil {
		return err
	}
	plan.State, plan.Finished = snapDone, time.Now().UTC()
	if err := savePlan(ctx, s, plan); err != nil {
		return err
	}
	s.c.snapDone.Store(true)
	s.c.log.Info("snapshot done", "rows", run.rows, "duration", plan.Finished.Sub(plan.Started).Round(time.Millisecond))
	return nil
}

// tempSlot is a temporary slot holding an exported snapshot open.
type tempSlot struct {
	conn     *pgconn.PgConn
	lsn      change.LSN
	snapshot string
}

func (s *session) tempSnapshot(ctx context.Context) (*tempSlot, error) {
	cfg, err := pgconn.ParseConfig(s.opts.DSN)
	if err != nil {
		return nil, err
	}
	pinParams(cfg.RuntimeParams, "pgtide-snapshot-resume", true)
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("snapshot: replication connection: %w", err)
	}
	name := s.opts.Slot + "_resume_" + strconv.FormatInt(time.Now().UnixNano()%1e9, 10)
	res, err := pglogrepl.CreateReplicationSlot(ctx, conn, name, "pgoutput", pglogrepl.CreateReplicationSlotOptions{
		Temporary: true, Mode: pglogrepl.LogicalReplication, SnapshotAction: "EXPORT_SNAPSHOT"})
	if err != nil {
		conn.Close(ctx)
		return nil, fmt.Errorf("snapshot: temporary slot: %w", err)
	}
	lsn, err := change.ParseLSN(res.ConsistentPoint)
	if err != nil {
		conn.Close(ctx)
		return nil, err
	}
	return &tempSlot{conn: conn, lsn: lsn, snapshot: res.SnapshotName}, nil
}

// scanSnapshot reads the headers of the snapshot's messages in the log:
// the exact progress of every chunk.
func (s *session) scanSnapshot(ctx context.Context, plan *snapshotPlan) (map[chunkRef]chunkProgress, error) {
	progress := map[chunkRef]chunkProgress{}
	end := s.pub.LastSeq()
	if end < plan.StartSeq {
		return progress, nil
	}
	err := s.opts.Log.Read(ctx, s.opts.Source, changelog.ReadOptions{StartSeq: plan.StartSeq, HeadersOnly: true},
		func(m *changelog.Message) error {
			if err := noteProgress(progress, m); err != nil {
				return err
			}
			if m.Seq >= end {
				return changelog.ErrStop
			}
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("snapshot: scan progress in the log: %w", err)
	}
	return progress, nil
}

func noteProgress(progress map[chunkRef]chunkProgress, m *changelog.Message) error {
	ref := m.Header.Get(hdrSnapChunk)
	if ref == "" {
		return nil
	}
	var r chunkRef
	t, c, ok := strings.Cut(ref, ".")
	var err1, err2 error
	r.Table, err1 = strconv.Atoi(t)
	r.Chunk, err2 = strconv.Atoi(c)
	if !ok || err1 != nil || err2 != nil {
		return permanent("log message %d has a malformed %s header %q", m.Seq, hdrSnapChunk, ref)
	}
	p := chunkProgress{Rows: true, Done: m.Header.Get(hdrSnapDone) == "1"}
	if err := json.Unmarshal([]byte(m.Header.Get(hdrSnapKey)), &p.LastKey); err != nil {
		return permanent("log message %d has a malformed %s header: %w", m.Seq, hdrSnapKey, err)
	}
	progress[r] = p
	return nil
}
