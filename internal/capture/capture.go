package capture

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

// Capture streams one source database into the change log. Create it with
// [New] and run it with [Capture.Run]. Its methods are safe for concurrent
// use.
type Capture struct {
	opts Options
	log  *slog.Logger
	m    *sourceMetrics

	ready     atomic.Bool
	confirmed atomic.Uint64
	lastErr   atomic.Pointer[string]

	// Progress of the running snapshot, for Status.
	snapRows      atomic.Int64
	snapEstimated atomic.Int64
	snapStarted   atomic.Int64 // unix nanoseconds; 0 when none ran
	snapDone      atomic.Bool

	// backfillMu serializes changes to the backfill queue in the log,
	// and guards finishedBackfills.
	backfillMu        sync.Mutex
	finishedBackfills []BackfillStatus
	// backfillWake tells the running session of a newly queued backfill.
	backfillWake   chan struct{}
	backfillStatus atomic.Pointer[[]BackfillStatus]
	windowSeq      atomic.Uint64
}

// PermanentError is an error that restarting capture cannot fix: the
// operator must act (the slot was invalidated, a row is larger than the
// log accepts, the log holds foreign data). [Capture.Run] returns it
// instead of retrying.
type PermanentError struct {
	Err error
}

func (e *PermanentError) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e *PermanentError) Unwrap() error { return e.Err }

func permanent(format string, args ...any) error {
	return &PermanentError{Err: fmt.Errorf(format, args...)}
}

// New checks opts and returns a Capture ready to run.
func New(opts Options) (*Capture, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if opts.Log == nil {
		return nil, fmt.Errorf("capture of %q: no change log given", opts.Source)
	}
	return &Capture{
		opts:         opts,
		log:          opts.Logger.With("source", opts.Source, "slot", opts.Slot),
		m:            opts.Metrics.forSource(opts.Source),
		backfillWake: make(chan struct{}, 1),
	}, nil
}

// Ready reports whether the replication stream is running.
func (c *Capture) Ready() bool { return c.ready.Load() }

// Status is a point-in-time view of a capture, for `pgtide status`.
type Status struct {
	Source       string
	Slot         string
	Streaming    bool
	ConfirmedLSN change.LSN
	LastError    string
	// Snapshot is the progress of this process's latest snapshot run.
	Snapshot *SnapshotStatus `json:",omitempty"`
	// Backfills lists the queued and running backfills, per table.
	Backfills []BackfillStatus `json:",omitempty"`
}

// SnapshotStatus is the progress of a snapshot.
type SnapshotStatus struct {
	RowsDone      int64
	RowsEstimated int64
	ETA           time.Duration
	// Done is true once every row is in the log.
	Done bool
}

// Status returns the capture's current state.
func (c *Capture) Status() Status {
	s := Status{
		Source:       c.opts.Source,
		Slot:         c.opts.Slot,
		Streaming:    c.ready.Load(),
		ConfirmedLSN: change.LSN(c.confirmed.Load()),
	}
	if e := c.lastErr.Load(); e != nil {
		s.LastError = *e
	}
	if b := c.backfillStatus.Load(); b != nil {
		s.Backfills = *b
	}
	if c.snapStarted.Load() != 0 {
		s.Snapshot = &SnapshotStatus{RowsDone: c.snapRows.Load(), RowsEstimated: c.snapEstimated.Load(),
			ETA: c.snapshotETA(), Done: c.snapDone.Load()}
	}
	return s
}

// snapshotETA extrapolates the running snapshot's rate to its estimate.
func (c *Capture) snapshotETA() time.Duration {
	done, est := c.snapRows.Load(), c.snapEstimated.Load()
	start := c.snapStarted.Load()
	if done <= 0 || start == 0 || est <= done || c.snapDone.Load() {
		return 0
	}
	elapsed := time.Since(time.Unix(0, start))
	return time.Duration(float64(elapsed) * float64(est-done) / float64(done))
}

// Run streams changes until ctx ends, then flushes what is in flight and
// returns nil. Transient failures (lost connections, a restarting server
// or log) restart the session with jittered exponential backoff; a
// [PermanentError] ends Run.
func (c *Capture) Run(ctx context.Context) error {
	backoff := time.Second
	for {
		started := time.Now()
		err := c.runSession(ctx)
		c.ready.Store(false)
		c.m.connected.Set(0)
		if ctx.Err() != nil {
			return nil
		}
		var perm *PermanentError
		if errors.As(err, &perm) {
			c.log.Error("capture stopped", "err", err)
			return err
		}
		msg := err.Error()
		c.lastErr.Store(&msg)
		c.m.restarts.Inc()
		if time.Since(started) > time.Minute {
			backoff = time.Second
		}
		wait := time.Duration(rand.Int64N(int64(backoff))) + 100*time.Millisecond
		c.log.Warn("capture session failed, restarting", "err", err, "retry_in", wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}
