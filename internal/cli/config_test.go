package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgtide/pgtide/internal/config"
)

// TestConfigErrors checks that configuration problems exit with code 2
// and name the key, the file line or the flag at fault.
func TestConfigErrors(t *testing.T) {
	t.Parallel()
	badLevel := writeConfig(t, "log:\n  level: verbose\n")
	typo := writeConfig(t, "sources:\n  - name: shop\n    dsn: postgres://h/shop\n    hearbeat_interval: 5s\n")
	empty := writeConfig(t, "")
	missing := filepath.Join(t.TempDir(), "missing.yaml")

	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"bad_value", []string{"status", "--config", badLevel},
			[]string{badLevel + ":2: log.level", `"verbose"`}},
		{"unknown_key", []string{"setup", "--config", typo},
			[]string{typo + ":4: sources[0].hearbeat_interval", `did you mean "heartbeat_interval"`}},
		{"bad_flag_value", []string{"status", "--config", empty, "--log-level", "loud"},
			[]string{"log.level", "(from --log-level)"}},
		{"bad_listen_flag", []string{"up", "--admin-listen", "nowhere", "--source", "postgres://h/shop"},
			[]string{"admin.listen", "(from --admin-listen)"}},
		{"missing_file", []string{"status", "--config", missing}, []string{"missing.yaml"}},
		{"no_source", []string{"up", "--config", empty}, []string{"no source configured", "--source postgres://"}},
		{"name_without_source", []string{"up", "--name", "shop"}, []string{"--name needs --source"}},
		{"bad_source_name", []string{"up", "--config", empty, "--source", "postgres://h/shop", "--name", "Shop DB"},
			[]string{"sources[0].name"}},
		{"unknown_source", []string{"setup", "--config", typo, "--source", "nope"}, nil},
		{"unknown_flag", []string{"status", "--bogus"}, []string{"unknown flag: --bogus"}},
		{"unknown_command", []string{"bogus"}, []string{`unknown command "bogus"`}},
		{"arguments", []string{"version", "extra"}, []string{"takes no arguments"}},
		{"bad_from", []string{"log", "tail", "--config", empty, "--from", "yesterday"}, []string{"--from"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "unknown_source" {
				// The typo makes the file invalid; use a valid one.
				tt.args[2] = writeConfig(t, "sources:\n  - name: shop\n    dsn: postgres://h/shop\n")
				tt.want = []string{`"nope"`, "configured: shop"}
			}
			r := run(t, tt.args...)
			if r.code != ExitConfig {
				t.Fatalf("pgtide %s: %s\nwant exit %d", strings.Join(tt.args, " "), r, ExitConfig)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("pgtide %s: stderr lacks %q:\n%s", strings.Join(tt.args, " "), w, r.stderr)
				}
			}
		})
	}
}

func TestEnvOverridesFileAndFlagsOverrideEnv(t *testing.T) {
	// Not parallel: it sets environment variables.
	cfgFile := writeConfig(t, "admin:\n  listen: 127.0.0.1:1\n")
	t.Setenv("PGTIDE_ADMIN_LISTEN", "127.0.0.1:2")

	e := &env{stdout: os.Stdout, stderr: os.Stderr}
	root := e.rootCommand()
	root.SetArgs([]string{"version", "--config", cfgFile})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	cfg, err := e.loadConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Admin.Listen != "127.0.0.1:2" {
		t.Errorf("admin.listen with file and env = %q, want the env value 127.0.0.1:2", cfg.Admin.Listen)
	}

	e = &env{stdout: os.Stdout, stderr: os.Stderr}
	root = e.rootCommand()
	root.SetArgs([]string{"version", "--config", cfgFile, "--admin-listen", "127.0.0.1:3"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if cfg, err = e.loadConfig(nil); err != nil {
		t.Fatal(err)
	}
	if cfg.Admin.Listen != "127.0.0.1:3" {
		t.Errorf("admin.listen with file, env and flag = %q, want the flag value 127.0.0.1:3", cfg.Admin.Listen)
	}
}

func TestSetSourceDSN(t *testing.T) {
	t.Parallel()
	e := &env{}
	cfg, err := e.loadConfig(func(c *config.Config) error {
		return setSourceDSN(c, "postgres://u@h:5432/Shop-DB", "")
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Sources) != 1 || cfg.Sources[0].Name != "shop-db" || cfg.Sources[0].Slot != "pgtide_shop_db" {
		t.Errorf("--source without a name: sources = %+v, want one named shop-db with slot pgtide_shop_db",
			cfg.Sources)
	}
}
