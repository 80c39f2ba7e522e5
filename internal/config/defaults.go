package config

import "strings"

// ApplyDefaults fills every unset field with its default (see the Default
// constants and the field docs). A field is unset when it holds its zero
// value and the configuration file did not give its key: an explicit
// "heartbeat_interval: off" stays zero, an explicit "replicas: 0" stays
// zero and fails [Config.Validate]. Code that builds a Config should set a
// deliberate zero after calling ApplyDefaults.
//
// Derived defaults: a source's Slot and Publication come from its Name
// (left empty when the name is not valid), and NATS.ConfirmDelay from the
// NATS mode and Embedded.SyncInterval, and a dataset's Database from its
// name. ApplyDefaults is idempotent.
func (c *Config) ApplyDefaults() {
	defaultTo(&c.DataDir, DefaultDataDir, c.given["data_dir"])
	defaultTo(&c.Log.Level, DefaultLogLevel, c.given["log.level"])
	defaultTo(&c.Log.Format, DefaultLogFormat, c.given["log.format"])
	defaultTo(&c.Admin.Listen, DefaultAdminListen, c.given["admin.listen"])

	n := &c.NATS
	defaultTo(&n.Replicas, DefaultReplicas, c.given["nats.replicas"])
	defaultTo(&n.Embedded.Listen, DefaultEmbeddedListen, c.given["nats.embedded.listen"])
	defaultTo(&n.Embedded.SyncInterval, DefaultSyncInterval, c.given["nats.embedded.sync_interval"])
	defaultTo(&n.Embedded.MaxPayload, DefaultMaxPayload, c.given["nats.embedded.max_payload"])
	// The embedded server acknowledges a message once it is in the page
	// cache and fsyncs every SyncInterval; waiting two intervals before the
	// slot confirms keeps the source's WAL until the data is on disk.
	if n.ConfirmDelay == 0 && !c.given["nats.confirm_delay"] && !n.External() {
		n.ConfirmDelay = 2 * n.Embedded.SyncInterval
	}

	for i := range c.Sources {
		c.Sources[i].applyDefaults()
	}

	c.applyReplicaDefaults()
	c.applyGatewayDefaults()
	c.applyProxyDefaults()
}

func (s *SourceConfig) applyDefaults() {
	if s.Schemas == nil && !s.given["schemas"] {
		s.Schemas = []string{DefaultSchema}
	}
	if validSourceName(s.Name) {
		defaultTo(&s.Slot, defaultObjectName(s.Name), s.given["slot"])
		defaultTo(&s.Publication, defaultObjectName(s.Name), s.given["publication"])
	}
	defaultTo(&s.Keyless, DefaultKeyless, s.given["keyless"])
	if s.DDL == nil {
		on := true
		s.DDL = &on
	}
	defaultTo(&s.HeartbeatInterval, DefaultHeartbeatInterval, s.given["heartbeat_interval"])
	defaultTo(&s.MaxRetainedWAL, DefaultMaxRetainedWAL, s.given["max_retained_wal"])
	defaultTo(&s.StatusInterval, DefaultStatusInterval, s.given["status_interval"])
	defaultTo(&s.Retention.MaxAge, DefaultRetentionMaxAge, s.given["retention.max_age"])
	defaultTo(&s.Snapshot, DefaultSnapshot, s.given["snapshot"])
	defaultTo(&s.SnapshotWorkers, DefaultSnapshotWorkers, s.given["snapshot_workers"])
	defaultTo(&s.SnapshotChunkRows, DefaultSnapshotChunkRows, s.given["snapshot_chunk_rows"])
}

// defaultObjectName derives the default slot and publication name of a
// source: "pgtide_" and the name with '-' replaced by '_'. For a valid
// source name the result is a valid slot and publication name.
func defaultObjectName(source string) string {
	return "pgtide_" + strings.ReplaceAll(source, "-", "_")
}

func (c *Config) applyProxyDefaults() {
	x := &c.Proxy
	defaultTo(&x.Listen, DefaultProxyListen, c.given["proxy.listen"])
	defaultTo(&x.Relay, DefaultProxyRelay, c.given["proxy.relay"])
	defaultTo(&x.BootTimeout, DefaultBootTimeout, c.given["proxy.boot_timeout"])
	defaultTo(&x.HandshakeTimeout, DefaultHandshakeTimeout, c.given["proxy.handshake_timeout"])
	defaultTo(&x.MaxConnections, DefaultMaxConnections, c.given["proxy.max_connections"])
	defaultTo(&x.Instances.Max, DefaultMaxInstances, c.given["proxy.instances.max"])
	defaultTo(&x.Instances.IdleTimeout, DefaultIdleTimeout, c.given["proxy.instances.idle_timeout"])
	defaultTo(&x.Instances.Clone, DefaultInstanceClone, c.given["proxy.instances.clone"])

	for name, d := range c.Datasets {
		given := func(key string) bool { return c.given["datasets."+name+"."+key] }
		defaultTo(&d.Database, name, given("database"))
		defaultTo(&d.Superuser, DefaultDatasetSuperuser, given("superuser"))
		defaultTo(&d.Role, DefaultDatasetRole, given("role"))
		defaultTo(&d.Keep, DefaultDatasetKeep, given("keep"))
		defaultTo(&d.Schedule, DefaultDatasetSchedule, given("schedule"))
		c.Datasets[name] = d
	}
}

// defaultTo sets *v to def when it is the zero value and its key was not
// given explicitly (an explicit zero, such as "off", stays).
func defaultTo[T comparable](v *T, def T, given bool) {
	var zero T
	if *v == zero && !given {
		*v = def
	}
}
