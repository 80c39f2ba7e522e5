package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// defaultGateway is the gateway section of a configuration without one.
var defaultGateway = GatewayConfig{
	SendBuffer:          64,
	SlowConsumerTimeout: Duration(10 * time.Second),
	Heartbeat:           Duration(15 * time.Second),
	CacheMessages:       4096,
	CacheBytes:          64 * MiB,
	MaxPollTimeout:      Duration(2 * time.Minute),
	MaxSubscriptions:    64,
	AckWait:             Duration(30 * time.Second),
}

// digest is the SHA-256 of "test".
const digest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

// hsSecret is a valid HS256 secret; messages must never show it.
const hsSecret = "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t"

func TestParse_gateway(t *testing.T) {
	in := `
gateway:
  listen: 0.0.0.0:7071
  tls_cert: /etc/pgtide/gw.crt
  tls_key: /etc/pgtide/gw.key
  tokens:
    - {name: web, sha256: ` + digest + `, sources: [shop], tables: [public.orders],
       columns: [id, total], where: 'new.total > 10', groups: [mailer]}
  jwt: {hs256_secret: ` + hsSecret + `, issuer: https://auth.example.com, audience: pgtide}
  cors_origins: ["https://app.example.com"]
  send_buffer: 8
  slow_consumer_timeout: 3s
  heartbeat: 5s
  cache_messages: 100
  cache_bytes: 2MiB
  max_poll_timeout: 30s
  max_subscriptions: 4
  ack_wait: 1m
`
	c, err := Parse([]byte(in), "t.yaml")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := GatewayConfig{
		Listen:  "0.0.0.0:7071",
		TLSCert: "/etc/pgtide/gw.crt",
		TLSKey:  "/etc/pgtide/gw.key",
		Tokens: []GatewayToken{{Name: "web", SHA256: digest, Sources: []string{"shop"},
			Tables: []string{"public.orders"}, Columns: []string{"id", "total"}, Where: "new.total > 10",
			Groups: []string{"mailer"}}},
		JWT:                 GatewayJWT{HS256Secret: hsSecret, Issuer: "https://auth.example.com", Audience: "pgtide"},
		CORSOrigins:         []string{"https://app.example.com"},
		SendBuffer:          8,
		SlowConsumerTimeout: Duration(3 * time.Second),
		Heartbeat:           Duration(5 * time.Second),
		CacheMessages:       100,
		CacheBytes:          2 * MiB,
		MaxPollTimeout:      Duration(30 * time.Second),
		MaxSubscriptions:    4,
		AckWait:             Duration(time.Minute),
	}
	if !reflect.DeepEqual(c.Gateway, want) {
		t.Errorf("gateway:\n got %+v\nwant %+v", c.Gateway, want)
	}
	if !c.Gateway.AuthEnabled() || c.Gateway.Mounted() {
		t.Errorf("AuthEnabled = %v, Mounted = %v; want true, false", c.Gateway.AuthEnabled(), c.Gateway.Mounted())
	}
}

func TestParse_gatewayErrors(t *testing.T) {
	token := func(kv string) string {
		return "gateway:\n  tokens:\n    - {name: web, sha256: " + digest + ", " + kv + "}\n"
	}
	tests := []struct {
		name, in, path, phrase string
		line                   int
	}{
		{"listen", "gateway:\n  listen: 7071", "gateway.listen", "is not host:port", 2},
		{"listen_no_auth", "gateway:\n  listen: 0.0.0.0:7071", "gateway.listen",
			"has no authentication: add gateway.tokens or gateway.jwt", 2},
		{"listen_all_no_auth", "gateway:\n  listen: :7071", "gateway.listen", "accepts connections from other", 2},
		{"tls_alone", "gateway:\n  listen: 127.0.0.1:7071\n  tls_cert: a.crt", "gateway.tls_key", "missing", 1},
		{"tls_mounted", "gateway:\n  tls_cert: a.crt\n  tls_key: a.key", "gateway.tls_cert",
			"set gateway.listen", 2},
		{"token_name", "gateway:\n  tokens:\n    - {sha256: " + digest + "}", "gateway.tokens[0].name", "missing", 3},
		{"token_name_bad", "gateway:\n  tokens:\n    - {name: 'a b', sha256: " +
			digest + "}", "gateway.tokens[0].name", "is not a token name", 3},
		{"token_sha_missing", "gateway:\n  tokens:\n    - {name: web}", "gateway.tokens[0].sha256",
			"missing: give the token's SHA-256 digest", 3},
		{"token_sha_plain", "gateway:\n  tokens:\n    - {name: web, sha256: my-secret-token}",
			"gateway.tokens[0].sha256", "is not 64 hex digits (got 15 characters)", 3},
		{"token_duplicate", token("groups: [a]") + "    - {name: web, sha256: " + digest + "}",
			"gateway.tokens[1].name", `"web" is already the name of gateway.tokens[0]`, 4},
		{"token_source", token("sources: [Shop]"), "gateway.tokens[0].sources[0]", "is not a source name", 3},
		{"token_table", token("tables: [orders]"), "gateway.tokens[0].tables[0]", "is not a table pattern", 3},
		{"token_group", token("groups: ['a b']"), "gateway.tokens[0].groups[0]", "not a consumer group name", 3},
		{"token_unknown", token("tabels: [a.b]"), "gateway.tokens[0].tabels", `did you mean "tables"?`, 3},
		{"jwt_short", "gateway:\n  jwt: {hs256_secret: secret}", "gateway.jwt.hs256_secret",
			"is 6 bytes long: use at least 32", 2},
		{"jwt_secret_type", "gateway:\n  jwt: {hs256_secret: [secret]}", "gateway.jwt.hs256_secret",
			"expected a string, got a list", 2},
		{"jwt_rsa", "gateway:\n  jwt: {rs256_public_key: /etc/key.pem}", "gateway.jwt.rs256_public_key",
			"is not a PEM public key", 2},
		{"jwt_issuer_alone", "gateway:\n  jwt: {issuer: me}", "gateway.jwt.issuer", "no JWT key is", 2},
		{"cors", "gateway:\n  cors_origins: [app.example.com]", "gateway.cors_origins[0]", "is not an origin", 2},
		{"send_buffer", "gateway:\n  send_buffer: 0", "gateway.send_buffer", "use 1 to 65536", 2},
		{"slow_consumer", "gateway:\n  slow_consumer_timeout: off", "gateway.slow_consumer_timeout",
			"must be more than 0", 2},
		{"heartbeat", "gateway:\n  heartbeat: 10m", "gateway.heartbeat", "use 1s to 5m", 2},
		{"cache_messages", "gateway:\n  cache_messages: 0", "gateway.cache_messages", "at least 1", 2},
		{"cache_bytes", "gateway:\n  cache_bytes: 1KiB", "gateway.cache_bytes", "at least 1MiB", 2},
		{"max_poll_timeout", "gateway:\n  max_poll_timeout: 2h", "gateway.max_poll_timeout", "use 1s to 1h", 2},
		{"max_subscriptions", "gateway:\n  max_subscriptions: -1", "gateway.max_subscriptions", "1 to 10000", 2},
		{"ack_wait", "gateway:\n  ack_wait: 10ms", "gateway.ack_wait", "use at least 1s", 2},
		{"unknown", "gateway:\n  token: []", "gateway.token", `did you mean "tokens"?`, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in), "pgtide.yaml")
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Parse(%q) = %v, want a *ValidationError at %s", tt.in, err, tt.path)
			}
			if len(ve.Errors) != 1 {
				t.Errorf("Parse(%q): %d problems, want 1:\n%v", tt.in, len(ve.Errors), err)
			}
			fe := ve.Errors[0]
			if fe.Path != tt.path || !strings.Contains(fe.Message, tt.phrase) {
				t.Errorf("Parse(%q) problem = %q: %q\nwant path %q, message containing %q",
					tt.in, fe.Path, fe.Message, tt.path, tt.phrase)
			}
			if fe.Line != tt.line {
				t.Errorf("Parse(%q) problem line = %d, want %d", tt.in, fe.Line, tt.line)
			}
			for _, secret := range []string{"my-secret-token", "secret]", "s3cr3t"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("Parse(%q) error shows a secret: %v", tt.in, err)
				}
			}
		})
	}
}

func TestLoopbackListen(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:7070": true, "localhost:7070": true, "[::1]:0": true, "127.1.2.3:1": true,
		":7070": false, "0.0.0.0:7070": false, "10.0.0.1:7070": false, "example.com:7070": false, "x": false,
	} {
		if got := LoopbackListen(addr); got != want {
			t.Errorf("LoopbackListen(%q) = %v, want %v", addr, got, want)
		}
	}
}
