package capture

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/pgtide/pgtide/internal/changelog"
)

// Options configure capture of one source. Zero durations and sizes take
// the defaults named on each field.
type Options struct {
	// Source is the source's name; it names the log stream and subjects.
	Source string
	// DSN is the connection string of the source database.
	DSN string
	// Schemas are the schemas whose tables are captured ("public" if
	// empty).
	Schemas []string
	// Tables and ExcludeTables are globs ('*' and '?') over "schema.table"
	// or a bare table name meaning any selected schema. Empty Tables
	// selects every table of Schemas.
	Tables, ExcludeTables []string
	// Slot and Publication name the replication slot and the publication
	// (the insert-and-truncate one for keyless tables adds "_keyless").
	Slot, Publication string
	// Binary asks pgoutput for binary values (PostgreSQL 14 and later).
	Binary bool
	// Keyless is "skip" (tables without a replica identity publish only
	// INSERT and TRUNCATE) or "full" (pgtide sets REPLICA IDENTITY FULL).
	Keyless string
	// DDL turns on DDL capture through the event trigger.
	DDL bool
	// HeartbeatInterval is how often capture writes a WAL message into the
	// source so the slot advances while captured tables are idle (10s;
	// negative disables).
	HeartbeatInterval time.Duration
	// StatusInterval is how often the slot's position is reported to the
	// server (1s).
	StatusInterval time.Duration
	// MaxRetainedWAL raises an alert when the slot holds back more WAL than
	// this many bytes (0: no alert).
	MaxRetainedWAL int64
	// ConfirmDelay is how long an acknowledged log write must age before
	// the slot may move past it: the log's fsync interval, so a machine
	// crash cannot lose what the slot released (0: confirm at once).
	ConfirmDelay time.Duration
	// BatchRows and BatchBytes bound one log message (256 rows, 128 KiB).
	BatchRows, BatchBytes int
	// MaxMessageBytes is the log's largest accepted message (8 MiB).
	MaxMessageBytes int
	// MaxPending bounds unacknowledged log writes (256 messages). With
	// BatchBytes it bounds the memory capture holds for the log, whatever
	// the size of a source transaction.
	MaxPending int
	// Snapshot configures the initial snapshot.
	Snapshot SnapshotOptions
	// Log is the change log to write to. Required for [Capture.Run].
	Log *changelog.Log
	// Retention bounds the source's stream.
	Retention changelog.Retention
	// Logger receives capture's logs (discarded when nil).
	Logger *slog.Logger
	// Metrics receives capture's metrics (none when nil).
	Metrics *Metrics
}

func (o *Options) setDefaults() {
	if len(o.Schemas) == 0 {
		o.Schemas = []string{"public"}
	}
	if o.Keyless == "" {
		o.Keyless = "skip"
	}
	if o.HeartbeatInterval == 0 {
		o.HeartbeatInterval = 10 * time.Second
	}
	if o.StatusInterval <= 0 {
		o.StatusInterval = time.Second
	}
	if o.BatchRows <= 0 {
		o.BatchRows = 256
	}
	if o.BatchBytes <= 0 {
		o.BatchBytes = 128 << 10
	}
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = 8 << 20
	}
	if o.MaxPending <= 0 {
		o.MaxPending = 256
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Snapshot.setDefaults()
}

func (o *Options) validate() error {
	o.setDefaults()
	var errs []error
	if o.Source == "" {
		errs = append(errs, errors.New("capture: source name is empty"))
	}
	if o.DSN == "" {
		errs = append(errs, fmt.Errorf("capture of %q: source DSN is empty", o.Source))
	}
	if !plainName(o.Slot) || !plainName(o.Publication) {
		errs = append(errs, fmt.Errorf("capture of %q: slot %q and publication %q must be lowercase "+
			"letters, digits and '_'", o.Source, o.Slot, o.Publication))
	}
	if o.Keyless != "skip" && o.Keyless != "full" {
		errs = append(errs, fmt.Errorf("capture of %q: keyless is %q, want \"skip\" or \"full\"", o.Source, o.Keyless))
	}
	return errors.Join(errs...)
}

// plainName reports whether s is a non-empty identifier of [a-z0-9_] that
// needs no quoting in replication commands.
func plainName(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func (o *Options) keylessPublication() string { return o.Publication + "_keyless" }

// likePatterns turns the table globs into LIKE patterns over
// "schema.table", expanding bare names over every selected schema.
func (o *Options) likePatterns() (include, exclude []string) {
	return o.expandGlobs(o.Tables), o.expandGlobs(o.ExcludeTables)
}

func (o *Options) expandGlobs(globs []string) []string {
	out := []string{}
	for _, g := range globs {
		if strings.Contains(g, ".") {
			out = append(out, globToLike(g))
			continue
		}
		for _, s := range o.Schemas {
			out = append(out, likeEscape(s)+"."+globToLike(g))
		}
	}
	return out
}

// globToLike converts '*' and '?' to LIKE's '%' and '_', escaping LIKE's
// own metacharacters.
func globToLike(g string) string {
	var b strings.Builder
	for _, c := range g {
		switch c {
		case '*':
			b.WriteByte('%')
		case '?':
			b.WriteByte('_')
		case '%', '_', '\\':
			b.WriteByte('\\')
			b.WriteRune(c)
		default:
			b.WriteRune(c)
		}
	}
	return b.String()
}

func likeEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(s)
}
