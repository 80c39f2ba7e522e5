package config

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// redactMask replaces passwords in connection strings shown to people.
const redactMask = "xxxxx"

// dsnExamples is the advice appended to connection string errors.
const dsnExamples = `use a URL such as "postgres://user:password@host:5432/dbname" ` +
	`or keyword/value pairs such as "host=db.example.com port=5432 dbname=shop user=pgtide"`

// RedactedDSN returns s.DSN with the password, and any sslpassword,
// replaced by "xxxxx", for logs and messages. A connection string too
// malformed to tell where its password ends is masked generously.
func (s SourceConfig) RedactedDSN() string {
	r, _, _ := redactDSN(s.DSN)
	return r
}

// SourceNameFromDSN derives a source name from the database a connection
// string connects to (or, as PostgreSQL does, the user name when it names
// no database): lowercased, every character other than a-z, 0-9, '_' and
// '-' replaced by '_', prefixed with "db_" unless it starts with a letter,
// and cut to 32 characters. Like libpq, it falls back on the PGDATABASE
// and PGUSER environment variables. The error never contains a password.
func SourceNameFromDSN(dsn string) (string, error) {
	if dsn == "" {
		return "", errors.New("derive source name: empty connection string")
	}
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return "", fmt.Errorf("derive source name: %s", dsnParseProblem(dsn, err))
	}

	db := cfg.Database
	if db == "" {
		db = cfg.User
	}
	if db == "" {
		return "", errors.New("derive source name: the connection string names no database")
	}
	return sanitizeName(db), nil
}

// sanitizeName maps s to a valid source name as SourceNameFromDSN
// describes, or "" when s is empty.
func sanitizeName(s string) string {
	if s == "" {
		return ""
	}
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	name := b.String()
	if name[0] < 'a' || name[0] > 'z' {
		name = "db_" + name
	}
	if len(name) > 32 {
		name = name[:32]
	}
	return name
}

// checkDSN returns what is wrong with a connection string, or "". The
// message never contains the password.
func checkDSN(dsn string) string {
	_, err := pgconn.ParseConfig(dsn)
	if err == nil {
		return ""
	}
	msg := "not a valid connection string: " + dsnParseProblem(dsn, err)
	// The examples help when the syntax is wrong, not when one setting is.
	if strings.Contains(msg, "failed to parse as") || strings.Contains(msg, "cannot be parsed") {
		msg += ": " + dsnExamples
	}
	return msg
}

// dsnParseProblem describes a pgconn.ParseConfig error without the
// connection string and without any password: pgconn masks passwords on a
// best-effort basis only, so a message that still contains one of the
// secrets found by redactDSN is replaced by a shorter one.
func dsnParseProblem(dsn string, err error) string {
	if lower := strings.ToLower(dsn); !strings.HasPrefix(dsn, "postgres") &&
		(strings.HasPrefix(lower, "postgres://") || strings.HasPrefix(lower, "postgresql://")) {
		return "the scheme must be lowercase (postgres:// or postgresql://)"
	}

	var pce *pgconn.ParseConfigError
	if !errors.As(err, &pce) {
		return "it cannot be parsed"
	}
	bare := *pce
	bare.ConnString = ""
	full := strings.TrimPrefix(bare.Error(), "cannot parse ``: ")
	short := full
	if cause := errors.Unwrap(pce); cause != nil {
		short = strings.TrimSuffix(full, " ("+cause.Error()+")")
	}

	_, secrets, exact := redactDSN(dsn)
	leaks := func(s string) bool {
		for _, secret := range secrets {
			if secret != "" && strings.Contains(s, secret) {
				return true
			}
		}
		return false
	}
	switch {
	case exact && !leaks(full):
		return full
	case !leaks(short):
		return short
	default:
		return "it cannot be parsed"
	}
}

// redactDSN masks the passwords in a connection string. It returns the
// masked string, the secrets it masked (as written and decoded), and
// whether the masking is exact; it is not when the string is too malformed
// to tell where a password ends, and then masks more than needed.
func redactDSN(dsn string) (redacted string, secrets []string, exact bool) {
	lower := strings.ToLower(dsn)
	if strings.HasPrefix(lower, "postgres://") || strings.HasPrefix(lower, "postgresql://") {
		return redactURL(dsn)
	}
	return redactKeywordValue(dsn)
}

// redactURL masks the userinfo password and the password and sslpassword
// query parameters of a postgres:// URL.
func redactURL(dsn string) (string, []string, bool) {
	var secrets []string
	addSecret := func(raw string) {
		secrets = append(secrets, raw)
		if dec, err := url.PathUnescape(raw); err == nil && dec != raw {
			secrets = append(secrets, dec)
		}
	}

	i := strings.Index(dsn, "://") + len("://")
	prefix, rest := dsn[:i], dsn[i:]

	// libpq takes everything before the first '/' up to an '@' as userinfo.
	// Using the last such '@' keeps an unencoded '@' in a password masked.
	head := rest
	if slash := strings.IndexByte(rest, '/'); slash >= 0 {
		head = rest[:slash]
	}
	if at := strings.LastIndexByte(head, '@'); at >= 0 {
		user, pw, hasPW := strings.Cut(rest[:at], ":")
		if hasPW {
			addSecret(pw)
			prefix += user + ":" + redactMask + "@"
		} else {
			prefix += rest[:at+1]
		}
		rest = rest[at+1:]
	}

	// An '@' after a '/' or a non-numeric port means a password holding an
	// unencoded '/' or '?' spilled into the host and path: mask from the
	// first ':' to the last '@'.
	exact := true
	if at := strings.LastIndexByte(rest, '@'); at >= 0 && !urlTailUnambiguous(rest) {
		exact = false
		if colon := strings.IndexByte(rest[:at], ':'); colon >= 0 {
			addSecret(rest[colon+1 : at])
			prefix += rest[:colon] + ":" + redactMask + "@"
			rest = rest[at+1:]
		}
	}

	q := strings.IndexByte(rest, '?')
	if q < 0 {
		return prefix + rest, secrets, exact
	}
	pairs := strings.Split(rest[q+1:], "&")
	for j, pair := range pairs {
		key, val, ok := strings.Cut(pair, "=")
		if !ok {
			continue
		}
		if k, err := url.QueryUnescape(key); err == nil {
			key = k
		}
		if isPasswordKey(key) {
			addSecret(val)
			if dec, err := url.QueryUnescape(val); err == nil {
				secrets = append(secrets, dec)
			}
			pairs[j] = pair[:len(pair)-len(val)] + redactMask
		}
	}
	return prefix + rest[:q+1] + strings.Join(pairs, "&"), secrets, exact
}

// urlTailUnambiguous reports whether the part of a connection URL after
// its userinfo has a clear structure: no '@' before the query, and numeric
// ports only.
func urlTailUnambiguous(tail string) bool {
	beforeQuery, _, _ := strings.Cut(tail, "?")
	if strings.ContainsRune(beforeQuery, '@') {
		return false
	}
	hosts, _, _ := strings.Cut(beforeQuery, "/")
	for host := range strings.SplitSeq(hosts, ",") {
		port := ""
		if strings.HasPrefix(host, "[") {
			end := strings.IndexByte(host, ']')
			if end < 0 {
				return false
			}
			if after := host[end+1:]; after != "" {
				p, ok := strings.CutPrefix(after, ":")
				if !ok {
					return false
				}
				port = p
			}
		} else if _, p, ok := strings.Cut(host, ":"); ok {
			port = p
		}
		if strings.Trim(port, "0123456789") != "" {
			return false
		}
	}
	return true
}

// redactKeywordValue masks the password and sslpassword values of a
// keyword/value connection string, following the quoting rules libpq
// uses: a value is a run of non-space characters or a single-quoted
// string, with backslash escapes in both.
func redactKeywordValue(dsn string) (string, []string, bool) {
	var (
		b       strings.Builder
		secrets []string
	)
	s := dsn
	for {
		trimmed := strings.TrimLeft(s, " \t\n\r\v\f")
		b.WriteString(s[:len(s)-len(trimmed)])
		s = trimmed
		if s == "" {
			return b.String(), secrets, true
		}

		eq := strings.IndexByte(s, '=')
		if eq < 0 || strings.ContainsAny(strings.TrimRight(s[:eq], " \t\n\r\v\f"), " \t\n\r\v\f") {
			return b.String() + maskMalformed(s), secrets, false
		}
		key := strings.TrimRight(s[:eq], " \t\n\r\v\f")
		afterEq := strings.TrimLeft(s[eq+1:], " \t\n\r\v\f")
		b.WriteString(s[:len(s)-len(afterEq)])
		s = afterEq

		end, ok := keywordValueEnd(s)
		if !ok {
			// An unterminated quote runs to the end: mask it all.
			secrets = append(secrets, s)
			return b.String() + redactMask, secrets, false
		}
		if isPasswordKey(key) {
			raw := s[:end]
			secrets = append(secrets, raw, unescapeKeywordValue(strings.Trim(raw, "'")))
			b.WriteString(redactMask)
		} else {
			b.WriteString(s[:end])
		}
		s = s[end:]
	}
}

// keywordValueEnd returns the length of the value at the start of s, quotes
// included, and false for an unterminated quoted value.
func keywordValueEnd(s string) (int, bool) {
	if s == "" {
		return 0, true
	}
	if s[0] == '\'' {
		for i := 1; i < len(s); i++ {
			switch s[i] {
			case '\\':
				i++
			case '\'':
				return i + 1, true
			}
		}
		return len(s), false
	}
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case ' ', '\t', '\n', '\r', '\v', '\f':
			return i, true
		}
	}
	return len(s), true
}

func unescapeKeywordValue(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// maskMalformed masks a malformed keyword/value remainder: whatever
// follows its first '=' may be a value, so it is all masked.
func maskMalformed(s string) string {
	i := strings.IndexByte(s, '=')
	if i < 0 {
		return s
	}
	return s[:i+1] + redactMask
}

// isPasswordKey reports whether a connection string key holds a secret.
// The match ignores case, which libpq does not, to err on the safe side.
func isPasswordKey(key string) bool {
	return strings.EqualFold(key, "password") || strings.EqualFold(key, "sslpassword")
}
