package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgtide/pgtide/internal/apply"
	"github.com/pgtide/pgtide/internal/change"
	"github.com/pgtide/pgtide/internal/changelog"
	"github.com/pgtide/pgtide/internal/config"
)

// States of a replica, as /v1/status shows them.
const (
	replicaStarting = "starting" // checking the target, copying the schema, or waiting for the lock
	replicaApplying = "applying" // holds the target and follows the log
	replicaRetrying = "retrying" // lost the target or the log; restarts with backoff
	replicaFailed   = "failed"   // stopped on an error an operator must fix
	replicaStopped  = "stopped"  // stopped by shutdown
)

// replicaRunner runs the applier of one replica and reports its state.
// Its methods are safe for concurrent use.
type replicaRunner struct {
	cfg    config.ReplicaConfig
	opts   apply.Options
	logger *slog.Logger

	// mu guards the fields below.
	mu    sync.Mutex
	state string
	err   error          // why the replica stopped
	a     *apply.Applier // nil until created
}

// applyOptions maps the configuration of replica r, whose source is src,
// to the applier's options.
func applyOptions(
	r config.ReplicaConfig, src config.SourceConfig, l *changelog.Log, m *apply.Metrics, logger *slog.Logger,
) apply.Options {
	seqSync := time.Duration(r.SequenceSyncInterval)
	if seqSync == 0 {
		seqSync = -1 // "off": apply takes a negative interval
	}
	// Validate has checked the LSN.
	after, _ := config.ParseLSN(r.StartAfterLSN)
	return apply.Options{
		Source:               r.Source,
		Name:                 r.Name,
		Log:                  l,
		TargetDSN:            r.DSN,
		SourceDSN:            src.DSN,
		Logger:               logger.With("component", "apply", "replica", r.Name),
		Metrics:              m,
		GroupMaxTx:           r.GroupMaxTx,
		GroupMaxRows:         r.GroupMaxRows,
		GroupMaxDelay:        time.Duration(r.GroupMaxDelay),
		OnConflict:           r.OnConflict,
		StartAfterLSN:        change.LSN(after),
		CreateSchema:         r.CreateSchema != config.CreateSchemaFalse,
		SequenceSyncInterval: seqSync,
	}
}

func newReplicaRunner(cfg config.ReplicaConfig, opts apply.Options, logger *slog.Logger) *replicaRunner {
	return &replicaRunner{
		cfg:    cfg,
		opts:   opts,
		logger: logger.With("replica", cfg.Name, "source", cfg.Source),
		state:  replicaStarting,
	}
}

// run checks the target when create_schema is true, then applies until
// ctx ends or the applier fails permanently.
func (r *replicaRunner) run(ctx context.Context) {
	a, err := apply.New(r.opts)
	if err != nil {
		r.finish(ctx, err)
		return
	}
	r.mu.Lock()
	r.a = a
	r.mu.Unlock()

	if r.cfg.CreateSchema == config.CreateSchemaTrue {
		if err := r.checkFreshTarget(ctx); err != nil {
			r.finish(ctx, err)
			return
		}
	}
	r.logger.Info("replica starting", "target", r.cfg.RedactedDSN())
	r.finish(ctx, a.Run(ctx))
}

// finish records how the replica stopped.
func (r *replicaRunner) finish(ctx context.Context, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil || ctx.Err() != nil {
		r.state = replicaStopped
		return
	}
	r.state = replicaFailed
	r.err = err
	r.logger.Error("replica stopped; fix the problem and restart its applier", "err", err)
}

// checkFreshTarget makes sure a create_schema: true target is the one
// meant: it holds no table yet, or it holds this source's progress. It
// retries while the target cannot be reached.
func (r *replicaRunner) checkFreshTarget(ctx context.Context) error {
	wait := setupRetryMin
	for {
		err := targetFresh(ctx, r.cfg.DSN, r.cfg.Source)
		var ce *pgconn.ConnectError
		if err == nil || ctx.Err() != nil || !errors.As(err, &ce) {
			return err
		}
		r.mu.Lock()
		r.err = err
		r.mu.Unlock()
		delay := wait/2 + rand.N(wait/2)
		r.logger.Warn("target unreachable, retrying", "err", err, "retry_in", delay.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		wait = min(2*wait, setupRetryMax)
	}
}

// targetFresh returns nil when the target dsn holds no table outside the
// system schemas and pgtide's, or holds the apply progress of source.
func targetFresh(ctx context.Context, dsn, source string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("check the target: %w", err)
	}
	defer conn.Close(context.Background())

	var table string
	var hasProgress bool
	err = conn.QueryRow(ctx, `SELECT
		coalesce((SELECT format('%I.%I', n.nspname, c.relname)
			FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
			WHERE c.relkind IN ('r', 'p')
				AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgtide')
				AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
			ORDER BY 1 LIMIT 1), ''),
		pg_catalog.to_regclass('pgtide.apply_progress') IS NOT NULL`).Scan(&table, &hasProgress)
	if err != nil {
		return fmt.Errorf("check the target: %w", err)
	}
	if table == "" {
		return nil
	}
	if hasProgress {
		err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pgtide.apply_progress WHERE source = $1)`,
			source).Scan(&hasProgress)
		if err != nil {
			return fmt.Errorf("check the target: %w", err)
		}
	}
	if hasProgress {
		return nil
	}
	return fmt.Errorf("create_schema is true, but the target already holds tables (%s, ...) and no "+
		"progress of source %q: check that dsn names the right database, empty it, or set "+
		"create_schema to auto to apply onto the tables it has", table, source)
}

// notReady returns nil when the applier follows the log, or why not.
func (r *replicaRunner) notReady() error {
	st := r.status()
	if st.State == replicaApplying {
		return nil
	}
	if st.LastError != "" {
		return fmt.Errorf("replica %s: %s: %s", r.cfg.Name, st.State, st.LastError)
	}
	return fmt.Errorf("replica %s: %s", r.cfg.Name, st.State)
}

// failure returns why the replica stopped, or nil when it did not fail.
func (r *replicaRunner) failure() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state != replicaFailed {
		return nil
	}
	return fmt.Errorf("replica %s: %w", r.cfg.Name, r.err)
}

// applier returns the replica's applier, or nil before it is created.
func (r *replicaRunner) applier() *apply.Applier {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.a
}

// replicaStatus is the state of one replica, for /v1/status.
type replicaStatus struct {
	Name   string `json:"name"`
	Source string `json:"source"`
	DSN    string `json:"dsn"` // password redacted
	State  string `json:"state"`

	// AppliedID is the ID ("<lsn>:<pos>") of the last record applied to
	// the target, and AppliedSeq the log sequence of its message.
	AppliedID     string    `json:"applied_id,omitempty"`
	AppliedSeq    uint64    `json:"applied_seq,omitempty"`
	LastCommit    time.Time `json:"last_commit,omitzero"`
	LagSeconds    float64   `json:"lag_seconds"`
	LagBytes      uint64    `json:"lag_bytes"`
	RowsPerSecond float64   `json:"rows_per_second"`
	LastError     string    `json:"last_error,omitempty"`
}

// status returns the replica's state.
func (r *replicaRunner) status() replicaStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := replicaStatus{
		Name:   r.cfg.Name,
		Source: r.cfg.Source,
		DSN:    r.cfg.RedactedDSN(),
		State:  r.state,
	}
	if r.err != nil {
		st.LastError = r.err.Error()
	}
	if r.a == nil {
		return st
	}
	as := r.a.Status()
	if as.Applied != (change.ID{}) {
		st.AppliedID = as.Applied.String()
	}
	st.AppliedSeq = as.AppliedSeq
	if !as.LastCommit.IsZero() {
		st.LastCommit = as.LastCommit.UTC()
	}
	st.LagSeconds = as.LagSeconds
	st.LagBytes = as.LagBytes
	st.RowsPerSecond = as.RowsPerSecond
	if st.LastError == "" {
		st.LastError = as.LastError
	}
	if r.state == replicaStarting {
		switch {
		case r.a.Ready():
			st.State = replicaApplying
		case as.LastError != "":
			st.State = replicaRetrying
		}
	}
	return st
}

// selectReplicas returns the configured replicas named in names, or all
// of them when names is empty.
func selectReplicas(cfg config.Config, names []string) ([]config.ReplicaConfig, error) {
	if len(cfg.Replicas) == 0 {
		return nil, usageErrorf("no replica configured: list replicas in the config file " +
			"(replicas:, see docs/configuration.md), or run pgtide up --source DSN --replica DSN")
	}
	if len(names) == 0 {
		return cfg.Replicas, nil
	}
	var out []config.ReplicaConfig
	for _, n := range names {
		r, ok := cfg.Replica(n)
		if !ok {
			return nil, usageErrorf("--replica %q: no such replica in the configuration (configured: %s)",
				n, strings.Join(replicaNames(cfg.Replicas), ", "))
		}
		out = append(out, r)
	}
	return out, nil
}

func replicaNames(replicas []config.ReplicaConfig) []string {
	names := make([]string, len(replicas))
	for i, r := range replicas {
		names[i] = r.Name
	}
	return names
}

// setReplicaDSN applies `up --replica DSN`: it adds a replica of the only
// source, named after the target's database, with every default.
func setReplicaDSN(cfg *config.Config, dsn string) error {
	if len(cfg.Sources) != 1 {
		return usageErrorf("--replica: %d sources are configured, and --replica follows the only one: "+
			"list replicas in the config file instead (replicas:, see docs/configuration.md)",
			len(cfg.Sources))
	}
	name, err := config.SourceNameFromDSN(dsn)
	if err != nil {
		return usageErrorf("--replica: cannot name the replica (%v): list it in the config file", err)
	}
	if _, taken := cfg.Replica(name); taken {
		return usageErrorf("--replica: the configuration already has a replica named %q", name)
	}
	cfg.Replicas = append(cfg.Replicas, config.ReplicaConfig{Name: name, Source: cfg.Sources[0].Name, DSN: dsn})
	return nil
}
