package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// envMap returns a lookup function over m, for ApplyEnv.
func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func TestApplyEnv(t *testing.T) {
	c := Config{Sources: []SourceConfig{{Name: "shop", DSN: "postgres://old/shop"}}}
	err := c.ApplyEnv(envMap(map[string]string{
		"PGTIDE_DATA_DIR":        "/data",
		"PGTIDE_LOG_LEVEL":       "DEBUG",
		"PGTIDE_LOG_FORMAT":      "Json",
		"PGTIDE_ADMIN_LISTEN":    "off",
		"PGTIDE_NATS_URL":        "nats://a:4222,nats://b:4222",
		"PGTIDE_NATS_CREDS_FILE": "/c.creds",
		"PGTIDE_SOURCE_DSN":      "postgres://new/shop",
		"PGTIDE_UNRELATED":       "x",
	}))
	if err != nil {
		t.Fatalf("ApplyEnv: %v", err)
	}
	got := []string{c.DataDir, c.Log.Level, c.Log.Format, c.Admin.Listen, c.NATS.URL, c.NATS.CredsFile, c.Sources[0].DSN}
	want := []string{"/data", "debug", "json", "off", "nats://a:4222,nats://b:4222", "/c.creds", "postgres://new/shop"}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("after ApplyEnv field %d = %q, want %q", i, got[i], want[i])
		}
	}
	if len(c.Sources) != 1 {
		t.Errorf("ApplyEnv added a source next to the only one: %d sources", len(c.Sources))
	}
}

func TestApplyEnv_emptyIsUnset(t *testing.T) {
	c := Default()
	if err := c.ApplyEnv(envMap(map[string]string{"PGTIDE_ADMIN_LISTEN": "", "PGTIDE_LOG_LEVEL": ""})); err != nil {
		t.Fatalf("ApplyEnv: %v", err)
	}
	if c.Admin.Listen != DefaultAdminListen || c.Log.Level != DefaultLogLevel {
		t.Errorf("empty variables changed the config: %+v", c)
	}
}

func TestApplyEnv_source(t *testing.T) {
	two := []SourceConfig{{Name: "shop", DSN: "postgres://h/shop"}, {Name: "crm", DSN: "postgres://h/crm"}}
	tests := []struct {
		name    string
		sources []SourceConfig
		env     map[string]string
		want    []string // name=dsn of each source afterwards
	}{
		{"add_derived_name", nil, map[string]string{"PGTIDE_SOURCE_DSN": "postgres://u:pw@h/Shop-DB"},
			[]string{"shop-db=postgres://u:pw@h/Shop-DB"}},
		{"add_named", nil, map[string]string{"PGTIDE_SOURCE_DSN": "host=h dbname=x", "PGTIDE_SOURCE_NAME": "orders"},
			[]string{"orders=host=h dbname=x"}},
		{"override_by_name", two, map[string]string{"PGTIDE_SOURCE_DSN": "postgres://new/crm", "PGTIDE_SOURCE_NAME": "crm"},
			[]string{"shop=postgres://h/shop", "crm=postgres://new/crm"}},
		{"add_to_several", two, map[string]string{"PGTIDE_SOURCE_DSN": "postgres://h/inv", "PGTIDE_SOURCE_NAME": "inv"},
			[]string{"shop=postgres://h/shop", "crm=postgres://h/crm", "inv=postgres://h/inv"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{Sources: append([]SourceConfig(nil), tt.sources...)}
			if err := c.ApplyEnv(envMap(tt.env)); err != nil {
				t.Fatalf("ApplyEnv: %v", err)
			}
			var got []string
			for _, s := range c.Sources {
				got = append(got, s.Name+"="+s.DSN)
			}
			if strings.Join(got, " | ") != strings.Join(tt.want, " | ") {
				t.Errorf("sources = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestApplyEnv_errors(t *testing.T) {
	two := []SourceConfig{{Name: "shop"}, {Name: "crm"}}
	tests := []struct {
		name    string
		sources []SourceConfig
		env     map[string]string
		path    string
		phrase  string
	}{
		{"log_level", nil, map[string]string{"PGTIDE_LOG_LEVEL": "loud"}, "env PGTIDE_LOG_LEVEL",
			`"loud" is not a log level`},
		{"log_format", nil, map[string]string{"PGTIDE_LOG_FORMAT": "xml"}, "env PGTIDE_LOG_FORMAT", "is not a log format"},
		{"admin_listen", nil, map[string]string{"PGTIDE_ADMIN_LISTEN": "7070"},
			"env PGTIDE_ADMIN_LISTEN", "is not host:port"},
		{"nats_url", nil, map[string]string{"PGTIDE_NATS_URL": "http://x:1"}, "env PGTIDE_NATS_URL", `has scheme "http"`},
		{"dsn", nil, map[string]string{"PGTIDE_SOURCE_DSN": "postgres://u:topsecret@h:x/db"},
			"env PGTIDE_SOURCE_DSN", "not a valid connection string"},
		{"name_without_dsn", nil, map[string]string{"PGTIDE_SOURCE_NAME": "shop"},
			"env PGTIDE_SOURCE_NAME", "set without PGTIDE_SOURCE_DSN"},
		{"bad_name", nil,
			map[string]string{"PGTIDE_SOURCE_DSN": "postgres://h/db", "PGTIDE_SOURCE_NAME": "Bad"}, "env PGTIDE_SOURCE_NAME", "is not a valid source name"},
		{"ambiguous", two, map[string]string{"PGTIDE_SOURCE_DSN": "postgres://h/db"},
			"env PGTIDE_SOURCE_DSN", "2 sources are configured: set PGTIDE_SOURCE_NAME"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			c.Sources = append([]SourceConfig(nil), tt.sources...)
			before := c.Log.Level
			err := c.ApplyEnv(envMap(tt.env))
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Errors) != 1 {
				t.Fatalf("ApplyEnv(%v) = %v, want one problem", tt.env, err)
			}
			if fe := ve.Errors[0]; fe.Path != tt.path || !strings.Contains(fe.Message, tt.phrase) {
				t.Errorf("problem = %q: %q, want path %q with %q", fe.Path, fe.Message, tt.path, tt.phrase)
			}
			if strings.Contains(err.Error(), "topsecret") {
				t.Errorf("error shows the password: %v", err)
			}
			if c.Log.Level != before {
				t.Errorf("a bad value was applied: log.level = %q", c.Log.Level)
			}
		})
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pgtide.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoad(t *testing.T) {
	path := writeFile(t, "log:\n  level: warn\nsources:\n  - name: shop\n")
	c, err := load(path, envMap(map[string]string{
		"PGTIDE_LOG_LEVEL":  "error",
		"PGTIDE_SOURCE_DSN": "postgres://u:pw@db/shop",
	}))
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if c.Log.Level != "error" || c.Sources[0].DSN != "postgres://u:pw@db/shop" || c.Sources[0].Slot != "pgtide_shop" {
		t.Errorf("load = %+v, want env over file, defaults applied", c)
	}
}

func TestLoad_noFile(t *testing.T) {
	c, err := load("", envMap(map[string]string{"PGTIDE_SOURCE_DSN": "postgres://db/orders"}))
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if len(c.Sources) != 1 || c.Sources[0].Name != "orders" || c.Sources[0].HeartbeatInterval != DefaultHeartbeatInterval {
		t.Errorf("load without file = %+v, want one defaulted source named orders", c.Sources)
	}

	t.Setenv("PGTIDE_DATA_DIR", "/from/env")
	c, err = Load("")
	if err != nil || c.DataDir != "/from/env" {
		t.Errorf("Load(\"\") = %q, %v; want data_dir from PGTIDE_DATA_DIR", c.DataDir, err)
	}
}

func TestLoad_errors(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "missing.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want fs.ErrNotExist", err)
	}

	// File and environment problems come together; a problem caused by
	// the environment names the variable instead of a file line.
	path := writeFile(t, "log:\n  level: loud\nnats:\n  replicas: 2\n")
	_, err = load(path, envMap(map[string]string{
		"PGTIDE_LOG_FORMAT":      "xml",
		"PGTIDE_NATS_CREDS_FILE": "/x.creds",
	}))
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("load = %v, want *ValidationError", err)
	}
	msg := err.Error()
	for _, want := range []string{
		path + `:2: log.level: "loud" is not a log level`,
		path + ":4: nats.replicas: 2 needs an external NATS cluster",
		`env PGTIDE_LOG_FORMAT: "xml" is not a log format`,
		"nats.creds_file: is set but nats.url is empty, and the embedded server takes no credentials: " +
			"set nats.url or remove creds_file (from PGTIDE_NATS_CREDS_FILE)",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("load error lacks %q:\n%s", want, msg)
		}
	}
	if len(ve.Errors) != 4 {
		t.Errorf("got %d problems, want 4:\n%s", len(ve.Errors), msg)
	}

	path = writeFile(t, "log: [\n")
	_, err = load(path, envMap(nil))
	if !errors.As(err, &ve) || ve.Errors[0].Path != "" || !strings.HasPrefix(err.Error(), path+":") {
		t.Errorf("load(syntax error) = %v, want a file:line YAML syntax error", err)
	}
}
