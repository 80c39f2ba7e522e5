package config

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Defaults of the replica keys, as applied by [Config.ApplyDefaults]. The
// group bounds and the sequence interval equal the apply package's own
// defaults.
const (
	DefaultOnConflict           = OnConflictStop
	DefaultCreateSchema         = CreateSchemaAuto
	DefaultGroupMaxTx           = 1000
	DefaultGroupMaxRows         = 20000
	DefaultGroupMaxDelay        = Duration(200 * time.Millisecond)
	DefaultSequenceSyncInterval = Duration(time.Minute)
)

// The values of [ReplicaConfig.OnConflict].
const (
	// OnConflictStop stops the replica's applier at the first divergence,
	// naming the table, key and LSN.
	OnConflictStop = "stop"
	// OnConflictLog counts and logs a divergence and goes on.
	OnConflictLog = "log"
	// OnConflictUpsert makes the replica follow the source: a conflicting
	// insert overwrites the row, an update of a missing row inserts it.
	OnConflictUpsert = "upsert"
)

// The values of [ReplicaConfig.CreateSchema].
const (
	// CreateSchemaAuto copies the source's schema into the target when the
	// target holds no table, and uses the target's tables otherwise.
	CreateSchemaAuto = "auto"
	// CreateSchemaTrue copies the source's schema into the target, which
	// must then hold no table on the replica's first start.
	CreateSchemaTrue = "true"
	// CreateSchemaFalse never copies the schema: the operator prepares the
	// target's tables.
	CreateSchemaFalse = "false"
)

var (
	onConflictValues   = []string{OnConflictStop, OnConflictLog, OnConflictUpsert}
	createSchemaValues = []string{CreateSchemaAuto, CreateSchemaTrue, CreateSchemaFalse}
)

// ReplicaConfig configures one replica: a target PostgreSQL database that
// an applier keeps in step with a source by applying the source's change
// log.
type ReplicaConfig struct {
	// Name identifies the replica in logs, status and commands
	// (`pgtide apply --replica NAME`): 1 to 32 lowercase letters, digits,
	// '_' or '-', starting with a letter, unique among replicas. Required.
	Name string `yaml:"name"`

	// Source is the name of the configured source whose changes the
	// replica receives. Required.
	Source string `yaml:"source"`

	// DSN is the connection string of the target database. Its role must
	// be a superuser (the applier sets session_replication_role). It must
	// differ from the source's DSN and from every other replica's.
	// Required. Use [ReplicaConfig.RedactedDSN] to show it.
	DSN string `yaml:"dsn"`

	// OnConflict is what a divergence does (an insert whose key exists,
	// an update or delete that hits no row): [OnConflictStop] (the
	// default), [OnConflictLog] or [OnConflictUpsert].
	OnConflict string `yaml:"on_conflict"`

	// CreateSchema says whether the applier first copies the source's
	// schema into the target with pg_dump --schema-only:
	// [CreateSchemaAuto] (the default), [CreateSchemaTrue] or
	// [CreateSchemaFalse].
	CreateSchema string `yaml:"create_schema"`

	// StartAfterLSN, for a target that is a physical copy of the source
	// consistent at that LSN, skips every transaction that committed at
	// or before it ("16/B374D848"). Empty (the default) applies the whole
	// log. Progress stored in the target takes precedence once past it.
	StartAfterLSN string `yaml:"start_after_lsn"`

	// GroupMaxTx is the most source transactions applied in one target
	// transaction, at least 1. Default 1000.
	GroupMaxTx int `yaml:"group_max_tx"`

	// GroupMaxRows ends a target transaction at the first source
	// transaction boundary after this many rows, at least 1. Default 20000.
	GroupMaxRows int `yaml:"group_max_rows"`

	// GroupMaxDelay bounds how long a target transaction stays open
	// waiting for more source transactions; more than 0, at most 1m.
	// Default 200ms.
	GroupMaxDelay Duration `yaml:"group_max_delay"`

	// SequenceSyncInterval is how often the target's sequences are set to
	// the source's values. 0 ("off") disables the periodic sync
	// (`pgtide apply sync-sequences` still works); otherwise at least 1s.
	// Default 1m.
	SequenceSyncInterval Duration `yaml:"sequence_sync_interval"`
}

// Replica returns the replica with the given name and whether there is
// one.
func (c Config) Replica(name string) (ReplicaConfig, bool) {
	for _, r := range c.Replicas {
		if r.Name == name {
			return r, true
		}
	}
	return ReplicaConfig{}, false
}

// RedactedDSN returns r.DSN with its passwords replaced by "xxxxx", for
// logs and messages.
func (r ReplicaConfig) RedactedDSN() string {
	s, _, _ := redactDSN(r.DSN)
	return s
}

// ParseLSN parses the PostgreSQL text form of a WAL position
// ("16/B374D848"): two hexadecimal numbers of at most 32 bits separated by
// '/'.
func ParseLSN(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("%s is not an LSN: write two hex numbers separated by '/', e.g. %q",
			quote(s), "16/B374D848")
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%s is not an LSN: each part is a hex number of at most 8 digits, e.g. %q",
			quote(s), "16/B374D848")
	}
	return h<<32 | l, nil
}

func (c *Config) applyReplicaDefaults() {
	for i := range c.Replicas {
		r := &c.Replicas[i]
		given := func(key string) bool { return c.given[fmt.Sprintf("replicas[%d].%s", i, key)] }
		defaultTo(&r.OnConflict, DefaultOnConflict, given("on_conflict"))
		defaultTo(&r.CreateSchema, DefaultCreateSchema, given("create_schema"))
		defaultTo(&r.GroupMaxTx, DefaultGroupMaxTx, given("group_max_tx"))
		defaultTo(&r.GroupMaxRows, DefaultGroupMaxRows, given("group_max_rows"))
		defaultTo(&r.GroupMaxDelay, DefaultGroupMaxDelay, given("group_max_delay"))
		defaultTo(&r.SequenceSyncInterval, DefaultSequenceSyncInterval, given("sequence_sync_interval"))
	}
}

func (c *Config) validateReplicas(p *problems) {
	names := map[string]int{}
	dsns := map[string]int{}
	for i := range c.Replicas {
		r := &c.Replicas[i]
		path := fmt.Sprintf("replicas[%d]", i)
		c.validateReplica(p, r, path)

		if j, dup := names[r.Name]; dup && r.Name != "" {
			p.add(path+".name", "%q is already the name of replicas[%d]: replica names must be unique",
				r.Name, j)
		} else if !dup {
			names[r.Name] = i
		}
		if j, dup := dsns[r.DSN]; dup && r.DSN != "" {
			p.add(path+".dsn", "is also the dsn of replicas[%d]: one target takes one applier, "+
				"give each replica its own database", j)
		} else if !dup {
			dsns[r.DSN] = i
		}
	}
}

func (c *Config) validateReplica(p *problems, r *ReplicaConfig, path string) {
	at := func(key string) string { return path + "." + key }

	switch {
	case r.Name == "":
		p.add(at("name"), "missing: every replica needs a unique name, e.g. %q", r.suggestedName())
	case !validSourceName(r.Name):
		p.add(at("name"), "%s is not a valid replica name: use lowercase letters, digits, '_' and '-' "+
			"(1-32 chars, starting with a letter), e.g. %q", quote(r.Name), r.suggestedName())
	}

	src, hasSource := c.Source(r.Source)
	switch {
	case r.Source == "" && len(c.Sources) == 1:
		p.add(at("source"), "missing: name the source whose changes this replica receives: %q",
			c.Sources[0].Name)
	case r.Source == "":
		p.add(at("source"), "missing: name the source whose changes this replica receives "+
			"(one of the names under sources)")
	case !hasSource && len(c.Sources) == 0:
		p.add(at("source"), "%s is not a configured source: add it under sources "+
			"(the replica needs its name and its dsn)", quote(r.Source))
	case !hasSource && len(c.Sources) == 1:
		p.add(at("source"), "%s is not a configured source: use %q", quote(r.Source), c.Sources[0].Name)
	case !hasSource:
		p.add(at("source"), "%s is not a configured source: use one of %s",
			quote(r.Source), joinWords(sourceNames(c.Sources), "or"))
	}

	switch {
	case r.DSN == "":
		p.add(at("dsn"), "missing: give the connection string of the target database, e.g. %q",
			"postgres://postgres@replica.example.com:5432/shop")
	case checkDSN(r.DSN) != "":
		p.add(at("dsn"), "%s", checkDSN(r.DSN))
	case hasSource && r.DSN == src.DSN:
		p.add(at("dsn"), "is the dsn of its source %q: a replica must be another database", src.Name)
	}

	if !slices.Contains(onConflictValues, r.OnConflict) {
		p.add(at("on_conflict"), "%s is not a divergence policy: use %q (stop at the first "+
			"divergence), %q (count it and go on) or %q (make the replica follow the source)",
			quote(r.OnConflict), OnConflictStop, OnConflictLog, OnConflictUpsert)
	}
	if !slices.Contains(createSchemaValues, r.CreateSchema) {
		p.add(at("create_schema"), "%s is not a create_schema mode: use %s",
			quote(r.CreateSchema), joinWords(createSchemaValues, "or"))
	}
	if r.StartAfterLSN != "" {
		if _, err := ParseLSN(r.StartAfterLSN); err != nil {
			p.add(at("start_after_lsn"), "%v", err)
		}
	}

	if r.GroupMaxTx < 1 {
		p.add(at("group_max_tx"), "%d is too small: use at least 1, e.g. %d", r.GroupMaxTx, DefaultGroupMaxTx)
	}
	if r.GroupMaxRows < 1 {
		p.add(at("group_max_rows"), "%d is too small: use at least 1, e.g. %d",
			r.GroupMaxRows, DefaultGroupMaxRows)
	}
	switch d := time.Duration(r.GroupMaxDelay); {
	case d <= 0:
		p.add(at("group_max_delay"), "must be more than 0 (got %s): use e.g. %q", r.GroupMaxDelay,
			DefaultGroupMaxDelay)
	case d > time.Minute:
		p.add(at("group_max_delay"), "%s is too long: use at most 1m", r.GroupMaxDelay)
	}
	switch d := time.Duration(r.SequenceSyncInterval); {
	case d < 0:
		p.add(at("sequence_sync_interval"), "%s is negative: use at least 1s, or \"off\"", d)
	case d > 0 && d < time.Second:
		p.add(at("sequence_sync_interval"), "%s is too short: use at least 1s, or \"off\" "+
			"to sync only on demand (pgtide apply sync-sequences)", d)
	}
}

// suggestedName proposes a name for a replica that has none or an invalid
// one: derived from the database name of its DSN, else "replica".
func (r *ReplicaConfig) suggestedName() string {
	if r.DSN != "" {
		if n, err := SourceNameFromDSN(r.DSN); err == nil {
			return n
		}
	}
	if n := sanitizeName(r.Name); n != "" {
		return n
	}
	return "replica"
}

func sourceNames(sources []SourceConfig) []string {
	names := make([]string, 0, len(sources))
	for _, s := range sources {
		if s.Name != "" {
			names = append(names, s.Name)
		}
	}
	return names
}
