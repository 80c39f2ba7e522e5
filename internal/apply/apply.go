package apply

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgtide/pgtide/internal/change"
)

// Applier applies the change log of one source to a target database.
// Create it with [New] and run it with [Applier.Run]. Its methods are safe
// for concurrent use.
type Applier struct {
	opts Options
	m    *sourceMetrics

	running atomic.Bool
	rows    atomic.Int64 // records applied and committed

	// mu guards the fields below it.
	mu         sync.Mutex
	applied    change.ID
	appliedSeq uint64
	commitTime time.Time // source commit time of the last applied transaction
	logEnd     change.ID // newest record ID in the log, as last seen
	lagSeconds float64
	lagBytes   uint64
	rate       float64
	lastErr    string
}

// New checks opts and returns an Applier ready to run.
func New(opts Options) (*Applier, error) {
	opts.setDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	opts.Logger = opts.Logger.With("source", opts.Source)
	name := opts.Name
	if name == "" {
		name = opts.Source
	}
	return &Applier{opts: opts, m: opts.Metrics.forReplica(opts.Source, name)}, nil
}

// Ready reports whether the applier holds the target and follows the log.
func (a *Applier) Ready() bool { return a.running.Load() }

// Status is a point-in-time view of an applier, for `pgtide status`.
type Status struct {
	Source  string
	Running bool
	// Applied is the ID of the last applied record (zero before the first
	// commit of this process, or the stored progress once loaded).
	Applied    change.ID
	AppliedSeq uint64
	// LastCommit is the source commit time of the last applied
	// transaction.
	LastCommit time.Time
	// LogEnd is the newest record ID in the log, as last seen.
	LogEnd        change.ID
	LagSeconds    float64
	LagBytes      uint64
	RowsPerSecond float64
	LastError     string
}

// Status returns the applier's current state.
func (a *Applier) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	return Status{
		Source:        a.opts.Source,
		Running:       a.running.Load(),
		Applied:       a.applied,
		AppliedSeq:    a.appliedSeq,
		LastCommit:    a.commitTime,
		LogEnd:        a.logEnd,
		LagSeconds:    a.lagSeconds,
		LagBytes:      a.lagBytes,
		RowsPerSecond: a.rate,
		LastError:     a.lastErr,
	}
}

// Run applies the log until ctx ends; then it commits the group in
// progress when it ends at a transaction boundary (else rolls it back)
// and returns nil. Transient failures (lost connections, a restarting
// target or log) restart the session with jittered exponential backoff,
// resuming from the progress stored in the target. A [PermanentError]
// (a divergence under [PolicyStop], a target table that cannot take a
// record, a DDL statement that fails) and [ErrLocked] end Run.
func (a *Applier) Run(ctx context.Context) error {
	if a.opts.Log == nil {
		return &PermanentError{Err: fmt.Errorf("apply of %q: no change log given", a.opts.Source)}
	}
	backoff := time.Second
	var careful *change.ID
	for {
		err := a.session(ctx, &careful)
		a.running.Store(false)
		a.m.running.Set(0)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			continue
		}
		a.setErr(err)
		var ce *carefulError
		if errors.As(err, &ce) {
			a.opts.Logger.LogAttrs(ctx, slog.LevelInfo, "re-applying in careful mode",
				slog.String("until", ce.until.String()))
			careful = &ce.until
			a.m.restarts.Inc()
			continue
		}
		var pe *PermanentError
		if errors.As(err, &pe) || errors.Is(err, ErrLocked) {
			a.opts.Logger.LogAttrs(ctx, slog.LevelError, "apply stopped", slog.Any("err", err))
			return err
		}
		a.m.restarts.Inc()
		wait := time.Duration(rand.Int64N(int64(backoff)) + 1)
		a.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "apply session failed, restarting",
			slog.Any("err", err), slog.Duration("backoff", wait))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		backoff = min(2*backoff, a.opts.RetryBackoff)
	}
}

func (a *Applier) setErr(err error) {
	a.mu.Lock()
	a.lastErr = err.Error()
	a.mu.Unlock()
}

// committed records a commit of the target.
func (a *Applier) committed(id change.ID, seq uint64, commitTime time.Time, rows, txs int) {
	a.rows.Add(int64(rows))
	a.m.transactions.Add(float64(txs))
	a.m.groups.Inc()
	a.m.appliedLSN.Set(float64(id.LSN))
	a.mu.Lock()
	a.applied, a.appliedSeq, a.commitTime = id, seq, commitTime
	a.lastErr = ""
	a.mu.Unlock()
}

// String describes the applier for logs.
func (a *Applier) String() string {
	return fmt.Sprintf("apply of %q", a.opts.Source)
}
