package apply

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/pgtide/pgtide/internal/change"
	"github.com/pgtide/pgtide/internal/changelog"
)

// The divergence policies of [Options.OnConflict].
const (
	// PolicyStop stops the applier at the first divergence, with an error
	// naming the table, key and record ID. It is the default.
	PolicyStop = "stop"
	// PolicyLog counts and logs the divergence and goes on: a conflicting
	// insert is dropped, an update or delete that hits no row does nothing.
	PolicyLog = "log"
	// PolicyUpsert makes the replica follow the source: a conflicting insert
	// overwrites the row, an update that hits no row inserts it (when the
	// record holds the whole row). Each case is counted and logged.
	PolicyUpsert = "upsert"
)

// Defaults of the zero fields of [Options].
const (
	DefaultGroupMaxTx    = 1000
	DefaultGroupMaxRows  = 20000
	DefaultGroupMaxDelay = 200 * time.Millisecond
	DefaultPipeline      = 256
	DefaultReadBatch     = 256
)

// Options configure the applier of one source. Zero sizes and durations
// take the default named on each field.
type Options struct {
	// Source is the source's name: it selects the log stream and keys the
	// progress row in the target. Required.
	Source string

	// Name names this replica in metrics and logs; several replicas of
	// one source in a process need distinct names. Empty means Source.
	Name string

	// Log is the change log to read. Required by [Applier.Run]; not
	// needed for [Applier.SyncSequences].
	Log *changelog.Log

	// TargetDSN is the connection string of the target database. The role
	// must be allowed to set session_replication_role (a superuser), so
	// that triggers and foreign keys of the replica behave as with native
	// logical replication. Required.
	TargetDSN string

	// SourceDSN is the connection string of the source database. It is
	// needed only by [Applier.SyncSequences] and by CreateSchema.
	SourceDSN string

	// Logger receives the applier's logs. Nil discards them.
	Logger *slog.Logger

	// Metrics receives the applier's metrics. Nil keeps them unexported.
	Metrics *Metrics

	// GroupMaxTx is the most source transactions applied in one target
	// transaction (1000). A source transaction is never split, so a group
	// always holds at least one whole transaction.
	GroupMaxTx int

	// GroupMaxRows bounds the rows of a group (20000): a group is
	// committed at the first transaction boundary after this many rows.
	GroupMaxRows int

	// GroupMaxDelay bounds how long a group stays open waiting for more
	// source transactions (200ms). A group also commits as soon as the
	// log holds nothing more, so an idle stream is applied at once.
	GroupMaxDelay time.Duration

	// Pipeline is the most statements sent to the target before their
	// results are read (256).
	Pipeline int

	// ReadBatch is the number of log messages pulled at a time (256).
	ReadBatch int

	// OnConflict is the divergence policy: [PolicyStop] (default),
	// [PolicyLog] or [PolicyUpsert].
	OnConflict string

	// StartAfterLSN makes the applier skip every transaction whose commit
	// LSN is at or before it: use it when the target is a physical copy of
	// the source consistent at that LSN. Progress stored in the target
	// takes precedence once it is past this point.
	StartAfterLSN change.LSN

	// CreateSchema, when the target holds no table, first copies the
	// source's schema into it with pg_dump --schema-only and pg_restore
	// (without owners, privileges, publications, subscriptions, the
	// pgtide schema and event triggers). It needs SourceDSN.
	CreateSchema bool

	// PGBinDir is the directory of pg_dump and pg_restore. Empty means
	// the output of pg_config --bindir, then PATH, then the newest
	// /usr/lib/postgresql/<version>/bin.
	PGBinDir string

	// SequenceSyncInterval is how often sequences are brought in step
	// with the source when SourceDSN is set (1m). Negative disables the
	// periodic sync; [Applier.SyncSequences] still works on demand.
	SequenceSyncInterval time.Duration

	// RetryBackoff is the longest wait between restarts after a transient
	// failure (30s).
	RetryBackoff time.Duration
}

func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.GroupMaxTx <= 0 {
		o.GroupMaxTx = DefaultGroupMaxTx
	}
	if o.GroupMaxRows <= 0 {
		o.GroupMaxRows = DefaultGroupMaxRows
	}
	if o.GroupMaxDelay <= 0 {
		o.GroupMaxDelay = DefaultGroupMaxDelay
	}
	if o.Pipeline <= 0 {
		o.Pipeline = DefaultPipeline
	}
	if o.ReadBatch <= 0 {
		o.ReadBatch = DefaultReadBatch
	}
	if o.OnConflict == "" {
		o.OnConflict = PolicyStop
	}
	if o.SequenceSyncInterval == 0 {
		o.SequenceSyncInterval = time.Minute
	}
	if o.RetryBackoff <= 0 {
		o.RetryBackoff = 30 * time.Second
	}
}

func (o *Options) validate() error {
	var errs []error
	if err := changelog.ValidateSource(o.Source); err != nil {
		errs = append(errs, fmt.Errorf("apply: source: %w", err))
	}
	if o.TargetDSN == "" {
		errs = append(errs, fmt.Errorf("apply of %q: no target DSN given", o.Source))
	}
	switch o.OnConflict {
	case PolicyStop, PolicyLog, PolicyUpsert:
	default:
		errs = append(errs, fmt.Errorf("apply of %q: on_conflict is %q, want %q, %q or %q",
			o.Source, o.OnConflict, PolicyStop, PolicyLog, PolicyUpsert))
	}
	if o.CreateSchema && o.SourceDSN == "" {
		errs = append(errs, fmt.Errorf("apply of %q: creating the schema needs the source DSN", o.Source))
	}
	return errors.Join(errs...)
}
