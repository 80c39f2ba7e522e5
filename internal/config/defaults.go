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
	if c.DataDir == "" && !c.given["data_dir"] {
		c.DataDir = DefaultDataDir
	}
	if c.Log.Level == "" && !c.given["log.level"] {
		c.Log.Level = DefaultLogLevel
	}
	if c.Log.Format == "" && !c.given["log.format"] {
		c.Log.Format = DefaultLogFormat
	}
	if c.Admin.Listen == "" && !c.given["admin.listen"] {
		c.Admin.Listen = DefaultAdminListen
	}

	n := &c.NATS
	if n.Replicas == 0 && !c.given["nats.replicas"] {
		n.Replicas = DefaultReplicas
	}
	if n.Embedded.Listen == "" && !c.given["nats.embedded.listen"] {
		n.Embedded.Listen = DefaultEmbeddedListen
	}
	if n.Embedded.SyncInterval == 0 && !c.given["nats.embedded.sync_interval"] {
		n.Embedded.SyncInterval = DefaultSyncInterval
	}
	if n.Embedded.MaxPayload == 0 && !c.given["nats.embedded.max_payload"] {
		n.Embedded.MaxPayload = DefaultMaxPayload
	}
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
		if s.Slot == "" && !s.given["slot"] {
			s.Slot = defaultObjectName(s.Name)
		}
		if s.Publication == "" && !s.given["publication"] {
			s.Publication = defaultObjectName(s.Name)
		}
	}
	if s.Keyless == "" && !s.given["keyless"] {
		s.Keyless = DefaultKeyless
	}
	if s.DDL == nil {
		on := true
		s.DDL = &on
	}
	if s.HeartbeatInterval == 0 && !s.given["heartbeat_interval"] {
		s.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if s.MaxRetainedWAL == 0 && !s.given["max_retained_wal"] {
		s.MaxRetainedWAL = DefaultMaxRetainedWAL
	}
	if s.StatusInterval == 0 && !s.given["status_interval"] {
		s.StatusInterval = DefaultStatusInterval
	}
	if s.Retention.MaxAge == 0 && !s.given["retention.max_age"] {
		s.Retention.MaxAge = DefaultRetentionMaxAge
	}
	if s.Snapshot == "" && !s.given["snapshot"] {
		s.Snapshot = DefaultSnapshot
	}
	if s.SnapshotWorkers == 0 && !s.given["snapshot_workers"] {
		s.SnapshotWorkers = DefaultSnapshotWorkers
	}
	if s.SnapshotChunkRows == 0 && !s.given["snapshot_chunk_rows"] {
		s.SnapshotChunkRows = DefaultSnapshotChunkRows
	}
}

// defaultObjectName derives the default slot and publication name of a
// source: "pgtide_" and the name with '-' replaced by '_'. For a valid
// source name the result is a valid slot and publication name.
func defaultObjectName(source string) string {
	return "pgtide_" + strings.ReplaceAll(source, "-", "_")
}

func (c *Config) applyProxyDefaults() {
	x := &c.Proxy
	if x.Listen == "" && !c.given["proxy.listen"] {
		x.Listen = DefaultProxyListen
	}
	if x.BootTimeout == 0 && !c.given["proxy.boot_timeout"] {
		x.BootTimeout = DefaultBootTimeout
	}
	if x.HandshakeTimeout == 0 && !c.given["proxy.handshake_timeout"] {
		x.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if x.MaxConnections == 0 && !c.given["proxy.max_connections"] {
		x.MaxConnections = DefaultMaxConnections
	}
	if x.Instances.Max == 0 && !c.given["proxy.instances.max"] {
		x.Instances.Max = DefaultMaxInstances
	}
	if x.Instances.IdleTimeout == 0 && !c.given["proxy.instances.idle_timeout"] {
		x.Instances.IdleTimeout = DefaultIdleTimeout
	}

	for name, d := range c.Datasets {
		given := func(key string) bool { return c.given["datasets."+name+"."+key] }
		if d.Database == "" && !given("database") {
			d.Database = name
		}
		if d.Superuser == "" && !given("superuser") {
			d.Superuser = DefaultDatasetSuperuser
		}
		if d.Role == "" && !given("role") {
			d.Role = DefaultDatasetRole
		}
		if d.Keep == 0 && !given("keep") {
			d.Keep = DefaultDatasetKeep
		}
		if d.Schedule == 0 && !given("schedule") {
			d.Schedule = DefaultDatasetSchedule
		}
		c.Datasets[name] = d
	}
}
