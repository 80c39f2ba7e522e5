package gateway

import (
	"fmt"
	"time"
)

// Defaults applied by [New] to zero [Config] fields.
const (
	DefaultListen              = "127.0.0.1:7071"
	DefaultSendBuffer          = 64
	DefaultSlowConsumerTimeout = 10 * time.Second
	DefaultHeartbeat           = 15 * time.Second
	DefaultCacheMessages       = 4096
	DefaultCacheBytes          = 64 << 20
	DefaultMaxPollTimeout      = 2 * time.Minute
	DefaultMaxSubscriptions    = 64
	DefaultAckWait             = 30 * time.Second
)

// Config configures a gateway [Server]. Zero fields take the defaults named
// on each.
type Config struct {
	// Listen is the "host:port" [Server.Serve] listens on; port 0 picks a
	// free port. Empty means DefaultListen.
	Listen string

	// TLSCert and TLSKey are PEM files; when both are set Serve speaks
	// TLS (HTTP/1.1 and HTTP/2), otherwise cleartext HTTP/1.1 and HTTP/2
	// with prior knowledge (h2c, which gRPC clients use).
	TLSCert, TLSKey string

	// Tokens are the static bearer tokens. With no Tokens and no JWT
	// key, every request is allowed.
	Tokens []Token

	// JWT verifies JSON Web Tokens; see [JWTConfig].
	JWT JWTConfig

	// CORSOrigins are the browser origins allowed to call the gateway;
	// "*" allows any. Empty sends no CORS headers.
	CORSOrigins []string

	// SendBuffer is the number of frames (each up to one log message of
	// changes) queued per subscription before the sender waits.
	// Zero means DefaultSendBuffer.
	SendBuffer int

	// SlowConsumerTimeout is how long a subscription may wait for room in
	// its send buffer before the client is disconnected as too slow, with
	// the cursor it can resume from. Zero means
	// DefaultSlowConsumerTimeout.
	SlowConsumerTimeout time.Duration

	// Heartbeat is the interval of SSE comments and WebSocket pings on an
	// idle connection, and the SSE retry hint. Zero means
	// DefaultHeartbeat.
	Heartbeat time.Duration

	// CacheMessages and CacheBytes bound the recent log messages kept
	// decoded per source and shared by every subscriber at the head of
	// the log; older positions are read from the log. Zero means
	// DefaultCacheMessages and DefaultCacheBytes.
	CacheMessages int
	CacheBytes    int

	// MaxPollTimeout caps the timeout parameter of a long poll. Zero
	// means DefaultMaxPollTimeout.
	MaxPollTimeout time.Duration

	// MaxSubscriptions caps the subscriptions of one WebSocket
	// connection. Zero means DefaultMaxSubscriptions.
	MaxSubscriptions int

	// AckWait is how long a consumer group waits for an acknowledgement
	// before it redelivers. Zero means DefaultAckWait. It applies when a
	// group is created.
	AckWait time.Duration
}

// Token is a static bearer token.
type Token struct {
	// Name identifies the token in logs and metrics.
	Name string `yaml:"name" json:"name"`
	// SHA256 is the hex SHA-256 digest of the token (the token itself is
	// never stored), e.g. from `printf %s "$TOKEN" | sha256sum`.
	SHA256 string `yaml:"sha256" json:"sha256"`
	// Grant is what the token may read.
	Grant Grant `yaml:",inline" json:"grant"`
}

// Grant limits what a credential may read. Empty fields do not limit.
type Grant struct {
	// Sources are the sources it may read.
	Sources []string `yaml:"sources" json:"sources,omitempty"`
	// Tables are "schema.table" patterns ("*" for a whole name) it may
	// subscribe to; a subscription's tables must fall within them.
	Tables []string `yaml:"tables" json:"tables,omitempty"`
	// Columns are the column names it may see; other columns are left
	// out of key, new, old and unchanged, and out of reach of predicates.
	Columns []string `yaml:"columns" json:"columns,omitempty"`
	// Where is a row predicate every delivered row must also satisfy.
	Where string `yaml:"where" json:"where,omitempty"`
	// Groups are the consumer groups it may join.
	Groups []string `yaml:"groups" json:"groups,omitempty"`
}

// JWTConfig verifies JSON Web Tokens given as bearer tokens. A token must
// be signed with HS256 by HS256Secret or RS256 by RS256PublicKey, be
// within its exp and nbf times, match Issuer and Audience when they are
// set, and carry a "pgtide" claim holding a [Grant] in JSON ({} grants
// everything).
type JWTConfig struct {
	// HS256Secret is the shared secret of HS256 tokens; empty disables
	// them.
	HS256Secret string `yaml:"hs256_secret"`
	// RS256PublicKey is the PEM public key of RS256 tokens; empty
	// disables them.
	RS256PublicKey string `yaml:"rs256_public_key"`
	// Issuer and Audience, when set, must match the iss and aud claims.
	Issuer   string `yaml:"issuer"`
	Audience string `yaml:"audience"`
}

// withDefaults returns cfg with zero fields set to their defaults.
func (cfg Config) withDefaults() Config {
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if cfg.SendBuffer == 0 {
		cfg.SendBuffer = DefaultSendBuffer
	}
	if cfg.SlowConsumerTimeout == 0 {
		cfg.SlowConsumerTimeout = DefaultSlowConsumerTimeout
	}
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.CacheMessages == 0 {
		cfg.CacheMessages = DefaultCacheMessages
	}
	if cfg.CacheBytes == 0 {
		cfg.CacheBytes = DefaultCacheBytes
	}
	if cfg.MaxPollTimeout == 0 {
		cfg.MaxPollTimeout = DefaultMaxPollTimeout
	}
	if cfg.MaxSubscriptions == 0 {
		cfg.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if cfg.AckWait == 0 {
		cfg.AckWait = DefaultAckWait
	}
	return cfg
}

// validate checks the fields New cannot default.
func (cfg Config) validate() error {
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return fmt.Errorf("gateway: tls: set both the certificate and the key, or neither")
	}
	for name, v := range map[string]int{
		"send_buffer": cfg.SendBuffer, "cache_messages": cfg.CacheMessages,
		"cache_bytes": cfg.CacheBytes, "max_subscriptions": cfg.MaxSubscriptions,
	} {
		if v < 0 {
			return fmt.Errorf("gateway: %s %d is negative", name, v)
		}
	}
	for name, v := range map[string]time.Duration{
		"slow_consumer_timeout": cfg.SlowConsumerTimeout, "heartbeat": cfg.Heartbeat,
		"max_poll_timeout": cfg.MaxPollTimeout, "ack_wait": cfg.AckWait,
	} {
		if v < 0 {
			return fmt.Errorf("gateway: %s %v is negative", name, v)
		}
	}
	return nil
}
