package config

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
)

var (
	// datasetNameRE is what a dataset name may be: clients write it as
	// their database name, and "@" separates a snapshot from it.
	datasetNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

	// identRE is an SQL identifier that needs no quoting (any case).
	identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]{0,62}$`)

	// settingRE is a server parameter name, custom ones ("auto_explain.x")
	// included.
	settingRE = regexp.MustCompile(`^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$`)
)

// maskMethods lists the values of MaskRule.Method.
var maskMethods = []string{MaskHash, MaskSHA256, MaskFixed, MaskNull, MaskEmail}

// driverSettings are server parameters pgtide sets itself for every
// instance, so that it can reach and manage it.
var driverSettings = []string{
	"listen_addresses", "port", "unix_socket_directories", "unix_socket_permissions",
	"unix_socket_group", "data_directory", "config_file", "hba_file", "ident_file",
	"external_pid_file",
}

func (x *ProxyConfig) validate(p *problems) {
	if msg := checkListen(x.Listen, DefaultProxyListen, "the proxy"); msg != "" {
		p.add("proxy.listen", "%s", msg)
	}
	switch {
	case x.TLSCert != "" && x.TLSKey == "":
		p.add("proxy.tls_key", "missing: proxy.tls_cert is set, give the path of its private key too")
	case x.TLSCert == "" && x.TLSKey != "":
		p.add("proxy.tls_cert", "missing: proxy.tls_key is set, give the path of its certificate too")
	}

	x.validateUsers(p)

	switch bt := x.BootTimeout; {
	case bt <= 0:
		p.add("proxy.boot_timeout", "must be more than 0 (got %s): use e.g. %q", bt, DefaultBootTimeout)
	case time.Duration(bt) > time.Hour:
		p.add("proxy.boot_timeout", "%s is too long: use at most 1h", bt)
	}
	if ht := time.Duration(x.HandshakeTimeout); ht < time.Second || ht > 5*time.Minute {
		p.add("proxy.handshake_timeout", "%s is out of range: use 1s to 5m", x.HandshakeTimeout)
	}
	if n := x.MaxConnections; n < 1 || n > 100000 {
		p.add("proxy.max_connections", "%d is out of range: use 1 to 100000", n)
	}
	if x.MaxUserConnections < 0 {
		p.add("proxy.max_user_connections", "%d is negative: use 0 for no cap", x.MaxUserConnections)
	}
	switch x.Relay {
	case "auto", "kernel", "process":
		if x.Relay == "kernel" && x.Audit {
			p.add("proxy.relay", `"kernel" cannot audit statements (proxy.audit is on): use "auto" or "process"`)
		}
	default:
		p.add("proxy.relay", `%q is not a relay mode: use "auto", "kernel" or "process"`, x.Relay)
	}

	in := &x.Instances
	if in.Max < 1 || in.Max > 1000 {
		p.add("proxy.instances.max", "%d is out of range: use 1 to 1000", in.Max)
	}
	switch in.Clone {
	case "auto", "overlay", "copy":
	default:
		p.add("proxy.instances.clone", `%q is not a clone mode: use "auto", "overlay" or "copy"`, in.Clone)
	}
	if in.MaxPerUser < 0 {
		p.add("proxy.instances.max_per_user", "%d is negative: use 0 for no cap", in.MaxPerUser)
	}
	switch {
	case in.Warm < 0 || in.Warm > 32:
		p.add("proxy.instances.warm", "%d is out of range: use 0 (off) to 32", in.Warm)
	case in.Warm > in.Max && in.Max >= 1:
		p.add("proxy.instances.warm", "%d is more than proxy.instances.max (%d): warm instances count "+
			"against it, so lower warm or raise max", in.Warm, in.Max)
	}
	if in.Memory != 0 && in.Memory < MinInstanceMemory {
		p.add("proxy.instances.memory", "%s is too small for a PostgreSQL instance: "+
			"use at least %s, or 0 for no limit", in.Memory, MinInstanceMemory)
	}
	if time.Duration(in.IdleTimeout) < time.Second {
		p.add("proxy.instances.idle_timeout", "%s is too short: use at least 1s, e.g. %q",
			in.IdleTimeout, DefaultIdleTimeout)
	}
	for _, name := range slices.Sorted(maps.Keys(in.Settings)) {
		path := "proxy.instances.settings." + name
		switch {
		case !settingRE.MatchString(name):
			p.add(path, "%s is not a server parameter name: use lowercase letters, digits and '_', "+
				"such as \"shared_buffers\"", quote(name))
		case slices.Contains(driverSettings, name):
			p.add(path, "is set by pgtide for every instance, so that it can reach and manage it: "+
				"remove it")
		case strings.ContainsAny(in.Settings[name], "\x00\n\r"):
			p.add(path, "the value holds a line break or NUL byte: give it on one line")
		}
	}
}

func (c *Config) validateDatasets(p *problems) {
	for _, name := range slices.Sorted(maps.Keys(c.Datasets)) {
		d := c.Datasets[name]
		d.validate(p, name)
	}
}

func (d *DatasetConfig) validate(p *problems, name string) {
	path := "datasets." + name
	at := func(key string) string { return path + "." + key }

	if !datasetNameRE.MatchString(name) {
		p.add(path, "%s is not a valid dataset name: use 1-63 letters, digits and '_', "+
			"not starting with a digit (clients write it as their database name)", quote(name))
	}

	if d.Source == "" {
		p.add(at("source"), "missing: give the connection string of the server to copy, "+
			"e.g. %q (its user needs the REPLICATION attribute)", "postgres://pgtide@replica:5432/shop")
	} else if msg := checkDSN(d.Source); msg != "" {
		p.add(at("source"), "%s", msg)
	}
	if d.Live != "" {
		if msg := checkDSN(d.Live); msg != "" {
			p.add(at("live"), "%s", msg)
		}
	}

	if d.Database == "" || len(d.Database) > 63 || strings.ContainsRune(d.Database, 0) {
		p.add(at("database"), "%s is not a database name: use 1 to 63 bytes, e.g. %q",
			quote(d.Database), name)
	}
	if !identRE.MatchString(d.Superuser) {
		p.add(at("superuser"), "%s is not a role name: use letters, digits and '_', e.g. %q",
			quote(d.Superuser), DefaultDatasetSuperuser)
	}
	if !identRE.MatchString(d.Role) {
		p.add(at("role"), "%s is not a role name: use letters, digits and '_', e.g. %q",
			quote(d.Role), DefaultDatasetRole)
	}

	if d.Keep < 1 || d.Keep > 1000 {
		p.add(at("keep"), "%d is out of range: use 1 to 1000", d.Keep)
	}
	if s := d.Schedule; s > 0 && time.Duration(s) < time.Minute {
		p.add(at("schedule"), "%s is too short: use at least 1m, or \"off\" to take snapshots "+
			"only with `pgtide snapshot create`", s)
	}

	for i, r := range d.Rules {
		r.validate(p, fmt.Sprintf("%s.rules[%d]", path, i))
	}
	checkScripts(p, at("scripts"), d.Scripts)
	checkScripts(p, at("startup_scripts"), d.StartupScripts)
}

func (r *MaskRule) validate(p *problems, path string) {
	at := func(key string) string { return path + "." + key }

	if r.Table == "" {
		p.add(at("table"), "missing: name the table, as \"table\" (schema public) or \"schema.table\"")
	} else {
		parts := strings.Split(r.Table, ".")
		if len(parts) > 2 || !identRE.MatchString(parts[0]) ||
			(len(parts) == 2 && !identRE.MatchString(parts[1])) {
			p.add(at("table"), "%s is not a table name: use \"table\" or \"schema.table\" "+
				"with letters, digits and '_'", quote(r.Table))
		}
	}
	if r.Column == "" {
		p.add(at("column"), "missing: name the column to mask")
	} else if !identRE.MatchString(r.Column) {
		p.add(at("column"), "%s is not a column name: use letters, digits and '_'", quote(r.Column))
	}

	switch {
	case r.Method == "":
		p.add(at("method"), "missing: use %s", joinWords(maskMethods, "or"))
	case !slices.Contains(maskMethods, r.Method):
		p.add(at("method"), "%s is not a masking method: use %s", quote(r.Method),
			joinWords(maskMethods, "or"))
	}
	if r.Value != "" && r.Method != MaskFixed {
		p.add(at("value"), "is only used by method %q: remove it or change the method", MaskFixed)
	}
	if r.Key != "" {
		switch {
		case r.Method != MaskEmail:
			p.add(at("key"), "is only used by method %q: remove it or change the method", MaskEmail)
		case !identRE.MatchString(r.Key):
			p.add(at("key"), "%s is not a column name: use letters, digits and '_'", quote(r.Key))
		}
	}
}

// checkScripts rejects blank SQL scripts, which are most likely a YAML
// mistake.
func checkScripts(p *problems, path string, scripts []string) {
	for i, s := range scripts {
		if strings.TrimSpace(s) == "" {
			p.add(fmt.Sprintf("%s[%d]", path, i), "is empty: give SQL or remove the entry")
		}
	}
}
