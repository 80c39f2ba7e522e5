package config

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

const fullConfig = `# Every key, with non-default values.
data_dir: /var/lib/pgtide
log:
  level: debug
  format: json
admin:
  listen: ":7070"
nats:
  url: nats://user:natspw@n1.example.com:4222, tls://n2.example.com:4222
  creds_file: /etc/pgtide/nats.creds
  replicas: 3
  confirm_delay: 500ms
  embedded:
    listen: "off"
    sync_interval: 2s
    max_payload: 16MiB
sources:
  - name: shop
    dsn: postgres://pgtide:secret@db1.example.com:5432/shop?sslmode=require
    schemas: [public, sales]
    tables: ["public.orders", "sales.*", "line_item?"]
    exclude_tables: ["*_tmp"]
    slot: shop_slot
    publication: shop_pub
    binary: true
    keyless: full
    ddl: false
    heartbeat_interval: "off"
    max_retained_wal: 1GB
    status_interval: 5s
    retention:
      max_age: 0
      max_bytes: 100GiB
    snapshot: "off"
  - name: crm-eu
    dsn: host=db2.example.com dbname=crm user=pgtide password='p w'
`

func TestParse_full(t *testing.T) {
	c, err := Parse([]byte(fullConfig), "full.yaml")
	if err != nil {
		t.Fatalf("Parse(full): %v", err)
	}

	wantTop := Config{
		DataDir: "/var/lib/pgtide",
		Log:     LogConfig{Level: "debug", Format: "json"},
		Admin:   AdminConfig{Listen: ":7070"},
		NATS: NATSConfig{
			URL:       "nats://user:natspw@n1.example.com:4222, tls://n2.example.com:4222",
			CredsFile: "/etc/pgtide/nats.creds",
			Embedded: EmbeddedNATS{
				Listen:       "off",
				SyncInterval: Duration(2 * time.Second),
				MaxPayload:   16 * MiB,
			},
			Replicas:     3,
			ConfirmDelay: Duration(500 * time.Millisecond),
		},
		Gateway: defaultGateway,
		Proxy:   defaultProxy,
	}
	gotTop := c
	gotTop.Sources = nil
	gotTop.given = nil
	if !reflect.DeepEqual(gotTop, wantTop) {
		t.Errorf("top level:\n got %+v\nwant %+v", gotTop, wantTop)
	}

	if len(c.Sources) != 2 {
		t.Fatalf("got %d sources, want 2", len(c.Sources))
	}
	off := false
	want0 := SourceConfig{
		Name:              "shop",
		DSN:               "postgres://pgtide:secret@db1.example.com:5432/shop?sslmode=require",
		Schemas:           []string{"public", "sales"},
		Tables:            []string{"public.orders", "sales.*", "line_item?"},
		ExcludeTables:     []string{"*_tmp"},
		Slot:              "shop_slot",
		Publication:       "shop_pub",
		Binary:            true,
		Keyless:           KeylessFull,
		DDL:               &off,
		HeartbeatInterval: 0,
		MaxRetainedWAL:    1e9,
		StatusInterval:    Duration(5 * time.Second),
		Retention:         Retention{MaxAge: 0, MaxBytes: 100 * GiB},
		Snapshot:          SnapshotOff,
		SnapshotWorkers:   2,
		SnapshotChunkRows: 250000,
	}
	on := true
	want1 := SourceConfig{
		Name:              "crm-eu",
		DSN:               "host=db2.example.com dbname=crm user=pgtide password='p w'",
		Schemas:           []string{"public"},
		Slot:              "pgtide_crm_eu",
		Publication:       "pgtide_crm_eu",
		Keyless:           KeylessSkip,
		DDL:               &on,
		HeartbeatInterval: DefaultHeartbeatInterval,
		MaxRetainedWAL:    DefaultMaxRetainedWAL,
		StatusInterval:    DefaultStatusInterval,
		Retention:         Retention{MaxAge: DefaultRetentionMaxAge},
		Snapshot:          SnapshotInitial,
		SnapshotWorkers:   DefaultSnapshotWorkers,
		SnapshotChunkRows: DefaultSnapshotChunkRows,
	}
	for i, want := range []SourceConfig{want0, want1} {
		got := c.Sources[i]
		got.given = nil
		if !reflect.DeepEqual(got, want) {
			t.Errorf("sources[%d]:\n got %+v\nwant %+v", i, got, want)
		}
	}
	if c.Sources[0].DDLEnabled() || !c.Sources[1].DDLEnabled() {
		t.Errorf("DDLEnabled = %v, %v; want false, true", c.Sources[0].DDLEnabled(), c.Sources[1].DDLEnabled())
	}

	if s, ok := c.Source("crm-eu"); !ok || s.Name != "crm-eu" {
		t.Errorf(`Source("crm-eu") = %q, %v`, s.Name, ok)
	}
	if _, ok := c.Source("nope"); ok {
		t.Errorf(`Source("nope") found a source`)
	}
}

func TestParse_empty(t *testing.T) {
	for _, in := range []string{"", "# only a comment\n", "---\n", "sources:\n", "log: {}\n"} {
		c, err := Parse([]byte(in), "empty.yaml")
		if err != nil {
			t.Errorf("Parse(%q): %v", in, err)
			continue
		}
		c.given = nil
		if want := Default(); !reflect.DeepEqual(c, want) {
			t.Errorf("Parse(%q) =\n %+v\nwant Default() =\n %+v", in, c, want)
		}
	}
}

// TestParse_explicitZero checks that a zero the file gives survives
// ApplyDefaults where zero means something.
func TestParse_explicitZero(t *testing.T) {
	c, err := Parse([]byte(`
nats:
  confirm_delay: 0
sources:
  - name: shop
    dsn: postgres://localhost/shop
    heartbeat_interval: "off"
    max_retained_wal: 0
    retention:
      max_age: 0s
  - name: other
    dsn: postgres://localhost/other
    heartbeat_interval:   # empty: default
`), "zero.yaml")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if c.NATS.ConfirmDelay != 0 {
		t.Errorf("nats.confirm_delay = %v, want 0", c.NATS.ConfirmDelay)
	}
	s := c.Sources[0]
	if s.HeartbeatInterval != 0 || s.MaxRetainedWAL != 0 || s.Retention.MaxAge != 0 {
		t.Errorf("sources[0] heartbeat=%v max_retained_wal=%v max_age=%v, want all 0",
			s.HeartbeatInterval, s.MaxRetainedWAL, s.Retention.MaxAge)
	}
	if got := c.Sources[1].HeartbeatInterval; got != DefaultHeartbeatInterval {
		t.Errorf("sources[1].heartbeat_interval = %v, want the default %v", got, DefaultHeartbeatInterval)
	}

	c.ApplyDefaults() // idempotent, and still respects the file
	if c.Sources[0].HeartbeatInterval != 0 || c.NATS.ConfirmDelay != 0 {
		t.Errorf("second ApplyDefaults changed explicit zeros")
	}
}

func TestParse_mergeAndAlias(t *testing.T) {
	c, err := Parse([]byte(`
common: &common
  schemas: [public, sales]
  heartbeat_interval: 30s
`+"x: 1\n"), "merge.yaml")
	if err == nil {
		t.Fatalf("Parse accepted unknown top-level keys (common, x): %+v", c)
	}

	c, err = Parse([]byte(`
sources:
  - &base
    name: a
    dsn: postgres://localhost/a
    schemas: [public, sales]
    heartbeat_interval: 30s
  - <<: *base
    name: b
    dsn: postgres://localhost/b
`), "merge.yaml")
	if err != nil {
		t.Fatalf("Parse with merge key: %v", err)
	}
	b := c.Sources[1]
	if b.Name != "b" || b.HeartbeatInterval != Duration(30*time.Second) || len(b.Schemas) != 2 {
		t.Errorf("merged source = %+v, want name b, heartbeat 30s, two schemas", b)
	}
}

// srcYAML returns a configuration with one valid source plus extra lines
// indented into it.
func srcYAML(extra ...string) string {
	s := "sources:\n  - name: shop\n    dsn: postgres://pgtide:secret@localhost:5432/shop\n"
	for _, e := range extra {
		s += "    " + e + "\n"
	}
	return s
}

const secondSource = "  - name: crm\n    dsn: postgres://localhost/crm\n"

func TestParse_errors(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		path   string
		phrase string
		line   int // 0: not checked
	}{
		{"data_dir_empty", `data_dir: ""`, "data_dir", "must not be empty", 1},
		{"log_level", "log:\n  level: verbose", "log.level", `"verbose" is not a log level: use "debug"`, 2},
		{"log_format", "log: {format: xml}", "log.format", `"xml" is not a log format`, 1},
		{"log_not_mapping", "log: [a]", "log", "expected a mapping of keys", 1},
		{"admin_empty", `admin: {listen: ""}`, "admin.listen", `or "off" to disable the admin server`, 1},
		{"admin_no_port", "admin: {listen: localhost}", "admin.listen", `"localhost" is not host:port`, 1},
		{"admin_bad_port", `admin: {listen: "localhost:99999"}`, "admin.listen", "is not a number from 0 to 65535", 1},
		{"nats_url_scheme", "nats: {url: 'http://n:4222'}", "nats.url", `has scheme "http"`, 1},
		{"nats_url_empty_entry", "nats: {url: 'nats://a:4222,,nats://b:4222'}", "nats.url", "entry 2 is empty", 1},
		{"nats_url_no_scheme", "nats: {url: 'localhost:4222'}", "nats.url", "is not a server URL", 1},
		{"nats_url_unparsable", "nats: {url: 'nats://h:port'}", "nats.url", "cannot be parsed as a URL", 1},
		{"nats_creds_embedded", "nats: {creds_file: /x.creds}", "nats.creds_file", "nats.url is empty", 1},
		{"nats_replicas_zero", "nats: {url: 'nats://h:4222', replicas: 0}", "nats.replicas",
			"0 is out of range: use 1 to 5", 1},
		{"nats_replicas_six", "nats: {url: 'nats://h:4222', replicas: 6}", "nats.replicas", "out of range", 1},
		{"nats_replicas_embedded", "nats:\n  replicas: 3", "nats.replicas", "needs an external NATS cluster", 2},
		{"nats_replicas_type", "nats: {replicas: three}", "nats.replicas", `expected a whole number, got "three"`, 1},
		{"nats_confirm_negative", "nats: {confirm_delay: -1s}", "nats.confirm_delay", "is negative", 1},
		{"embedded_listen", "nats: {embedded: {listen: nowhere}}", "nats.embedded.listen", "is not host:port", 1},
		{"sync_interval_zero", "nats: {embedded: {sync_interval: 0}}",
			"nats.embedded.sync_interval", "must be more than 0", 1},
		{"sync_interval_long", "nats: {embedded: {sync_interval: 3m}}", "nats.embedded.sync_interval", "at most 2m", 1},
		{"max_payload_small", "nats: {embedded: {max_payload: 512KiB}}",
			"nats.embedded.max_payload", "512KiB is out of range: use 1MiB to 64MiB", 1},
		{"max_payload_syntax", "nats: {embedded: {max_payload: 8 furlongs}}",
			"nats.embedded.max_payload", "is not a size", 1},

		{"sources_not_list", "sources: {name: shop}", "sources", "expected a list", 1},
		{"source_not_mapping", "sources: [shop]", "sources[0]", "expected a mapping of keys", 1},
		{"name_missing", "sources:\n  - dsn: postgres://localhost/orders", "sources[0].name",
			`missing: every source needs a unique name, e.g. "orders"`, 2},
		{"name_invalid", "sources:\n  - name: Shop DB\n    dsn: postgres://localhost/shop", "sources[0].name",
			`"Shop DB" is not a valid source name: use lowercase letters, digits, '_' and '-' (1-32 chars, starting with a letter), e.g. "shop_db"`, 2},
		{"name_leading_digit", "sources:\n  - name: 1shop\n    dsn: postgres://localhost/shop",
			"sources[0].name", `e.g. "db_1shop"`, 2},
		{"name_too_long",
			"sources:\n  - name: " + strings.Repeat("a", 33) + "\n    dsn: postgres://localhost/shop", "sources[0].name", "1-32 chars", 2},
		{"name_duplicate", srcYAML() + "  - name: shop\n    dsn: postgres://localhost/other\n    slot: s2\n    publication: p2",
			"sources[1].name", `"shop" is already the name of sources[0]`, 4},
		{"dsn_missing", "sources:\n  - name: shop", "sources[0].dsn", "missing: give the connection string", 2},
		{"dsn_invalid", "sources:\n  - name: shop\n    dsn: just-a-word", "sources[0].dsn",
			"not a valid connection string", 3},
		{"dsn_bad_port", "sources:\n  - name: shop\n    dsn: postgres://u:pw@h:abc/shop",
			"sources[0].dsn", "invalid port", 3},
		{"schemas_empty", srcYAML("schemas: []"), "sources[0].schemas", "must list at least one schema", 4},
		{"schemas_scalar", srcYAML("schemas: public"), "sources[0].schemas",
			`expected a list, got "public": write [public]`, 4},
		{"schemas_duplicate", srcYAML("schemas:", "  - public", "  - public"),
			"sources[0].schemas[1]", "already listed as schemas[0]", 6},
		{"schemas_wildcard", srcYAML("schemas: ['s*']"), "sources[0].schemas[0]", "schemas are exact names", 4},
		{"schemas_empty_name", srcYAML("schemas: ['']"), "sources[0].schemas[0]", "empty schema name", 4},
		{"tables_three_parts", srcYAML("tables: [a.b.c]"), "sources[0].tables[0]", "more than one '.'", 4},
		{"tables_bracket", srcYAML("tables:", "  - orders", "  - 'orders_[0-9]'"), "sources[0].tables[1]",
			`"orders_[0-9]" contains "[": only * and ? are wildcards`, 6},
		{"tables_backslash", srcYAML(`tables: ['a\b']`), "sources[0].tables[0]", "only * and ? are wildcards", 4},
		{"tables_empty_part", srcYAML("tables: [public.]"), "sources[0].tables[0]", "empty schema or table part", 4},
		{"tables_unselected_schema", srcYAML("tables: [sales.orders]"), "sources[0].tables[0]",
			`"sales.orders" names schema "sales", which is not in sources[0].schemas [public]`, 4},
		{"exclude_empty", srcYAML("exclude_tables: ['']"), "sources[0].exclude_tables[0]", "empty pattern", 4},
		{"slot_invalid", srcYAML("slot: Bad-Slot"), "sources[0].slot", `"Bad-Slot" is not a valid replication slot name`, 4},
		{"slot_empty", srcYAML(`slot: ""`), "sources[0].slot", `e.g. "pgtide_shop"`, 4},
		{"slot_duplicate", srcYAML("slot: same") + "  - name: crm\n    dsn: postgres://localhost/crm\n    slot: same",
			"sources[1].slot", `"same" is also the slot of sources[0]`, 7},
		{"slot_derived_duplicate", "sources:\n  - name: a-b\n    dsn: postgres://localhost/x\n    publication: p1\n" +
			"  - name: a_b\n    dsn: postgres://localhost/y\n    publication: p2", "sources[1].slot", `"pgtide_a_b" is also the slot of sources[0]`, 5},
		{"publication_invalid", srcYAML("publication: 1pub"), "sources[0].publication", "not starting with a digit", 4},
		{"publication_long", srcYAML("publication: " + strings.Repeat("p", 51)),
			"sources[0].publication", "1-50 lowercase", 4},
		{"publication_duplicate", srcYAML("publication: pub") + secondSource + "    publication: pub",
			"sources[1].publication", `"pub" is also the publication of sources[0]`, 7},
		{"keyless", srcYAML("keyless: maybe"), "sources[0].keyless", `"maybe" is not a keyless mode: use "skip"`, 4},
		{"ddl_type", srcYAML("ddl: perhaps"), "sources[0].ddl", `expected true or false, got "perhaps"`, 4},
		{"binary_type", srcYAML("binary: [yes]"), "sources[0].binary", "expected true or false, got a list", 4},
		{"heartbeat_short", srcYAML("heartbeat_interval: 500ms"), "sources[0].heartbeat_interval",
			`use at least 1s, or "off"`, 4},
		{"heartbeat_no_unit", srcYAML("heartbeat_interval: 10"), "sources[0].heartbeat_interval",
			`"10" has no unit: write e.g. "10s"`, 4},
		{"heartbeat_negative", srcYAML("heartbeat_interval: -5s"), "sources[0].heartbeat_interval", "is negative", 4},
		{"heartbeat_mapping", srcYAML("heartbeat_interval: {s: 1}"),
			"sources[0].heartbeat_interval", "expected a duration", 4},
		{"max_retained_wal", srcYAML("max_retained_wal: -1GiB"), "sources[0].max_retained_wal", "is negative", 4},
		{"status_interval_off", srcYAML("status_interval: off"), "sources[0].status_interval", "must be more than 0", 4},
		{"status_interval_long", srcYAML("status_interval: 1m"), "sources[0].status_interval", "wal_sender_timeout", 4},
		{"retention_days", srcYAML("retention:", "  max_age: 7d"), "sources[0].retention.max_age",
			`write "168h" instead`, 5},
		{"retention_small", srcYAML("retention: {max_bytes: 1KiB}"),
			"sources[0].retention.max_bytes", "use 0 (no cap) or at least 1MiB", 4},
		{"snapshot", srcYAML("snapshot: full"), "sources[0].snapshot", `"full" is not a snapshot mode`, 4},
		{"snapshot_workers", srcYAML("snapshot_workers: 99"), "sources[0].snapshot_workers", "use 1 to 32", 4},
		{"snapshot_chunk_rows", srcYAML("snapshot_chunk_rows: 10"), "sources[0].snapshot_chunk_rows", "at least 1000", 4},

		{"unknown_top", "colour: blue", "colour", "unknown key: the keys here are admin, data_dir, datasets, gateway, log, nats, proxy, replicas, sources", 1},
		{"typo", srcYAML("hearbeat_interval: 5s"), "sources[0].hearbeat_interval",
			`unknown key: did you mean "heartbeat_interval"?`, 4},
		{"typo_hides_missing", "sources:\n  - nmae: shop\n    dsn: postgres://localhost/shop",
			"sources[0].nmae", `did you mean "name"?`, 2},
		{"wrong_parent", "heartbeat_interval: 5s", "heartbeat_interval", "it is valid as sources[].heartbeat_interval", 1},
		{"wrong_parent_nested", "nats: {level: debug}", "nats.level", "it is valid as log.level", 1},
		{"duplicate_key", "data_dir: a\nlog: {}\ndata_dir: b", "data_dir", "given twice (first on line 1)", 3},
		{"syntax", "log:\n  level: [debug\n", "", "YAML syntax error", 0},
		{"syntax_tab", "log:\n\tlevel: debug\n", "", "a tab indents this line; YAML indents with spaces only", 2},
		{"two_documents", "data_dir: a\n---\ndata_dir: b\n", "", "more than one YAML document", 0},
		{"root_scalar", "hello", "", "the configuration must be a mapping", 1},
		{"root_list", "- a\n- b", "", "got a list", 1},
		{"complex_key", "? [a, b]\n: c", "", "keys must be plain names", 1},
		{"bad_merge", "<<: 5", "<<", "a merge key takes a mapping", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.in), "pgtide.yaml")
			if err == nil {
				t.Fatalf("Parse(%q) succeeded, want an error at %q", tt.in, tt.path)
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Parse(%q) error %T %v, want *ValidationError", tt.in, err, err)
			}
			if !reflect.DeepEqual(c, Config{}) {
				t.Errorf("Parse(%q) returned a non-zero Config with an error", tt.in)
			}
			if len(ve.Errors) != 1 {
				t.Errorf("Parse(%q): %d problems, want 1:\n%v", tt.in, len(ve.Errors), err)
			}
			fe := ve.Errors[0]
			if fe.Path != tt.path || !strings.Contains(fe.Message, tt.phrase) {
				t.Errorf("Parse(%q) problem = %q: %q\nwant path %q, message containing %q",
					tt.in, fe.Path, fe.Message, tt.path, tt.phrase)
			}
			if tt.line != 0 && fe.Line != tt.line {
				t.Errorf("Parse(%q) problem line = %d, want %d", tt.in, fe.Line, tt.line)
			}
			if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), ":pw@") {
				t.Errorf("Parse(%q) error shows a password: %v", tt.in, err)
			}
		})
	}
}

// TestParse_allProblems checks that problems of every kind are reported
// together, in file order, with file and line prefixes.
func TestParse_allProblems(t *testing.T) {
	in := `log:
  level: loud
  formt: json
sources:
  - name: Shop DB
    dsn: postgres://u:hunter2@h/db
    heartbeat_interval: 10
nats:
  replicas: 0
`
	_, err := Parse([]byte(in), "pgtide.yaml")
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Parse: error %v, want *ValidationError", err)
	}
	want := []struct {
		path string
		line int
	}{
		{"log.level", 2},
		{"log.formt", 3},
		{"sources[0].name", 5},
		{"sources[0].heartbeat_interval", 7},
		{"nats.replicas", 9},
	}
	if len(ve.Errors) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(ve.Errors), len(want), err)
	}
	for i, w := range want {
		if fe := ve.Errors[i]; fe.Path != w.path || fe.Line != w.line {
			t.Errorf("problem %d = %s (line %d), want %s (line %d)", i, fe.Path, fe.Line, w.path, w.line)
		}
	}

	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) || !strings.HasPrefix(lines[0], `pgtide.yaml:2: log.level: "loud" is not a log level`) {
		t.Errorf("Error() =\n%s\nwant one line per problem, starting with pgtide.yaml:2: log.level: ...", err)
	}

	var fe FieldError
	if !errors.As(err, &fe) || fe.Path != "log.level" {
		t.Errorf("errors.As(err, *FieldError) = %+v, want the log.level problem", fe)
	}
}

func TestValidate(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}

	c.Sources = append(c.Sources, SourceConfig{Name: "shop", DSN: "postgres://localhost/shop"})
	if err := c.Validate(); err == nil {
		t.Errorf("Validate accepted a source without defaults applied")
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate after ApplyDefaults: %v", err)
	}

	// As a flag would: a deliberate zero set after ApplyDefaults.
	c.Sources[0].HeartbeatInterval = 0
	c.Log.Level = "chatty"
	err := c.Validate()
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Errors) != 1 || ve.Errors[0].Path != "log.level" || ve.Errors[0].Line != 0 {
		t.Errorf("Validate() = %v, want one log.level problem without a line", err)
	}
	if strings.HasPrefix(err.Error(), "line") {
		t.Errorf("Validate() error %q has a line prefix", err)
	}
}

// TestParse_mergeBomb feeds merge keys that double at every level; the
// walk must stop early instead of expanding 2^40 mappings.
func TestParse_mergeBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("sources:\n  - &l0 {name: a, dsn: 'host=h'}\n")
	for i := 1; i <= 40; i++ {
		fmt.Fprintf(&b, "  - &l%d {<<: [*l%d, *l%d]}\n", i, i-1, i-1)
	}
	_, err := Parse([]byte(b.String()), "bomb.yaml")
	if err == nil || !strings.Contains(err.Error(), "too many aliases") {
		t.Errorf("Parse(merge bomb) = %v, want a too-many-aliases error", err)
	}
}
