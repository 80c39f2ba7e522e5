package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// defaultProxy is the proxy section of a configuration without one.
var defaultProxy = ProxyConfig{
	Listen:           "127.0.0.1:6433",
	Relay:            "auto",
	BootTimeout:      Duration(60 * time.Second),
	HandshakeTimeout: Duration(15 * time.Second),
	MaxConnections:   200,
	Instances:        InstancesConfig{Max: 8, IdleTimeout: Duration(5 * time.Minute), Clone: "auto"},
}

// annVerifier is a SCRAM-SHA-256 verifier of the password "ann-secret".
const annVerifier = "SCRAM-SHA-256$4096:9Q1j+2JEoY7W0w2uTW9sKw==$" +
	"h62AnHnZzcae8n52vBq1H3Nr6kA6Xbcw57eAB7n/7gQ=:fO4gsr3goaZG4H7yyABl3xB6mLEul4fgnEK3isqsE3s="

func TestParse_proxy(t *testing.T) {
	in := `
proxy:
  listen: 0.0.0.0:7433
  tls_cert: /etc/pgtide/proxy.crt
  tls_key: /etc/pgtide/proxy.key
  users: {ann: "` + annVerifier + `", bob: hunter2}
  boot_timeout: 2m
  max_connections: 50
  max_user_connections: 5
  audit: true
  instances: {max: 3, max_per_user: 1, idle_timeout: 30s, private: true, warm: 2, memory: 1GiB,
              settings: {shared_buffers: 64MB, work_mem: 4096}}
datasets:
  shop:
    source: postgres://repl:pw@replica/shop
    rules:
      - {table: customers, column: email, method: email, key: id}
      - {table: sales.cards, column: pan, method: fixed, value: "0000"}
      - {table: sales.cards, column: cvv, method: null}
    scripts: ["DELETE FROM sessions"]
  crm:
    source: host=replica dbname=crm user=repl
    live: postgres://ro@replica/crm
    database: crm_prod
    keep: 1
    schedule: "off"
`
	c, err := Parse([]byte(in), "t.yaml")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}

	wantProxy := ProxyConfig{
		Listen:             "0.0.0.0:7433",
		TLSCert:            "/etc/pgtide/proxy.crt",
		TLSKey:             "/etc/pgtide/proxy.key",
		Users:              map[string]string{"ann": annVerifier, "bob": "hunter2"},
		BootTimeout:        Duration(2 * time.Minute),
		HandshakeTimeout:   DefaultHandshakeTimeout,
		MaxConnections:     50,
		MaxUserConnections: 5,
		Audit:              true,
		Relay:              "auto",
		Instances: InstancesConfig{
			Max: 3, MaxPerUser: 1, IdleTimeout: Duration(30 * time.Second), Private: true, Warm: 2,
			Memory:   GiB,
			Clone:    "auto",
			Settings: map[string]string{"shared_buffers": "64MB", "work_mem": "4096"},
		},
	}
	if !reflect.DeepEqual(c.Proxy, wantProxy) {
		t.Errorf("proxy:\n got %+v\nwant %+v", c.Proxy, wantProxy)
	}

	wantShop := DatasetConfig{
		Source:    "postgres://repl:pw@replica/shop",
		Database:  "shop",
		Superuser: "postgres",
		Role:      "pgtide_analyst",
		Keep:      3,
		Schedule:  Duration(24 * time.Hour),
		Rules: []MaskRule{
			{Table: "customers", Column: "email", Method: MaskEmail, Key: "id"},
			{Table: "sales.cards", Column: "pan", Method: MaskFixed, Value: "0000"},
			{Table: "sales.cards", Column: "cvv", Method: MaskNull},
		},
		Scripts: []string{"DELETE FROM sessions"},
	}
	if !reflect.DeepEqual(c.Datasets["shop"], wantShop) {
		t.Errorf("datasets.shop:\n got %+v\nwant %+v", c.Datasets["shop"], wantShop)
	}
	if crm := c.Datasets["crm"]; crm.Keep != 1 || crm.Schedule != 0 || crm.Database != "crm_prod" ||
		crm.Live != "postgres://ro@replica/crm" {
		t.Errorf("datasets.crm = %+v, want keep 1, schedule off, database crm_prod and live", crm)
	}
	if !c.ProxyEnabled() {
		t.Error("ProxyEnabled() = false with datasets and a listen address")
	}
	if got := c.Datasets["shop"].RedactedSource(); got != "postgres://repl:xxxxx@replica/shop" {
		t.Errorf("RedactedSource() = %q", got)
	}

	// A default configuration has no datasets, so no proxy runs.
	if d := Default(); d.ProxyEnabled() {
		t.Error("Default().ProxyEnabled() = true, want false without datasets")
	}
}

func TestParse_proxyErrors(t *testing.T) {
	ds := func(lines ...string) string {
		return "datasets:\n  shop:\n    source: postgres://repl:secretpw@replica/shop\n    " +
			strings.Join(lines, "\n    ")
	}
	rule := func(r string) string { return ds("rules:", "  - "+r) }

	tests := []struct {
		name, in, path, phrase string
		line                   int
	}{
		{"listen_empty", `proxy: {listen: ""}`, "proxy.listen", "must not be empty", 1},
		{"listen_bad", "proxy: {listen: 6433}", "proxy.listen", "is not host:port", 1},
		{"tls_half", "proxy: {tls_cert: a.pem}", "proxy.tls_key", "give the path of its private key", 0},
		{"user_empty", "proxy:\n  users:\n    ann: \"\"", "proxy.users.ann", "has no password", 3},
		{"user_null", "proxy:\n  users:\n    ann:", "proxy.users.ann", "has no password", 3},
		{"user_bad_verifier", "proxy:\n  users:\n    ann: SCRAM-SHA-256$4096:secret", "proxy.users.ann",
			"is not a valid SCRAM-SHA-256 verifier", 3},
		{"user_md5", "proxy:\n  users:\n    ann: md5" + strings.Repeat("ab", 16), "proxy.users.ann",
			"MD5 password hash", 3},
		{"user_list", "proxy:\n  users:\n    ann: [secret]", "proxy.users.ann", "expected a single value", 3},
		{"users_scalar", "proxy:\n  users: ann:secret", "proxy.users", "got a single value", 2},
		{"user_name", "proxy:\n  users: {\"a b\": secret}", "proxy.users", `user name "a b" is not valid`, 2},
		{"boot_timeout", "proxy: {boot_timeout: off}", "proxy.boot_timeout", "must be more than 0", 1},
		{"handshake_timeout", "proxy: {handshake_timeout: 1h}", "proxy.handshake_timeout", "use 1s to 5m", 1},
		{"max_connections", "proxy: {max_connections: 0}", "proxy.max_connections", "use 1 to 100000", 1},
		{"max_user_connections", "proxy: {max_user_connections: -1}", "proxy.max_user_connections",
			"is negative", 1},
		{"relay", "proxy: {relay: ebpf}", "proxy.relay", `"ebpf" is not a relay mode`, 1},
		{"relay_audit", "proxy: {relay: kernel, audit: true}", "proxy.relay", "cannot audit statements", 1},
		{"clone", "proxy: {instances: {clone: reflink}}", "proxy.instances.clone", `"reflink" is not a clone mode`, 1},
		{"instances_max", "proxy: {instances: {max: 0}}", "proxy.instances.max", "use 1 to 1000", 1},
		{"warm_range", "proxy: {instances: {warm: 33}}", "proxy.instances.warm", "use 0 (off) to 32", 1},
		{"warm_negative", "proxy: {instances: {warm: -1}}", "proxy.instances.warm", "use 0 (off) to 32", 1},
		{"warm_over_max", "proxy: {instances: {max: 2, warm: 3}}", "proxy.instances.warm",
			"is more than proxy.instances.max (2)", 1},
		{"memory_small", "proxy: {instances: {memory: 32MiB}}", "proxy.instances.memory",
			"32MiB is too small for a PostgreSQL instance: use at least 64MiB, or 0 for no limit", 1},
		{"memory_syntax", "proxy: {instances: {memory: 1.5GiB}}", "proxy.instances.memory",
			"not a whole number", 1},
		{"idle_timeout", "proxy: {instances: {idle_timeout: 10ms}}", "proxy.instances.idle_timeout",
			"use at least 1s", 1},
		{"setting_name", "proxy:\n  instances:\n    settings: {Work-Mem: 1MB}",
			"proxy.instances.settings.Work-Mem", "is not a server parameter name", 3},
		{"setting_driver", "proxy:\n  instances:\n    settings: {port: 5433}",
			"proxy.instances.settings.port", "is set by pgtide", 3},
		{"setting_list", "proxy:\n  instances:\n    settings:\n      work_mem: [1]",
			"proxy.instances.settings.work_mem", "expected a single value", 4},
		{"proxy_unknown", "proxy: {listn: x}", "proxy.listn", `did you mean "listen"?`, 1},

		{"datasets_list", "datasets: [shop]", "datasets", "expected a mapping of names", 1},
		{"dataset_name", "datasets:\n  9shop: {source: postgres://h/shop}", "datasets.9shop",
			`"9shop" is not a valid dataset name`, 2},
		{"dataset_at", "datasets:\n  \"shop@x\": {source: postgres://h/shop}", "datasets.shop@x",
			"is not a valid dataset name", 2},
		{"dataset_duplicate", "datasets:\n  shop: {source: postgres://h/a}\n  shop: {source: postgres://h/b}",
			"datasets.shop", "given twice (first on line 2)", 3},
		{"source_missing", "datasets:\n  shop: {keep: 2}", "datasets.shop.source", "missing", 2},
		{"source_bad", "datasets:\n  shop:\n    source: postgres://u:secretpw@h:port/x",
			"datasets.shop.source", "not a valid connection string", 3},
		{"live_bad", ds("live: postgres://u:secretpw@h:port/x"), "datasets.shop.live",
			"not a valid connection string", 4},
		{"database_empty", ds(`database: ""`), "datasets.shop.database", "is not a database name", 4},
		{"role", ds("role: bad-role"), "datasets.shop.role", "is not a role name", 4},
		{"superuser", ds("superuser: \"\""), "datasets.shop.superuser", "is not a role name", 4},
		{"keep", ds("keep: 0"), "datasets.shop.keep", "use 1 to 1000", 4},
		{"schedule_short", ds("schedule: 30s"), "datasets.shop.schedule", "use at least 1m", 4},
		{"schedule_days", ds("schedule: 1d"), "datasets.shop.schedule", `write "24h" instead`, 4},
		{"dataset_unknown", ds("sorce: x"), "datasets.shop.sorce", `did you mean "source"?`, 4},
		{"rules_mapping", ds("rules: {table: t}"), "datasets.shop.rules", "expected a list", 4},
		{"rule_method", rule("{table: t, column: c, method: scramble}"), "datasets.shop.rules[0].method",
			`"scramble" is not a masking method: use "hash", "sha256", "fixed", "null" or "email"`, 5},
		{"rule_no_method", rule("{table: t, column: c}"), "datasets.shop.rules[0].method", "missing", 5},
		{"rule_tilde_method", rule("{table: t, column: c, method: ~}"), "datasets.shop.rules[0].method",
			"missing", 5},
		{"rule_table", rule("{table: a.b.c, column: c, method: null}"), "datasets.shop.rules[0].table",
			"is not a table name", 5},
		{"rule_no_table", rule("{column: c, method: null}"), "datasets.shop.rules[0].table", "missing", 5},
		{"rule_column", rule("{table: t, column: \"e mail\", method: null}"),
			"datasets.shop.rules[0].column", "is not a column name", 5},
		{"rule_value", rule("{table: t, column: c, method: hash, value: x}"),
			"datasets.shop.rules[0].value", `only used by method "fixed"`, 5},
		{"rule_key", rule("{table: t, column: c, method: null, key: id}"),
			"datasets.shop.rules[0].key", `only used by method "email"`, 5},
		{"rule_unknown", rule("{table: t, column: c, method: null, salt: x}"),
			"datasets.shop.rules[0].salt", "unknown key here: it is valid as datasets.<name>.salt", 5},
		{"script_empty", ds("scripts: [\"  \"]"), "datasets.shop.scripts[0]", "is empty", 4},
		{"startup_script_type", ds("startup_scripts: {a: b}"), "datasets.shop.startup_scripts",
			"expected a list", 4},
		{"salt_list", ds("salt: [secretpw]"), "datasets.shop.salt", "expected a string, got a list", 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in), "pgtide.yaml")
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Parse(%q) error = %v, want *ValidationError", tt.in, err)
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
			if msg := err.Error(); strings.Contains(msg, "secret") {
				t.Errorf("Parse(%q) error shows a secret: %v", tt.in, err)
			}
		})
	}
}

// TestApplyDefaults_datasets checks that defaults fill datasets built in
// code, and that explicit zeros stay.
func TestApplyDefaults_datasets(t *testing.T) {
	c := Config{Datasets: map[string]DatasetConfig{"shop": {Source: "postgres://h/shop"}}}
	c.ApplyDefaults()
	want := DatasetConfig{
		Source: "postgres://h/shop", Database: "shop", Superuser: "postgres", Role: "pgtide_analyst",
		Keep: 3, Schedule: Duration(24 * time.Hour),
	}
	if got := c.Datasets["shop"]; !reflect.DeepEqual(got, want) {
		t.Errorf("defaulted dataset =\n %+v\nwant\n %+v", got, want)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}

	off, err := Parse([]byte("datasets: {shop: {source: postgres://h/shop, schedule: off}}"), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if s := off.Datasets["shop"].Schedule; s != 0 {
		t.Errorf("schedule: off parsed to %s, want 0", s)
	}
}
