package config

import (
	"time"
)

// Default values, as applied by [Config.ApplyDefaults].
const (
	DefaultDataDir           = "./pgtide-data"
	DefaultLogLevel          = "info"
	DefaultLogFormat         = "text"
	DefaultAdminListen       = "127.0.0.1:7070"
	DefaultEmbeddedListen    = "127.0.0.1:7422"
	DefaultSyncInterval      = Duration(time.Second)
	DefaultMaxPayload        = 8 * MiB
	DefaultReplicas          = 1
	DefaultSchema            = "public"
	DefaultKeyless           = KeylessSkip
	DefaultHeartbeatInterval = Duration(10 * time.Second)
	DefaultMaxRetainedWAL    = 16 * GiB
	DefaultStatusInterval    = Duration(time.Second)
	DefaultRetentionMaxAge   = Duration(168 * time.Hour)
	DefaultSnapshot          = SnapshotInitial
	DefaultSnapshotWorkers   = 2
	DefaultSnapshotChunkRows = 250000
)

// Off is the value of a listen address that disables the listener.
const Off = "off"

// Values of [SourceConfig.Keyless].
const (
	// KeylessSkip publishes only INSERT and TRUNCATE for tables that have
	// neither a primary key nor a replica identity index, and warns.
	KeylessSkip = "skip"
	// KeylessFull sets REPLICA IDENTITY FULL on such tables, so that their
	// updates and deletes carry the whole old row.
	KeylessFull = "full"
)

// The values of [SourceConfig.Snapshot].
const (
	// SnapshotInitial copies the rows that exist when capture first
	// creates the source's slot into the log, as read records, before the
	// first streamed change.
	SnapshotInitial = "initial"
	// SnapshotOff starts at the slot's position without copying existing
	// rows.
	SnapshotOff = "off"
)

// Config is the whole pgtide configuration. The zero value is not valid;
// start from [Default], [Parse] or [Load].
//
// A Config is a plain value: it is safe for concurrent reads, and a caller
// that changes it must not share it with readers meanwhile.
//
// ApplyDefaults treats a zero field as unset and fills in its default,
// except when the file gave the key explicitly: then a zero stays zero
// ("off", "0"), and [Config.Validate] judges it.
type Config struct {
	// DataDir holds the embedded NATS file store and other local state.
	// Default "./pgtide-data".
	DataDir string `yaml:"data_dir"`

	// Log configures the process logger.
	Log LogConfig `yaml:"log"`

	// Admin configures the admin HTTP server (health, metrics, console).
	Admin AdminConfig `yaml:"admin"`

	// NATS configures the change log: an embedded NATS JetStream server, or
	// an external cluster.
	NATS NATSConfig `yaml:"nats"`

	// Sources lists the PostgreSQL databases to capture. Validate accepts
	// an empty list; a role that needs a source checks for one itself.
	Sources []SourceConfig `yaml:"sources"`

	// Gateway configures the stream gateway that serves the change log
	// to applications.
	Gateway GatewayConfig `yaml:"gateway"`

	// Proxy configures the offline-database proxy, which serves the
	// Datasets.
	Proxy ProxyConfig `yaml:"proxy"`

	// Replicas are the target databases kept in step with a source by an
	// applier (`pgtide apply`, `pgtide up`). Default none.
	Replicas []ReplicaConfig `yaml:"replicas"`

	// Datasets are the offline datasets by name: 1 to 63 letters, digits
	// and '_', not starting with a digit. Clients of the proxy connect to
	// a dataset's name as their database. Default none.
	Datasets map[string]DatasetConfig `yaml:"datasets"`

	// given holds the paths of keys given explicitly in the file, outside
	// Sources (see ApplyDefaults).
	given keySet
}

// LogConfig configures logging.
type LogConfig struct {
	// Level is the minimum level logged: "debug", "info", "warn" or
	// "error". Default "info".
	Level string `yaml:"level"`

	// Format is "text" (key=value lines) or "json". Default "text".
	Format string `yaml:"format"`
}

// AdminConfig configures the admin HTTP server.
type AdminConfig struct {
	// Listen is the host:port the admin server listens on; ":7070" listens
	// on every interface, port 0 picks a free port. "off" disables the
	// server; an empty value is not allowed. Default "127.0.0.1:7070".
	Listen string `yaml:"listen"`
}

// NATSConfig configures the change log.
type NATSConfig struct {
	// URL selects an external NATS JetStream cluster: one server URL or a
	// comma-separated list, each with scheme nats, tls, ws or wss. Empty
	// (the default) runs the embedded server configured by Embedded.
	URL string `yaml:"url"`

	// CredsFile is the path of a NATS credentials file (JWT and nkey seed)
	// for the external cluster. Empty means no credentials. Only valid with
	// URL.
	CredsFile string `yaml:"creds_file"`

	// Embedded configures the embedded server, used when URL is empty.
	Embedded EmbeddedNATS `yaml:"embedded"`

	// Replicas is the number of replicas of each stream on an external
	// cluster, 1 to 5. Default 1; the embedded server allows only 1.
	Replicas int `yaml:"replicas"`

	// ConfirmDelay is how long after the log acknowledges a message the
	// replication slot may confirm it to the source. The embedded server
	// acknowledges before its periodic fsync, so the default there is two
	// sync intervals (2s with the default Embedded.SyncInterval); with an
	// external cluster the default is 0 (confirm at once). An explicit 0
	// confirms at once in both cases.
	ConfirmDelay Duration `yaml:"confirm_delay"`
}

// EmbeddedNATS configures the embedded NATS JetStream server.
type EmbeddedNATS struct {
	// Listen is the host:port of the client listener that lets other pgtide
	// processes reach the embedded server. "off" keeps it in-process only.
	// Default "127.0.0.1:7422".
	Listen string `yaml:"listen"`

	// SyncInterval is how often the file store is flushed to disk (fsync).
	// Must be more than 0 and at most 2m. Default 1s.
	SyncInterval Duration `yaml:"sync_interval"`

	// MaxPayload is the largest message the server accepts, 1MiB to 64MiB.
	// Default 8MiB.
	MaxPayload ByteSize `yaml:"max_payload"`
}

// SourceConfig configures the capture of one PostgreSQL database.
type SourceConfig struct {
	// Name identifies the source in subjects, metrics and logs: 1 to 32
	// lowercase letters, digits, '_' or '-', starting with a letter,
	// unique among sources. Required.
	Name string `yaml:"name"`

	// DSN is the connection string of the source database, as a URL
	// ("postgres://user:password@host:5432/db") or keyword/value pairs
	// ("host=... dbname=..."). Required. Use [SourceConfig.RedactedDSN] to
	// show it.
	DSN string `yaml:"dsn"`

	// Schemas lists the schemas to capture, by exact name. Default
	// ["public"].
	Schemas []string `yaml:"schemas"`

	// Tables restricts capture to tables matching one of these patterns:
	// "schema.table" or a bare "table" (meaning that table in any schema of
	// Schemas), where '*' matches any run of characters and '?' any one
	// character. Empty (the default) captures every table of Schemas.
	Tables []string `yaml:"tables"`

	// ExcludeTables removes tables matching one of these patterns (same
	// syntax as Tables) from capture. Default none.
	ExcludeTables []string `yaml:"exclude_tables"`

	// Slot is the name of the logical replication slot: 1 to 63 lowercase
	// letters, digits or '_'. Default "pgtide_" followed by Name with '-'
	// replaced by '_'.
	Slot string `yaml:"slot"`

	// Publication is the name of the publication: 1 to 50 lowercase
	// letters, digits or '_', not starting with a digit. Default like Slot.
	Publication string `yaml:"publication"`

	// Binary asks pgoutput for the binary representation of values where a
	// type supports it. Default false (text).
	Binary bool `yaml:"binary"`

	// Keyless says what to do with tables that have neither a primary key
	// nor a replica identity index: [KeylessSkip] (the default) publishes
	// only their INSERT and TRUNCATE and logs a warning; [KeylessFull]
	// sets REPLICA IDENTITY FULL on them.
	Keyless string `yaml:"keyless"`

	// DDL captures schema changes through an event trigger. Nil (the key
	// left out) means true; use [SourceConfig.DDLEnabled] to read it.
	DDL *bool `yaml:"ddl"`

	// HeartbeatInterval is how often capture writes a heartbeat so that the
	// slot advances while the captured tables are idle. 0 ("off") disables
	// heartbeats; otherwise at least 1s. Default 10s.
	HeartbeatInterval Duration `yaml:"heartbeat_interval"`

	// MaxRetainedWAL raises an alert when the slot holds back more WAL than
	// this on the source. 0 means no alert. Default 16GiB.
	MaxRetainedWAL ByteSize `yaml:"max_retained_wal"`

	// StatusInterval is how often capture sends a standby status update to
	// the source. More than 0 and at most 30s, well under the server's
	// wal_sender_timeout (60s by default). Default 1s.
	StatusInterval Duration `yaml:"status_interval"`

	// Retention bounds how much change history the log keeps.
	Retention Retention `yaml:"retention"`

	// Snapshot selects the initial snapshot of existing rows:
	// [SnapshotInitial] (the default) or [SnapshotOff]. It takes effect
	// when capture creates the slot.
	Snapshot string `yaml:"snapshot"`

	// SnapshotTables are globs, like Tables, limiting which captured
	// tables the initial snapshot copies. Empty (the default) copies all.
	SnapshotTables []string `yaml:"snapshot_tables"`

	// SnapshotWorkers is the number of connections reading in parallel,
	// 1 to 32. Default 2.
	SnapshotWorkers int `yaml:"snapshot_workers"`

	// SnapshotChunkRows is the estimated number of rows per chunk, the
	// unit of parallel work and of resumption; at least 1000. Default
	// 250000.
	SnapshotChunkRows int `yaml:"snapshot_chunk_rows"`

	// SnapshotRowsPerSecond throttles the snapshot's reads from the
	// source; 0 (the default) is unlimited.
	SnapshotRowsPerSecond int `yaml:"snapshot_rows_per_second"`

	// given holds the keys of this source given explicitly in the file,
	// relative to the source ("retention.max_age").
	given keySet
}

// Retention bounds the change history kept in the log for one source; the
// oldest changes go first when a bound is reached.
type Retention struct {
	// MaxAge is how long changes are kept. 0 keeps them forever. Default
	// 168h (7 days).
	MaxAge Duration `yaml:"max_age"`

	// MaxBytes caps the size of the stored history. 0 (the default) means
	// no cap.
	MaxBytes ByteSize `yaml:"max_bytes"`
}

// keySet records which keys a file gave explicitly.
type keySet map[string]bool

// Default returns a configuration with every default applied and no
// sources. It is valid.
func Default() Config {
	var c Config
	c.ApplyDefaults()
	return c
}

// SetNATSURL points the log at an external NATS deployment after the
// defaults were applied (the --nats-url flag). A confirm delay derived
// from the embedded server's sync interval no longer applies and is
// reset to 0, unless the file gave one.
func (c *Config) SetNATSURL(url string) {
	c.NATS.URL = url
	if c.NATS.External() && !c.given["nats.confirm_delay"] {
		c.NATS.ConfirmDelay = 0
	}
}

// Source returns the source with the given name and whether there is one.
func (c Config) Source(name string) (SourceConfig, bool) {
	for _, s := range c.Sources {
		if s.Name == name {
			return s, true
		}
	}
	return SourceConfig{}, false
}

// External reports whether the change log lives on an external NATS
// cluster (URL is set) rather than in the embedded server.
func (n NATSConfig) External() bool {
	return n.URL != ""
}

// DDLEnabled reports whether DDL capture is on: true unless DDL is set to
// false.
func (s SourceConfig) DDLEnabled() bool {
	return s.DDL == nil || *s.DDL
}
