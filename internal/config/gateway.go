package config

import (
	"net"
	"time"
)

// Defaults of the gateway keys, as applied by [Config.ApplyDefaults]. They
// equal the gateway package's own defaults.
const (
	// DefaultGatewayListen is where `pgtide gateway` listens when
	// gateway.listen is empty; `pgtide up` mounts the gateway on the admin
	// listener instead.
	DefaultGatewayListen              = "127.0.0.1:7071"
	DefaultGatewaySendBuffer          = 64
	DefaultGatewaySlowConsumerTimeout = Duration(10 * time.Second)
	DefaultGatewayHeartbeat           = Duration(15 * time.Second)
	DefaultGatewayCacheMessages       = 4096
	DefaultGatewayCacheBytes          = 64 * MiB
	DefaultGatewayMaxPollTimeout      = Duration(2 * time.Minute)
	DefaultGatewayMaxSubscriptions    = 64
	DefaultGatewayAckWait             = Duration(30 * time.Second)
)

// GatewayConfig configures the stream gateway, which serves the change log
// to applications over HTTP long polling, Server-Sent Events, WebSocket and
// gRPC.
type GatewayConfig struct {
	// Listen is the gateway's own host:port. Empty (the default) mounts
	// the gateway on the admin listener in `pgtide up`, and means
	// [DefaultGatewayListen] for `pgtide gateway`. "off" disables the
	// gateway in `pgtide up`. A listener beyond loopback needs Tokens or
	// JWT.
	Listen string `yaml:"listen"`

	// TLSCert and TLSKey are the paths of a PEM certificate and its key,
	// given together, for the gateway's own listener (Listen set).
	// Without them it speaks cleartext HTTP/1.1 and HTTP/2 (h2c).
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`

	// Tokens are static bearer tokens, stored as SHA-256 digests. With no
	// Tokens and no JWT key every request is allowed.
	Tokens []GatewayToken `yaml:"tokens"`

	// JWT verifies JSON Web Tokens given as bearer tokens.
	JWT GatewayJWT `yaml:"jwt"`

	// CORSOrigins are the browser origins allowed to call the gateway;
	// "*" allows any. Empty (the default) sends no CORS headers.
	CORSOrigins []string `yaml:"cors_origins"`

	// SendBuffer is the number of frames queued per subscription before
	// the sender waits, 1 to 65536. Default 64.
	SendBuffer int `yaml:"send_buffer"`

	// SlowConsumerTimeout is how long a subscription may wait for room in
	// its send buffer before the client is disconnected, with its cursor.
	// More than 0. Default 10s.
	SlowConsumerTimeout Duration `yaml:"slow_consumer_timeout"`

	// Heartbeat is the interval of SSE comments and WebSocket pings on
	// idle connections, and the SSE retry hint; 1s to 5m. Default 15s.
	Heartbeat Duration `yaml:"heartbeat"`

	// CacheMessages and CacheBytes bound the recent log messages kept
	// decoded per source. At least 1 and 1MiB. Defaults 4096 and 64MiB.
	CacheMessages int      `yaml:"cache_messages"`
	CacheBytes    ByteSize `yaml:"cache_bytes"`

	// MaxPollTimeout caps the timeout of a long poll; 1s to 1h. Default
	// 2m.
	MaxPollTimeout Duration `yaml:"max_poll_timeout"`

	// MaxSubscriptions caps the subscriptions of one WebSocket
	// connection, 1 to 10000. Default 64.
	MaxSubscriptions int `yaml:"max_subscriptions"`

	// AckWait is how long a consumer group waits for an acknowledgement
	// before it redelivers; at least 1s. Default 30s.
	AckWait Duration `yaml:"ack_wait"`
}

// GatewayToken is a static bearer token of the gateway and what it may
// read. Empty lists do not limit.
type GatewayToken struct {
	// Name identifies the token in logs and metrics. Required, unique.
	Name string `yaml:"name"`

	// SHA256 is the hex SHA-256 digest of the token; the token itself is
	// never stored. Required.
	SHA256 string `yaml:"sha256"`

	// Sources are the sources the token may read.
	Sources []string `yaml:"sources"`

	// Tables are "schema.table" patterns ("*" for a whole name) the token
	// may subscribe to.
	Tables []string `yaml:"tables"`

	// Columns are the columns the token may see.
	Columns []string `yaml:"columns"`

	// Where is a row predicate (expr language) every delivered row must
	// satisfy.
	Where string `yaml:"where"`

	// Groups are the consumer groups the token may join.
	Groups []string `yaml:"groups"`
}

// GatewayJWT verifies JSON Web Tokens. A token must be signed with HS256
// by HS256Secret or RS256 by RS256PublicKey and carry a "pgtide" claim
// holding its grant.
type GatewayJWT struct {
	// HS256Secret is the shared secret of HS256 tokens, at least 32
	// bytes. Empty disables HS256.
	HS256Secret string `yaml:"hs256_secret"`

	// RS256PublicKey is the PEM text of the public key of RS256 tokens.
	// Empty disables RS256.
	RS256PublicKey string `yaml:"rs256_public_key"`

	// Issuer and Audience, when set, must match the iss and aud claims.
	Issuer   string `yaml:"issuer"`
	Audience string `yaml:"audience"`
}

// AuthEnabled reports whether the gateway checks credentials: a token or
// a JWT key is configured.
func (g GatewayConfig) AuthEnabled() bool {
	return len(g.Tokens) > 0 || g.JWT.HS256Secret != "" || g.JWT.RS256PublicKey != ""
}

// Mounted reports whether `pgtide up` serves the gateway on the admin
// listener (gateway.listen is empty).
func (g GatewayConfig) Mounted() bool {
	return g.Listen == ""
}

// LoopbackListen reports whether the listen address addr ("host:port")
// accepts connections from this machine only: its host is "localhost" or
// a loopback IP address. An empty host listens on every interface.
func LoopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (c *Config) applyGatewayDefaults() {
	g := &c.Gateway
	given := func(key string) bool { return c.given["gateway."+key] }
	defaultTo(&g.SendBuffer, DefaultGatewaySendBuffer, given("send_buffer"))
	defaultTo(&g.SlowConsumerTimeout, DefaultGatewaySlowConsumerTimeout, given("slow_consumer_timeout"))
	defaultTo(&g.Heartbeat, DefaultGatewayHeartbeat, given("heartbeat"))
	defaultTo(&g.CacheMessages, DefaultGatewayCacheMessages, given("cache_messages"))
	defaultTo(&g.CacheBytes, DefaultGatewayCacheBytes, given("cache_bytes"))
	defaultTo(&g.MaxPollTimeout, DefaultGatewayMaxPollTimeout, given("max_poll_timeout"))
	defaultTo(&g.MaxSubscriptions, DefaultGatewayMaxSubscriptions, given("max_subscriptions"))
	defaultTo(&g.AckWait, DefaultGatewayAckWait, given("ack_wait"))
}
