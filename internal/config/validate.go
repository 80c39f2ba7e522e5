package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

var (
	sourceNameRE  = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)
	slotNameRE    = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)
	publicationRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,49}$`)
)

var (
	logLevels  = []string{"debug", "info", "warn", "error"}
	logFormats = []string{"text", "json"}
	natsScheme = []string{"nats", "tls", "ws", "wss"}
)

// Validate checks every field and returns nil or a [*ValidationError]
// listing all problems, each with the key path, what is wrong and what
// would be right. Validate does not apply defaults and does not change c;
// an empty field that has a default is reported, so call
// [Config.ApplyDefaults] first. An empty Sources list is valid.
func (c *Config) Validate() error {
	var p problems
	c.validate(&p)
	return p.err("")
}

func (c *Config) validate(p *problems) {
	if c.DataDir == "" {
		p.add("data_dir", "must not be empty: give a directory such as %q", DefaultDataDir)
	}
	if msg := checkLogLevel(c.Log.Level); msg != "" {
		p.add("log.level", "%s", msg)
	}
	if msg := checkLogFormat(c.Log.Format); msg != "" {
		p.add("log.format", "%s", msg)
	}
	if msg := checkListen(c.Admin.Listen, DefaultAdminListen, "the admin server"); msg != "" {
		p.add("admin.listen", "%s", msg)
	}

	c.NATS.validate(p)

	c.validateSources(p)
	c.validateReplicas(p)

	c.Gateway.validate(p)

	c.Proxy.validate(p)
	c.validateDatasets(p)
}

func (n *NATSConfig) validate(p *problems) {
	if msg := checkNATSURL(n.URL); msg != "" {
		p.add("nats.url", "%s", msg)
	}
	if n.CredsFile != "" && !n.External() {
		p.add("nats.creds_file", "is set but nats.url is empty, and the embedded server "+
			"takes no credentials: set nats.url or remove creds_file")
	}

	switch {
	case n.Replicas < 1 || n.Replicas > 5:
		p.add("nats.replicas", "%d is out of range: use 1 to 5", n.Replicas)
	case n.Replicas > 1 && !n.External():
		p.add("nats.replicas", "%d needs an external NATS cluster (nats.url): "+
			"the embedded server keeps 1 replica, so use 1", n.Replicas)
	}
	if n.ConfirmDelay < 0 {
		p.add("nats.confirm_delay", "%s is negative: use 0 or more", n.ConfirmDelay)
	}

	e := &n.Embedded
	const listener = "the embedded server's client listener"
	if msg := checkListen(e.Listen, DefaultEmbeddedListen, listener); msg != "" {
		p.add("nats.embedded.listen", "%s", msg)
	}
	switch {
	case e.SyncInterval <= 0:
		p.add("nats.embedded.sync_interval", "must be more than 0 (got %s): use e.g. %q",
			e.SyncInterval, DefaultSyncInterval)
	case time.Duration(e.SyncInterval) > 2*time.Minute:
		p.add("nats.embedded.sync_interval", "%s is too long: use at most 2m", e.SyncInterval)
	}
	if e.MaxPayload < MiB || e.MaxPayload > 64*MiB {
		p.add("nats.embedded.max_payload", "%s is out of range: use 1MiB to 64MiB", e.MaxPayload)
	}
}

func (c *Config) validateSources(p *problems) {
	// First index of each name, slot and publication, to report
	// duplicates against the source that used it first.
	names := map[string]int{}
	slots := map[string]int{}
	pubs := map[string]int{}

	for i := range c.Sources {
		s := &c.Sources[i]
		path := fmt.Sprintf("sources[%d]", i)
		s.validate(p, path)

		if j, ok := names[s.Name]; ok && s.Name != "" {
			p.add(path+".name", "%q is already the name of sources[%d]: source names must be unique",
				s.Name, j)
		} else if !ok {
			names[s.Name] = i
		}
		if j, ok := slots[s.Slot]; ok && s.Slot != "" {
			p.add(path+".slot", "%q is also the slot of sources[%d]: give each source its own slot",
				s.Slot, j)
		} else if !ok {
			slots[s.Slot] = i
		}
		if j, ok := pubs[s.Publication]; ok && s.Publication != "" {
			p.add(path+".publication", "%q is also the publication of sources[%d]: "+
				"give each source its own publication", s.Publication, j)
		} else if !ok {
			pubs[s.Publication] = i
		}
	}
}

func (s *SourceConfig) validate(p *problems, path string) {
	at := func(key string) string { return path + "." + key }

	switch {
	case s.Name == "":
		p.add(at("name"), "missing: every source needs a unique name, e.g. %q", s.suggestedName())
	case !validSourceName(s.Name):
		p.add(at("name"), "%s", badSourceName(s.Name))
	}

	if s.DSN == "" {
		p.add(at("dsn"), "missing: give the connection string of the source database, "+
			"e.g. %q", "postgres://pgtide@db.example.com:5432/shop")
	} else if msg := checkDSN(s.DSN); msg != "" {
		p.add(at("dsn"), "%s", msg)
	}

	s.validateTables(p, path)

	// An empty slot or publication with an invalid name is left alone: the
	// name's error explains it and derives the default once fixed.
	if s.Slot != "" || validSourceName(s.Name) {
		if !slotNameRE.MatchString(s.Slot) {
			p.add(at("slot"), "%s is not a valid replication slot name: "+
				"use 1-63 lowercase letters, digits and '_', e.g. %q",
				quote(s.Slot), s.defaultObjectName())
		}
	}
	if s.Publication != "" || validSourceName(s.Name) {
		if !publicationRE.MatchString(s.Publication) {
			p.add(at("publication"), "%s is not a valid publication name: "+
				"use 1-50 lowercase letters, digits and '_', not starting with a digit, e.g. %q",
				quote(s.Publication), s.defaultObjectName())
		}
	}

	if s.Keyless != KeylessSkip && s.Keyless != KeylessFull {
		p.add(at("keyless"), "%s is not a keyless mode: use %q (tables without a key "+
			"publish only INSERT and TRUNCATE) or %q (set REPLICA IDENTITY FULL on them)",
			quote(s.Keyless), KeylessSkip, KeylessFull)
	}

	switch hb := time.Duration(s.HeartbeatInterval); {
	case hb < 0:
		p.add(at("heartbeat_interval"), "%s is negative: use at least 1s, or \"off\"", hb)
	case hb > 0 && hb < time.Second:
		p.add(at("heartbeat_interval"),
			"%s is too short: use at least 1s, or \"off\" to disable heartbeats", hb)
	}
	if s.MaxRetainedWAL < 0 {
		p.add(at("max_retained_wal"),
			"%d is negative: use a size such as \"16GiB\", or 0 for no alert", s.MaxRetainedWAL)
	}
	switch si := time.Duration(s.StatusInterval); {
	case si <= 0:
		p.add(at("status_interval"), "must be more than 0 (got %s): use e.g. %q",
			si, DefaultStatusInterval)
	case si > 30*time.Second:
		p.add(at("status_interval"), "%s is too long: use at most 30s, well under the server's "+
			"wal_sender_timeout (60s by default)", si)
	}

	if s.Retention.MaxAge < 0 {
		p.add(at("retention.max_age"),
			"%s is negative: use a duration such as \"168h\", or 0 to keep changes forever",
			s.Retention.MaxAge)
	}
	if b := s.Retention.MaxBytes; b < 0 || (b > 0 && b < MiB) {
		p.add(at("retention.max_bytes"), "%s is out of range: use 0 (no cap) or at least 1MiB", b)
	}

	if s.Snapshot != SnapshotOff && s.Snapshot != SnapshotInitial {
		p.add(at("snapshot"), "%s is not a snapshot mode: use %q (copy existing rows first) or %q",
			quote(s.Snapshot), SnapshotInitial, SnapshotOff)
	}
	if s.SnapshotWorkers < 1 || s.SnapshotWorkers > 32 {
		p.add(at("snapshot_workers"), "%d is out of range: use 1 to 32", s.SnapshotWorkers)
	}
	if s.SnapshotChunkRows < 1000 {
		p.add(at("snapshot_chunk_rows"), "%d is too small: use at least 1000", s.SnapshotChunkRows)
	}
	if s.SnapshotRowsPerSecond < 0 {
		p.add(at("snapshot_rows_per_second"), "%d is negative: use 0 for no limit", s.SnapshotRowsPerSecond)
	}
}

// defaultObjectName is the default slot and publication name of s, or an
// example when s has no valid name.
func (s *SourceConfig) defaultObjectName() string {
	if validSourceName(s.Name) {
		return defaultObjectName(s.Name)
	}
	return defaultObjectName("shop")
}

// suggestedName proposes a name for a source that has none: the database
// name of its DSN when that works, else "shop".
func (s *SourceConfig) suggestedName() string {
	if s.DSN != "" {
		if n, err := SourceNameFromDSN(s.DSN); err == nil {
			return n
		}
	}
	return "shop"
}

func validSourceName(name string) bool {
	return sourceNameRE.MatchString(name)
}

// badSourceName explains why name is not a valid source name and proposes
// one derived from it.
func badSourceName(name string) string {
	suggestion := sanitizeName(name)
	if suggestion == "" {
		suggestion = "shop"
	}
	return fmt.Sprintf("%s is not a valid source name: use lowercase letters, digits, '_' and '-' "+
		"(1-32 chars, starting with a letter), e.g. %q", quote(name), suggestion)
}

func checkLogLevel(v string) string {
	if slices.Contains(logLevels, v) {
		return ""
	}
	return fmt.Sprintf("%s is not a log level: use %s", quote(v), joinWords(logLevels, "or"))
}

func checkLogFormat(v string) string {
	if slices.Contains(logFormats, v) {
		return ""
	}
	return fmt.Sprintf("%s is not a log format: use %s", quote(v), joinWords(logFormats, "or"))
}

// checkListen checks a listen address: host:port or "off". what names the
// listener for the message; example is a valid address.
func checkListen(v, example, what string) string {
	if v == Off {
		return ""
	}
	if v == "" {
		return fmt.Sprintf("must not be empty: give host:port such as %q, or %q to disable %s",
			example, Off, what)
	}

	host, port, err := net.SplitHostPort(v)
	if err != nil {
		_, examplePort, _ := net.SplitHostPort(example)
		return fmt.Sprintf("%s is not host:port: write e.g. %q, %q (every interface) "+
			"or %q to disable %s", quote(v), example, ":"+examplePort, Off, what)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || port != strconv.FormatUint(n, 10) {
		return fmt.Sprintf("port %s is not a number from 0 to 65535 (0 picks a free port)", quote(port))
	}
	if strings.ContainsAny(host, " \t/@") {
		return fmt.Sprintf("host %s is not a host name or IP address", quote(host))
	}
	return ""
}

// checkNATSURL checks the nats.url value: empty, or a comma-separated list
// of server URLs. Messages show URLs with their password masked.
func checkNATSURL(v string) string {
	if v == "" {
		return ""
	}

	const example = "nats://nats.example.com:4222"
	entries := strings.Split(v, ",")
	for i, raw := range entries {
		which := "the URL"
		if len(entries) > 1 {
			which = fmt.Sprintf("entry %d", i+1)
		}

		raw = strings.TrimSpace(raw)
		if raw == "" {
			return fmt.Sprintf("%s is empty: separate server URLs with single commas, e.g. %q",
				which, example+",nats://nats2.example.com:4222")
		}
		// The url package quotes the input in its errors, password
		// included, so its message is not repeated.
		u, err := url.Parse(raw)
		if err != nil {
			return fmt.Sprintf("%s cannot be parsed as a URL: write e.g. %q", which, example)
		}
		if u.Opaque != "" || u.Hostname() == "" || !strings.Contains(raw, "://") {
			return fmt.Sprintf("%s (%s) is not a server URL: write e.g. %q",
				which, quote(u.Redacted()), example)
		}
		if !slices.Contains(natsScheme, u.Scheme) {
			return fmt.Sprintf("%s (%s) has scheme %q: use nats://, tls://, ws:// or wss://",
				which, quote(u.Redacted()), u.Scheme)
		}
	}
	return ""
}
