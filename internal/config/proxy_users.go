package config

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"unicode"

	"github.com/pgtide/pgtide/internal/proxy/scram"
)

// Prefixes of a proxy user's value that reference its secret instead of
// holding it.
const (
	// SecretEnvPrefix reads the secret from an environment variable:
	// "env:ALICE_PASSWORD".
	SecretEnvPrefix = "env:"

	// SecretFilePrefix reads the secret from a file, such as a mounted
	// Docker or Kubernetes secret: "file:/run/secrets/alice".
	SecretFilePrefix = "file:"
)

// MaxSecretFileSize bounds the size of a secret file: it holds one
// password or verifier.
const MaxSecretFileSize = 64 * KiB

var (
	// envNameRE is a portable environment variable name.
	envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

	// md5HashRE is PostgreSQL's MD5 password hash.
	md5HashRE = regexp.MustCompile(`^md5[0-9a-f]{32}$`)
)

// validateUsers checks the proxy users. Messages never show a secret.
func (x *ProxyConfig) validateUsers(p *problems) {
	for _, name := range slices.Sorted(maps.Keys(x.Users)) {
		validateUser(p, name, x.Users[name], x.userSources[name])
	}
}

// validateUser checks one proxy user. source is where its secret was read
// from ("environment variable X", "file F"), or "" when the secret is the
// value as written, which may then be a reference.
func validateUser(p *problems, name, secret, source string) {
	path := "proxy.users." + name
	if name == "" || len(name) > 63 || strings.IndexFunc(name, unicode.IsControl) >= 0 ||
		strings.ContainsAny(name, " \t@") {
		p.add("proxy.users", "user name %s is not valid: use 1 to 63 characters without spaces, "+
			"'@' or control characters", quote(name))
		return
	}

	from := ""
	if source != "" {
		from = " (read from " + source + ")"
	}

	if source == "" {
		if ref, ok := strings.CutPrefix(secret, SecretEnvPrefix); ok {
			if !envNameRE.MatchString(ref) {
				p.add(path, "%s is not an environment variable name: write %s followed by "+
					"letters, digits and '_', e.g. %q",
					quote(ref), SecretEnvPrefix, SecretEnvPrefix+"ANN_PASSWORD")
			}
			return
		}
		if ref, ok := strings.CutPrefix(secret, SecretFilePrefix); ok {
			if ref == "" || strings.ContainsRune(ref, 0) {
				p.add(path, "names no file: write %s followed by the path of the file holding the "+
					"secret, e.g. %q", SecretFilePrefix, SecretFilePrefix+"/run/secrets/ann")
			}
			return
		}
	}

	switch {
	case secret == "":
		p.add(path, "has no password: give a password, a SCRAM-SHA-256 verifier "+
			"(\"SCRAM-SHA-256$4096:...\"), or a reference to one (%q or %q)",
			SecretEnvPrefix+"VAR", SecretFilePrefix+"/path")
	case strings.HasPrefix(secret, scram.Mechanism+"$"):
		if _, err := scram.ParseVerifier(secret); err != nil {
			// The parse error may quote parts of the verifier; it is
			// not repeated.
			p.add(path, "is not a valid SCRAM-SHA-256 verifier: use the form of "+
				"pg_authid.rolpassword, \"SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>\"%s", from)
		}
	case md5HashRE.MatchString(secret):
		p.add(path, "looks like an MD5 password hash, which SCRAM cannot use: "+
			"give a SCRAM-SHA-256 verifier or the password%s", from)
	case strings.HasPrefix(strings.ToUpper(secret), "SCRAM-"):
		p.add(path, "looks like a verifier of another mechanism: give a SCRAM-SHA-256 verifier "+
			"(\"SCRAM-SHA-256$4096:...\") or the password%s", from)
	}
}

// resolveUsers replaces the proxy users' references ("env:VAR",
// "file:PATH") by the secrets they name, reading variables through
// lookup. A reference that cannot be resolved is reported, with its file
// line, and left as it is; one that is malformed is left to validation.
func (d *document) resolveUsers(p *problems, lookup func(string) (string, bool)) {
	x := &d.cfg.Proxy
	for _, name := range slices.Sorted(maps.Keys(x.Users)) {
		path := "proxy.users." + name
		secret, source, err := resolveSecret(x.Users[name], lookup)
		switch {
		case err != nil:
			p.addLine(path, d.lineOf(path), "%v", err)
		case source != "":
			if x.userSources == nil {
				x.userSources = map[string]string{}
			}
			x.Users[name] = secret
			x.userSources[name] = source
		}
	}
}

// resolveSecret returns the secret value references and a description of
// where it was read from, or value itself and "" when value is no
// well-formed reference. Errors never hold the secret.
func resolveSecret(value string, lookup func(string) (string, bool)) (secret, source string, err error) {
	if name, ok := strings.CutPrefix(value, SecretEnvPrefix); ok && envNameRE.MatchString(name) {
		v, set := lookup(name)
		switch {
		case !set:
			return "", "", fmt.Errorf("reads its secret from environment variable %s, which is not set: "+
				"set it to the password or SCRAM-SHA-256 verifier", name)
		case v == "":
			return "", "", fmt.Errorf("reads its secret from environment variable %s, which is empty: "+
				"set it to the password or SCRAM-SHA-256 verifier", name)
		}
		return v, "environment variable " + name, nil
	}

	path, ok := strings.CutPrefix(value, SecretFilePrefix)
	if ok && path != "" && !strings.ContainsRune(path, 0) {
		v, err := readSecretFile(path)
		if err != nil {
			return "", "", err
		}
		return v, "file " + path, nil
	}

	return value, "", nil
}

// readSecretFile reads a secret file, without its trailing line breaks.
func readSecretFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("cannot read the secret file: %w", err)
	}
	defer f.Close()

	b, err := io.ReadAll(io.LimitReader(f, int64(MaxSecretFileSize)+1))
	switch {
	case err != nil:
		return "", fmt.Errorf("cannot read the secret file: %w", err)
	case int64(len(b)) > int64(MaxSecretFileSize):
		return "", fmt.Errorf("the secret file %s is larger than %s: it should hold one password "+
			"or SCRAM-SHA-256 verifier", path, MaxSecretFileSize)
	}

	secret := strings.TrimRight(string(b), "\r\n")
	if secret == "" {
		return "", errors.New("the secret file " + path + " is empty: write the password or " +
			"SCRAM-SHA-256 verifier into it")
	}
	return secret, nil
}
