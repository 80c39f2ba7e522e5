package config

import (
	"os"
	"strings"
)

// Environment variables read by [Config.ApplyEnv].
const (
	EnvDataDir       = "PGTIDE_DATA_DIR"
	EnvLogLevel      = "PGTIDE_LOG_LEVEL"
	EnvLogFormat     = "PGTIDE_LOG_FORMAT"
	EnvAdminListen   = "PGTIDE_ADMIN_LISTEN"
	EnvNATSURL       = "PGTIDE_NATS_URL"
	EnvNATSCredsFile = "PGTIDE_NATS_CREDS_FILE"
	EnvSourceDSN     = "PGTIDE_SOURCE_DSN"
	EnvSourceName    = "PGTIDE_SOURCE_NAME"
)

// ApplyEnv overrides fields with the PGTIDE_* environment variables read
// through lookup (nil means [os.LookupEnv]). A variable that is unset or
// empty changes nothing.
//
//	PGTIDE_DATA_DIR         data_dir
//	PGTIDE_LOG_LEVEL        log.level (any case)
//	PGTIDE_LOG_FORMAT       log.format (any case)
//	PGTIDE_ADMIN_LISTEN     admin.listen
//	PGTIDE_NATS_URL         nats.url
//	PGTIDE_NATS_CREDS_FILE  nats.creds_file
//	PGTIDE_SOURCE_DSN       dsn of one source
//	PGTIDE_SOURCE_NAME      name of that source
//
// PGTIDE_SOURCE_DSN sets the DSN of the source named PGTIDE_SOURCE_NAME,
// adding that source when there is none. Without PGTIDE_SOURCE_NAME it sets
// the DSN of the only source, or, when there is no source, adds one named
// by [SourceNameFromDSN]; with several sources PGTIDE_SOURCE_NAME is
// required.
//
// A bad value is not applied; ApplyEnv goes on with the other variables
// and returns a [*ValidationError] whose paths read "env PGTIDE_X".
func (c *Config) ApplyEnv(lookup func(string) (string, bool)) error {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	get := func(name string) (string, bool) {
		v, ok := lookup(name)
		return v, ok && v != ""
	}
	var p problems

	if v, ok := get(EnvDataDir); ok {
		c.DataDir = v
	}
	if v, ok := get(EnvLogLevel); ok {
		applyChecked(&p, EnvLogLevel, &c.Log.Level, strings.ToLower(v), checkLogLevel)
	}
	if v, ok := get(EnvLogFormat); ok {
		applyChecked(&p, EnvLogFormat, &c.Log.Format, strings.ToLower(v), checkLogFormat)
	}
	if v, ok := get(EnvAdminListen); ok {
		applyChecked(&p, EnvAdminListen, &c.Admin.Listen, v, func(v string) string {
			return checkListen(v, DefaultAdminListen, "the admin server")
		})
	}
	if v, ok := get(EnvNATSURL); ok {
		applyChecked(&p, EnvNATSURL, &c.NATS.URL, v, checkNATSURL)
	}
	if v, ok := get(EnvNATSCredsFile); ok {
		c.NATS.CredsFile = v
	}

	dsn, hasDSN := get(EnvSourceDSN)
	name, hasName := get(EnvSourceName)
	switch {
	case hasDSN:
		c.applyEnvSource(&p, dsn, name, hasName)
	case hasName:
		p.add("env "+EnvSourceName, "is set without %s: set %s to the connection string "+
			"of the source it names", EnvSourceDSN, EnvSourceDSN)
	}

	return p.err("")
}

// applyChecked sets *field to v when check finds no problem.
func applyChecked(p *problems, env string, field *string, v string, check func(string) string) {
	if msg := check(v); msg != "" {
		p.add("env "+env, "%s", msg)
		return
	}
	*field = v
}

// applyEnvSource applies PGTIDE_SOURCE_DSN and PGTIDE_SOURCE_NAME.
func (c *Config) applyEnvSource(p *problems, dsn, name string, hasName bool) {
	if msg := checkDSN(dsn); msg != "" {
		p.add("env "+EnvSourceDSN, "%s", msg)
		return
	}

	if hasName {
		if !validSourceName(name) {
			p.add("env "+EnvSourceName, "%s", badSourceName(name))
			return
		}
		c.setSourceDSN(name, dsn)
		return
	}

	switch len(c.Sources) {
	case 0:
		derived, err := SourceNameFromDSN(dsn)
		if err != nil {
			p.add("env "+EnvSourceDSN, "cannot name the source (%v): set %s", err, EnvSourceName)
			return
		}
		c.setSourceDSN(derived, dsn)
	case 1:
		c.Sources[0].DSN = dsn
	default:
		p.add("env "+EnvSourceDSN, "%d sources are configured: set %s to the name of the one "+
			"this DSN is for (or of a new source)", len(c.Sources), EnvSourceName)
	}
}

// setSourceDSN sets the DSN of the source called name, adding the source
// when there is none.
func (c *Config) setSourceDSN(name, dsn string) {
	for i := range c.Sources {
		if c.Sources[i].Name == name {
			c.Sources[i].DSN = dsn
			return
		}
	}
	c.Sources = append(c.Sources, SourceConfig{Name: name, DSN: dsn})
}
