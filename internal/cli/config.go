package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/pgtide/pgtide/internal/config"
)

// globalFlags are the flags every command accepts. Each one overrides the
// configuration key it names.
type globalFlags struct {
	configFile  string
	dataDir     string
	logLevel    string
	logFormat   string
	adminListen string
	natsURL     string

	fs *pflag.FlagSet // the root's persistent flags, to ask what was set
}

// flagKeys maps each overriding flag to its configuration key.
var flagKeys = map[string]string{
	"data-dir":     "data_dir",
	"log-level":    "log.level",
	"log-format":   "log.format",
	"admin-listen": "admin.listen",
	"nats-url":     "nats.url",
}

func (g *globalFlags) register(root *cobra.Command) {
	fs := root.PersistentFlags()
	fs.StringVarP(&g.configFile, "config", "c", "", "configuration file (YAML)")
	fs.StringVar(&g.dataDir, "data-dir", "",
		"directory of local state, such as the embedded change log (data_dir)")
	fs.StringVar(&g.logLevel, "log-level", "", "debug, info, warn or error (log.level)")
	fs.StringVar(&g.logFormat, "log-format", "", "text or json (log.format)")
	fs.StringVar(&g.adminListen, "admin-listen", "",
		`admin HTTP server address, or "off" (admin.listen)`)
	fs.StringVar(&g.natsURL, "nats-url", "",
		"external NATS server URLs; empty runs the embedded server (nats.url)")
	g.fs = fs
}

// changed reports whether the flag name was given on the command line.
func (g *globalFlags) changed(name string) bool {
	return g.fs != nil && g.fs.Changed(name)
}

// apply sets the configuration keys of the flags given.
func (g *globalFlags) apply(cfg *config.Config) {
	if g.changed("data-dir") {
		cfg.DataDir = g.dataDir
	}
	if g.changed("log-level") {
		cfg.Log.Level = strings.ToLower(g.logLevel)
	}
	if g.changed("log-format") {
		cfg.Log.Format = strings.ToLower(g.logFormat)
	}
	if g.changed("admin-listen") {
		cfg.Admin.Listen = g.adminListen
	}
	if g.changed("nats-url") {
		cfg.SetNATSURL(g.natsURL)
	}
}

// configError is a problem with the configuration. It prints every
// problem on its own line and exits with ExitConfig.
type configError struct {
	err error
}

func (c *configError) Error() string { return c.err.Error() }
func (c *configError) Unwrap() error { return c.err }

func (c *configError) print(w io.Writer) {
	var ve *config.ValidationError
	if !errors.As(c.err, &ve) {
		fmt.Fprintf(w, "pgtide: configuration: %v\n", c.err)
		return
	}
	fmt.Fprintln(w, "pgtide: invalid configuration:")
	for _, line := range strings.Split(ve.Error(), "\n") {
		fmt.Fprintf(w, "  %s\n", line)
	}
}

func newConfigError(err error) error {
	return &exitError{code: ExitConfig, err: &configError{err: err}}
}

// loadConfig reads the configuration file (--config) and the environment,
// applies the global flags, lets adjust change the result (for
// command-specific flags such as up --source), fills defaults and
// validates. Every problem comes back as one error that exits with
// ExitConfig.
func (e *env) loadConfig(adjust func(*config.Config) error) (config.Config, error) {
	cfg, err := config.Load(e.flags.configFile)
	if err != nil {
		return config.Config{}, newConfigError(err)
	}

	e.flags.apply(&cfg)
	if adjust != nil {
		if err := adjust(&cfg); err != nil {
			return config.Config{}, err
		}
	}
	cfg.ApplyDefaults()

	if err := cfg.Validate(); err != nil {
		e.blameFlags(err)
		return config.Config{}, newConfigError(err)
	}
	return cfg, nil
}

// blameFlags notes, on problems with keys a flag set, which flag it was.
func (e *env) blameFlags(err error) {
	var ve *config.ValidationError
	if !errors.As(err, &ve) {
		return
	}
	for i, fe := range ve.Errors {
		for flag, key := range flagKeys {
			if fe.Path == key && e.flags.changed(flag) {
				ve.Errors[i].Message += " (from --" + flag + ")"
			}
		}
	}
}

// setSourceDSN applies `--source DSN [--name NAME]` the way the
// environment variable PGTIDE_SOURCE_DSN applies: it sets the DSN of the
// source called name, adding it when missing; without a name it names a
// new source after its database, or overrides the DSN of the only source.
func setSourceDSN(cfg *config.Config, dsn, name string) error {
	if name == "" {
		switch len(cfg.Sources) {
		case 0:
			derived, err := config.SourceNameFromDSN(dsn)
			if err != nil {
				return usageErrorf("--source: cannot name the source (%v): add --name NAME", err)
			}
			name = derived
		case 1:
			cfg.Sources[0].DSN = dsn
			return nil
		default:
			return usageErrorf("--source: %d sources are configured: add --name NAME to say "+
				"which one this DSN is for (or to add a new source)", len(cfg.Sources))
		}
	}
	for i := range cfg.Sources {
		if cfg.Sources[i].Name == name {
			cfg.Sources[i].DSN = dsn
			return nil
		}
	}
	cfg.Sources = append(cfg.Sources, config.SourceConfig{Name: name, DSN: dsn})
	return nil
}

// selectSources returns the configured sources named in names, or all of
// them when names is empty.
func selectSources(cfg config.Config, names []string) ([]config.SourceConfig, error) {
	if len(cfg.Sources) == 0 {
		return nil, errNoSource()
	}
	if len(names) == 0 {
		return cfg.Sources, nil
	}
	var out []config.SourceConfig
	for _, n := range names {
		s, ok := cfg.Source(n)
		if !ok {
			return nil, usageErrorf("--source %q: no such source in the configuration (configured: %s)",
				n, strings.Join(sourceNames(cfg.Sources), ", "))
		}
		out = append(out, s)
	}
	return out, nil
}

func sourceNames(sources []config.SourceConfig) []string {
	names := make([]string, len(sources))
	for i, s := range sources {
		names[i] = s.Name
	}
	return names
}

func errNoSource() error {
	return usageErrorf("no source configured: name the database to capture with " +
		"--source postgres://user:password@host:5432/dbname (pgtide up), set " +
		config.EnvSourceDSN + ", or list sources in a config file given with --config " +
		"(see docs/configuration.md)")
}
