package config

import (
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"regexp"
	"strings"
	"time"
)

var (
	// tokenNameRE is what a gateway token name may be; it appears in logs
	// and metric labels.
	tokenNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

	// groupNameRE is a consumer group name, as the gateway accepts it.
	groupNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
)

// minHS256Secret is the shortest HS256 secret accepted: RFC 7518 section
// 3.2 asks for a key at least as long as the hash output (256 bits).
const minHS256Secret = 32

// hashTokenHint says how to make a token digest.
const hashTokenHint = `printf %s "$TOKEN" | sha256sum, or pgtide gateway hash-token`

func (g *GatewayConfig) validate(p *problems) {
	if g.Listen != "" {
		if msg := checkListen(g.Listen, DefaultGatewayListen, "the gateway in `pgtide up`"); msg != "" {
			p.add("gateway.listen", "%s", msg)
		} else if g.Listen != Off && !LoopbackListen(g.Listen) && !g.AuthEnabled() {
			p.add("gateway.listen", "%s accepts connections from other machines, but the gateway "+
				"has no authentication: add gateway.tokens or gateway.jwt, or listen on "+
				"loopback (e.g. %q)", quote(g.Listen), DefaultGatewayListen)
		}
	}
	switch {
	case g.TLSCert != "" && g.TLSKey == "":
		p.add("gateway.tls_key", "missing: gateway.tls_cert is set, give the path of its private key too")
	case g.TLSCert == "" && g.TLSKey != "":
		p.add("gateway.tls_cert", "missing: gateway.tls_key is set, give the path of its certificate too")
	case g.TLSCert != "" && g.Listen == "":
		p.add("gateway.tls_cert", "applies to the gateway's own listener, but gateway.listen is empty "+
			"(the gateway shares the admin listener): set gateway.listen, or remove tls_cert and tls_key")
	}

	names := map[string]int{}
	for i := range g.Tokens {
		path := fmt.Sprintf("gateway.tokens[%d]", i)
		g.Tokens[i].validate(p, path)
		name := g.Tokens[i].Name
		if j, dup := names[name]; dup && name != "" {
			p.add(path+".name", "%q is already the name of gateway.tokens[%d]: token names must be unique",
				name, j)
		} else if !dup {
			names[name] = i
		}
	}
	g.JWT.validate(p)

	for i, o := range g.CORSOrigins {
		if o != "*" && !strings.HasPrefix(o, "http://") && !strings.HasPrefix(o, "https://") {
			p.add(fmt.Sprintf("gateway.cors_origins[%d]", i), "%s is not an origin: write "+
				"\"https://app.example.com\" (scheme and host, no path), or \"*\" for any", quote(o))
		}
	}

	if n := g.SendBuffer; n < 1 || n > 65536 {
		p.add("gateway.send_buffer", "%d is out of range: use 1 to 65536", n)
	}
	if g.SlowConsumerTimeout <= 0 {
		p.add("gateway.slow_consumer_timeout", "must be more than 0 (got %s): use e.g. %q",
			g.SlowConsumerTimeout, DefaultGatewaySlowConsumerTimeout)
	}
	if hb := time.Duration(g.Heartbeat); hb < time.Second || hb > 5*time.Minute {
		p.add("gateway.heartbeat", "%s is out of range: use 1s to 5m", g.Heartbeat)
	}
	if g.CacheMessages < 1 {
		p.add("gateway.cache_messages", "%d is too small: use at least 1", g.CacheMessages)
	}
	if g.CacheBytes < MiB {
		p.add("gateway.cache_bytes", "%s is too small: use at least 1MiB", g.CacheBytes)
	}
	if d := time.Duration(g.MaxPollTimeout); d < time.Second || d > time.Hour {
		p.add("gateway.max_poll_timeout", "%s is out of range: use 1s to 1h", g.MaxPollTimeout)
	}
	if n := g.MaxSubscriptions; n < 1 || n > 10000 {
		p.add("gateway.max_subscriptions", "%d is out of range: use 1 to 10000", n)
	}
	if time.Duration(g.AckWait) < time.Second {
		p.add("gateway.ack_wait", "%s is too short: use at least 1s, e.g. %q", g.AckWait, DefaultGatewayAckWait)
	}
}

// validate checks one token. Messages never show the sha256 value: a
// token pasted there by mistake is a secret.
func (t *GatewayToken) validate(p *problems, path string) {
	at := func(key string) string { return path + "." + key }

	switch {
	case t.Name == "":
		p.add(at("name"), "missing: name the token (it appears in logs and metrics), e.g. %q", "web-app")
	case !tokenNameRE.MatchString(t.Name):
		p.add(at("name"), "%s is not a token name: use 1 to 64 letters, digits, '_', '.' or '-'",
			quote(t.Name))
	}

	digest := strings.TrimSpace(t.SHA256)
	if d, err := hex.DecodeString(digest); digest == "" || err != nil || len(d) != 32 {
		what := "missing"
		if digest != "" {
			what = fmt.Sprintf("is not 64 hex digits (got %d characters)", len(digest))
		}
		p.add(at("sha256"), "%s: give the token's SHA-256 digest, never the token itself (%s)",
			what, hashTokenHint)
	}

	for i, s := range t.Sources {
		if !validSourceName(s) {
			p.add(fmt.Sprintf("%s[%d]", at("sources"), i), "%s is not a source name: %s",
				quote(s), "use the name of a configured source")
		}
	}
	for i, tb := range t.Tables {
		if strings.TrimSpace(tb) == "" || strings.Count(tb, ".") == 0 {
			p.add(fmt.Sprintf("%s[%d]", at("tables"), i), "%s is not a table pattern: write "+
				"\"schema.table\", with \"*\" for a whole name (\"public.*\")", quote(tb))
		}
	}
	for i, c := range t.Columns {
		if strings.TrimSpace(c) == "" {
			p.add(fmt.Sprintf("%s[%d]", at("columns"), i), "is empty: name a column or remove the entry")
		}
	}
	if t.Where != "" && strings.TrimSpace(t.Where) == "" {
		p.add(at("where"), "is blank: give a predicate such as %q, or remove it", "new.region == \"eu\"")
	}
	for i, g := range t.Groups {
		if !groupNameRE.MatchString(g) {
			p.add(fmt.Sprintf("%s[%d]", at("groups"), i), "%s is not a consumer group name: "+
				"use 1 to 64 ASCII letters, digits, '_' or '-'", quote(g))
		}
	}
}

// validate checks the JWT keys. Messages never show the secret.
func (j *GatewayJWT) validate(p *problems) {
	if s := j.HS256Secret; s != "" && len(s) < minHS256Secret {
		p.add("gateway.jwt.hs256_secret", "is %d bytes long: use at least %d random bytes, "+
			"e.g. from `openssl rand -base64 48`", len(s), minHS256Secret)
	}
	if k := j.RS256PublicKey; k != "" {
		block, _ := pem.Decode([]byte(strings.TrimSpace(k)))
		if block == nil || (block.Type != "PUBLIC KEY" && block.Type != "RSA PUBLIC KEY") {
			p.add("gateway.jwt.rs256_public_key", "is not a PEM public key: give the text from "+
				"\"-----BEGIN PUBLIC KEY-----\" to \"-----END PUBLIC KEY-----\" (a YAML block, \"|\")")
		}
	}
	if j.HS256Secret == "" && j.RS256PublicKey == "" {
		if j.Issuer != "" {
			p.add("gateway.jwt.issuer", "is set but no JWT key is: add gateway.jwt.hs256_secret "+
				"or gateway.jwt.rs256_public_key")
		}
		if j.Audience != "" {
			p.add("gateway.jwt.audience", "is set but no JWT key is: add gateway.jwt.hs256_secret "+
				"or gateway.jwt.rs256_public_key")
		}
	}
}
