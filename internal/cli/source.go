package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgtide/pgtide/internal/capture"
	"github.com/pgtide/pgtide/internal/config"
)

// States of a source, as /v1/status shows them.
const (
	stateSettingUp = "setting_up" // installing or checking the slot and publications
	stateStarting  = "starting"   // capture runs but does not stream (yet, or again)
	stateStreaming = "streaming"
	stateFailed    = "failed"  // stopped on an error an operator must fix
	stateStopped   = "stopped" // stopped by shutdown
)

// Setup retry bounds while the source database cannot be reached.
const (
	setupRetryMin = time.Second
	setupRetryMax = 30 * time.Second
)

// keylessHint says what a table without a key loses and how to fix it.
const keylessHint = "only INSERT and TRUNCATE are captured; add a primary key or set keyless: full"

// sourceRunner sets up and runs the capture of one source and reports its
// state. Its methods are safe for concurrent use.
type sourceRunner struct {
	cfg    config.SourceConfig
	opts   capture.Options
	logger *slog.Logger

	// mu guards the fields below.
	mu    sync.Mutex
	state string
	err   error            // why setup failed or capture stopped
	c     *capture.Capture // nil until set up
}

func newSourceRunner(cfg config.SourceConfig, opts capture.Options, logger *slog.Logger) *sourceRunner {
	return &sourceRunner{
		cfg:    cfg,
		opts:   opts,
		logger: logger.With("source", cfg.Name),
		state:  stateSettingUp,
	}
}

// run sets the source up, retrying while its database is unreachable, then
// captures until ctx ends or capture fails permanently.
func (r *sourceRunner) run(ctx context.Context) {
	if err := r.setup(ctx); err != nil {
		r.finish(ctx, err)
		return
	}

	c, err := capture.New(r.opts)
	if err != nil {
		r.finish(ctx, err)
		return
	}
	r.mu.Lock()
	r.c = c
	r.state = stateStarting
	r.mu.Unlock()

	r.finish(ctx, c.Run(ctx))
}

// finish records how the source stopped.
func (r *sourceRunner) finish(ctx context.Context, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil || ctx.Err() != nil {
		r.state = stateStopped
		return
	}
	r.state = stateFailed
	r.err = err
	r.logger.Error("source stopped; fix the problem and restart pgtide", "err", err)
}

// setup runs capture.Setup, retrying with backoff while the database
// cannot be reached. Any other failure, such as a missing privilege,
// needs an operator and is returned.
func (r *sourceRunner) setup(ctx context.Context) error {
	wait := setupRetryMin
	for {
		res, err := capture.Setup(ctx, r.opts)
		if err == nil {
			r.logSetup(res)
			return nil
		}
		var ce *pgconn.ConnectError
		if ctx.Err() != nil || !errors.As(err, &ce) {
			return err
		}

		r.mu.Lock()
		r.err = err
		r.mu.Unlock()
		delay := wait/2 + rand.N(wait/2)
		r.logger.Warn("source unreachable, retrying setup",
			"err", err,
			"retry_in", delay.Round(time.Millisecond),
		)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		wait = min(2*wait, setupRetryMax)
	}
}

func (r *sourceRunner) logSetup(res capture.SetupResult) {
	if res.SlotCreated {
		r.logger.Info("replication slot created", "slot", r.cfg.Slot)
	}
	for _, c := range res.Changes {
		r.logger.Info("publication changed", "change", c)
	}
	for _, t := range res.Keyless {
		r.logger.Warn("table has no primary key or replica identity", "table", t, "hint", keylessHint)
	}
	r.mu.Lock()
	r.err = nil
	r.mu.Unlock()
}

// notReady returns nil when the source streams, or why it does not.
func (r *sourceRunner) notReady() error {
	st := r.snapshot()
	if st.State == stateStreaming {
		return nil
	}
	if st.LastError != "" {
		return fmt.Errorf("source %s: %s: %s", r.cfg.Name, st.State, st.LastError)
	}
	return fmt.Errorf("source %s: %s", r.cfg.Name, st.State)
}

// failure returns why the source stopped, or nil when it did not fail.
func (r *sourceRunner) failure() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state != stateFailed {
		return nil
	}
	return fmt.Errorf("source %s: %w", r.cfg.Name, r.err)
}

// snapshot returns the source's state without the log's part.
func (r *sourceRunner) snapshot() sourceStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := sourceStatus{
		Name:  r.cfg.Name,
		DSN:   r.cfg.RedactedDSN(),
		Slot:  r.cfg.Slot,
		State: r.state,
	}
	if r.err != nil {
		st.LastError = r.err.Error()
	}
	if r.c != nil {
		cs := r.c.Status()
		st.Streaming = cs.Streaming
		st.ConfirmedLSN = cs.ConfirmedLSN.String()
		if cs.LastError != "" && r.err == nil {
			st.LastError = cs.LastError
		}
		if r.state == stateStarting && cs.Streaming {
			st.State = stateStreaming
		}
		if sn := cs.Snapshot; sn != nil {
			st.Snapshot = &snapshotProgress{
				RowsDone:      sn.RowsDone,
				RowsEstimated: sn.RowsEstimated,
				ETASeconds:    sn.ETA.Seconds(),
				Done:          sn.Done,
			}
		}
		for _, b := range cs.Backfills {
			st.Backfills = append(st.Backfills, backfillProgress{
				ID: b.ID, Table: b.Table, Rows: b.Rows, Done: b.Done,
			})
		}
	}
	return st
}

// capture returns the source's capture, or nil while it is set up.
func (r *sourceRunner) capture() *capture.Capture {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.c
}
