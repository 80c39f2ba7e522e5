package pgtest

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// maxSocketPath is the longest Unix socket path Linux accepts: sun_path
// holds 108 bytes including the terminating NUL.
const maxSocketPath = 107

// socketFileName is the name of the longest socket file the server can
// create in its socket directory (the port has at most five digits).
const socketFileName = ".s.PGSQL.65535"

// defaultSettings returns the postgresql.conf settings every cluster
// starts with; [Options.Settings] override them.
func defaultSettings(port int, socketDir string) map[string]string {
	return map[string]string{
		"listen_addresses":        "127.0.0.1",
		"port":                    strconv.Itoa(port),
		"unix_socket_directories": socketDir,
		"wal_level":               "logical",
		"max_wal_senders":         "20",
		"max_replication_slots":   "20",
		"fsync":                   "off",
		"synchronous_commit":      "off",
		"full_page_writes":        "off",
		"shared_buffers":          "128MB",
		"max_connections":         "100",
		"log_min_messages":        "warning",
		// pg_ctl -l redirects the server's stderr into the log file; the
		// collector would write somewhere else.
		"logging_collector": "off",
	}
}

// mergeSettings returns the defaults overridden by the caller's settings.
func mergeSettings(defaults, overrides map[string]string) map[string]string {
	merged := maps.Clone(defaults)
	maps.Copy(merged, overrides)

	return merged
}

// renderSettings formats settings as postgresql.conf lines, sorted by name
// so that the file is stable. Every value is quoted, which the file format
// accepts for numbers, booleans and strings alike.
//
// See https://www.postgresql.org/docs/current/config-setting.html#CONFIG-SETTING-CONFIGURATION-FILE
func renderSettings(settings map[string]string) (string, error) {
	var b strings.Builder
	b.WriteString("\n# Added by pgtide internal/pgtest.\n")

	for _, name := range slices.Sorted(maps.Keys(settings)) {
		if !validSettingName(name) {
			return "", fmt.Errorf("pgtest: invalid setting name %q", name)
		}

		value := settings[name]
		if strings.ContainsAny(value, "\n\r\x00") {
			return "", fmt.Errorf("pgtest: setting %s: value contains a line break or NUL", name)
		}

		fmt.Fprintf(&b, "%s = %s\n", name, quoteSetting(value))
	}

	return b.String(), nil
}

// quoteSetting quotes a value for postgresql.conf. The configuration file
// lexer treats a backslash as an escape character inside quotes, and a
// doubled single quote as a literal quote.
func quoteSetting(v string) string {
	v = strings.ReplaceAll(v, `\`, `\\`)
	v = strings.ReplaceAll(v, `'`, `''`)

	return "'" + v + "'"
}

// validSettingName accepts parameter names, including the dotted names of
// extension parameters (e.g. "pg_stat_statements.max").
func validSettingName(name string) bool {
	if name == "" {
		return false
	}

	for _, r := range name {
		ok := r == '_' || r == '.' ||
			('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9')
		if !ok {
			return false
		}
	}

	return true
}

// firstSocketDir returns the first directory of an
// unix_socket_directories value, "" when the list is empty.
func firstSocketDir(value string) string {
	first, _, _ := strings.Cut(value, ",")

	return strings.TrimSpace(first)
}
