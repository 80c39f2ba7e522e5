package config

import (
	"time"
)

// Defaults of the offline-database keys, as applied by
// [Config.ApplyDefaults].
const (
	DefaultProxyListen      = "127.0.0.1:6433"
	DefaultProxyRelay       = "auto"
	DefaultInstanceClone    = "auto"
	DefaultBootTimeout      = Duration(60 * time.Second)
	DefaultHandshakeTimeout = Duration(15 * time.Second)
	DefaultMaxConnections   = 200
	DefaultMaxInstances     = 8
	DefaultIdleTimeout      = Duration(5 * time.Minute)
	DefaultDatasetKeep      = 3
	DefaultDatasetSchedule  = Duration(24 * time.Hour)
	DefaultDatasetSuperuser = "postgres"
	DefaultDatasetRole      = "pgtide_analyst"

	// MinInstanceMemory is the smallest proxy.instances.memory: below
	// it, PostgreSQL hardly starts.
	MinInstanceMemory = 64 * MiB
)

// The masking methods of [MaskRule.Method].
const (
	MaskHash   = "hash"   // md5 of a salt and the value, as hex text
	MaskSHA256 = "sha256" // sha256 of a salt and the value, as hex text
	MaskFixed  = "fixed"  // the rule's Value
	MaskNull   = "null"   // NULL
	MaskEmail  = "email"  // a fake local part at the original domain
)

// ProxyConfig configures the offline-database proxy: a PostgreSQL
// wire-protocol server that boots masked instances from snapshots of the
// [DatasetConfig]s when clients connect.
type ProxyConfig struct {
	// Listen is the host:port clients connect to; port 0 picks a free
	// port. "off" disables the proxy. It runs (in `pgtide up`) only when
	// at least one dataset is configured. Default "127.0.0.1:6433".
	Listen string `yaml:"listen"`

	// TLSCert and TLSKey are the paths of a PEM certificate and its key,
	// given together. With them, clients that ask for TLS get it; without
	// them TLS requests are refused and clients fall back to plain TCP
	// (or fail, with sslmode=require). Default none.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`

	// Users are the proxy's own users, name to secret: a SCRAM-SHA-256
	// verifier in PostgreSQL's text form ("SCRAM-SHA-256$4096:..."), or a
	// plain password, which the proxy hashes when it loads it. They are
	// independent of the roles inside instances. Default none, which lets
	// nobody in.
	//
	// A value may instead reference the secret: "env:VAR" (an environment
	// variable) or "file:PATH" (a file, without its trailing line
	// breaks). [Load] replaces references by the secrets they name;
	// [Parse] leaves them as they are.
	Users map[string]string `yaml:"users"`

	// userSources maps the users whose secret Load read through a
	// reference to where it came from, for messages.
	userSources map[string]string

	// BootTimeout is how long a client waits for an instance to boot
	// before it gets an error. More than 0, at most 1h. Default 60s.
	BootTimeout Duration `yaml:"boot_timeout"`

	// HandshakeTimeout bounds TLS, startup and authentication of a
	// client. 1s to 5m. Default 15s.
	HandshakeTimeout Duration `yaml:"handshake_timeout"`

	// MaxConnections caps client connections, 1 to 100000. Default 200.
	MaxConnections int `yaml:"max_connections"`

	// MaxUserConnections caps the connections of one user. 0 (the
	// default) means no cap beyond MaxConnections.
	MaxUserConnections int `yaml:"max_user_connections"`

	// Audit logs every statement clients send (user, dataset, text).
	// Default false: bytes are relayed without being parsed.
	Audit bool `yaml:"audit"`

	// Relay is where bytes move between clients and instances after the
	// handshake: "kernel" (an eBPF sockmap program forwards them; needs
	// root or CAP_BPF+CAP_NET_ADMIN on Linux 5.15+), "process" (the
	// proxy copies them) or "auto" (kernel when it loads, else process).
	// Audited and TLS sessions always move in the process. Default
	// "auto".
	Relay string `yaml:"relay"`

	// Instances limits the PostgreSQL instances the proxy boots.
	Instances InstancesConfig `yaml:"instances"`
}

// InstancesConfig limits the instances the proxy boots from snapshots.
type InstancesConfig struct {
	// Max caps the instances running at once, 1 to 1000; at the cap the
	// least recently used idle one is stopped to make room. Default 8.
	Max int `yaml:"max"`

	// MaxPerUser caps the instances one user holds connections to. 0
	// (the default) means no cap beyond Max.
	MaxPerUser int `yaml:"max_per_user"`

	// IdleTimeout stops an instance this long after its last connection
	// ended; at least 1s. Default 5m.
	IdleTimeout Duration `yaml:"idle_timeout"`

	// Private gives each user instances of their own instead of one
	// shared instance per dataset and snapshot. Default false.
	Private bool `yaml:"private"`

	// Warm keeps instances booted ahead of demand from the newest ready
	// snapshot of every dataset, 0 to 32 and at most Max: shared, the
	// dataset's instance stays up while idle; private, Warm unowned
	// spares per dataset that first connections claim. They count
	// against Max and are stopped first to make room. Default 0 (off).
	Warm int `yaml:"warm"`

	// Memory limits the memory of each instance (postmaster and
	// backends together, in a cgroup of its own, without swap): a
	// backend that goes over it is killed by the kernel and the instance
	// restarts its other sessions. Unless Settings sets shared_buffers,
	// shared_buffers becomes a quarter of it. At least 64MiB; 0 (the
	// default) means no limit. A limit needs a usable cgroup memory
	// controller, else the proxy does not start.
	Memory ByteSize `yaml:"memory"`

	// Clone is how an instance's data directory is made from its
	// snapshot: "overlay" (an overlay mount with the snapshot as its
	// read-only lower layer: no copy, files copied up when first
	// written; needs root or CAP_SYS_ADMIN), "copy" (cp --reflink=auto),
	// or "auto" (overlay when the mount works, else copy). Default
	// "auto".
	Clone string `yaml:"clone"`

	// Settings are PostgreSQL server parameters for every instance, such
	// as shared_buffers or work_mem. Default none (the instances'
	// built-in settings: durability off, small memory).
	Settings map[string]string `yaml:"settings"`
}

// DatasetConfig is one offline dataset: a PostgreSQL database that
// pgtide takes masked physical snapshots of, and that clients of the proxy
// reach by its name.
type DatasetConfig struct {
	// Source is the connection string of the server to copy, usually the
	// live replica apply keeps. Its user needs the REPLICATION attribute
	// and pg_hba.conf must allow it a replication connection. Required.
	Source string `yaml:"source"`

	// Live is the connection string used for "<dataset>@live" (the live
	// server itself, read-only by default). Give it a read-only role.
	// Default: Source.
	Live string `yaml:"live"`

	// Database is the database inside the copy that clients reach.
	// Default: the dataset's name.
	Database string `yaml:"database"`

	// Superuser is a superuser role of the copied cluster, used for
	// masking and startup scripts. Default "postgres".
	Superuser string `yaml:"superuser"`

	// Role is the role clients are served as inside instances: created
	// at snapshot time without superuser rights, with pg_read_all_data
	// and pg_write_all_data. Default "pgtide_analyst".
	Role string `yaml:"role"`

	// Keep is how many ready snapshots pruning keeps, 1 to 1000.
	// Default 3.
	Keep int `yaml:"keep"`

	// Schedule is how often the proxy role takes a new snapshot and
	// prunes old ones. 0 ("off") means only by hand (`pgtide snapshot
	// create`); otherwise at least 1m. Default 24h.
	Schedule Duration `yaml:"schedule"`

	// Rules mask columns of Database when a snapshot is taken, in order.
	Rules []MaskRule `yaml:"rules"`

	// Scripts are SQL scripts run in Database after the rules, when a
	// snapshot is taken, each in one transaction. With any script the
	// whole database is rewritten afterwards.
	Scripts []string `yaml:"scripts"`

	// StartupScripts are SQL scripts run as Superuser in every new
	// instance of the dataset, before clients reach it.
	StartupScripts []string `yaml:"startup_scripts"`

	// Salt keys the hash and sha256 methods. Default: a random salt per
	// snapshot (equal values still hash equal within one snapshot).
	Salt string `yaml:"salt"`
}

// MaskRule masks one column of a dataset when a snapshot is taken.
type MaskRule struct {
	// Table is "schema.table" or "table" (schema public). Required.
	Table string `yaml:"table"`

	// Column is the column to mask. Required.
	Column string `yaml:"column"`

	// Method is [MaskHash], [MaskSHA256], [MaskFixed], [MaskNull] or
	// [MaskEmail]. Required.
	Method string `yaml:"method"`

	// Value is the replacement of the fixed method, cast to the column's
	// type. Only with fixed.
	Value string `yaml:"value"`

	// Key is a column whose value makes the local part of the email
	// method ("user<key>@domain"); empty means a hash of the address.
	// Only with email.
	Key string `yaml:"key"`
}

// ProxyEnabled reports whether the proxy role runs: its listen address is
// not "off" and at least one dataset is configured.
func (c Config) ProxyEnabled() bool {
	return c.Proxy.Listen != Off && len(c.Datasets) > 0
}

// RedactedSource returns Source with its password replaced by "xxxxx".
func (d DatasetConfig) RedactedSource() string {
	r, _, _ := redactDSN(d.Source)
	return r
}
