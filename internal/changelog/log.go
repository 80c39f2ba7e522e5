package changelog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Defaults applied by [Open] to zero [Config] fields.
const (
	DefaultSyncInterval = time.Second
	DefaultMaxPayload   = 8 << 20
)

// connName is the client name pgtide shows in NATS monitoring.
const connName = "pgtide"

// Config says where the log lives. The zero value is not usable: an
// embedded log needs DataDir, an external one URL.
type Config struct {
	// URL lists external NATS server URLs, comma-separated, such as
	// "nats://a:4222,nats://b:4222". Empty starts an embedded server.
	URL string

	// CredsFile is a NATS credentials file used to authenticate to an
	// external server. Empty means no credentials. Ignored when embedded.
	CredsFile string

	// DataDir is the directory of an embedded server; JetStream keeps its
	// files in DataDir/jetstream. Required when embedded.
	DataDir string

	// Listen is the "host:port" on which an embedded server accepts TCP
	// clients from other processes; port 0 picks a free port. Empty means
	// in-process clients only.
	Listen string

	// SyncInterval is how often an embedded server fsyncs its stream
	// files. Zero means DefaultSyncInterval (1s).
	SyncInterval time.Duration

	// MaxPayload is the largest message, in bytes, an embedded server
	// accepts. Zero means DefaultMaxPayload (8 MiB); at most 64 MiB.
	MaxPayload int

	// Replicas is the number of copies of each stream an external cluster
	// keeps. Zero means 1.
	Replicas int

	// Logger receives lifecycle and connection events, and, at debug
	// level, the embedded server's own log. Nil discards them.
	Logger *slog.Logger
}

// Log is a connection to the change log, either through an embedded server
// it owns or to an external NATS deployment. A Log is safe for concurrent
// use.
type Log struct {
	logger    *slog.Logger
	replicas  int
	srv       *server.Server // nil when external
	nc        *nats.Conn
	js        jetstream.JetStream
	clientURL string

	connClosed chan struct{} // closed by the connection's ClosedHandler

	closeOnce sync.Once
	closeErr  error
}

// Open starts an embedded NATS server with JetStream in this process and
// connects to it, or, when cfg.URL is set, connects to that external
// server. An external connection reconnects forever once established, but
// Open fails when the first attempt fails or the server has no JetStream;
// the error names the URL (without secrets) and the reason.
func Open(ctx context.Context, cfg Config) (*Log, error) {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Replicas < 0 {
		return nil, fmt.Errorf("changelog: replicas %d is negative", cfg.Replicas)
	}

	l := &Log{
		logger:     logger,
		replicas:   max(cfg.Replicas, 1),
		connClosed: make(chan struct{}),
	}
	if cfg.URL == "" {
		if err := l.openEmbedded(ctx, cfg); err != nil {
			return nil, err
		}
	} else if err := l.openExternal(ctx, cfg); err != nil {
		return nil, err
	}

	js, err := jetstream.New(l.nc)
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("changelog: jetstream client: %w", err)
	}
	l.js = js
	return l, nil
}

// openEmbedded starts the server and connects to it in-process.
func (l *Log) openEmbedded(ctx context.Context, cfg Config) error {
	srv, err := startServer(ctx, cfg, l.logger)
	if err != nil {
		return err
	}

	nc, err := nats.Connect("",
		nats.InProcessServer(srv),
		nats.Name(connName),
		nats.ClosedHandler(l.onClosed),
		nats.ErrorHandler(l.onAsyncError),
	)
	if err != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
		return fmt.Errorf("changelog: connect to embedded server: %w", err)
	}

	l.srv = srv
	l.nc = nc
	if cfg.Listen != "" {
		l.clientURL = srv.ClientURL()
	}
	l.logger.Info("change log started",
		"mode", "embedded",
		"data_dir", cfg.DataDir,
		"client_url", l.clientURL,
	)
	return nil
}

// openExternal connects to an external server and checks that it offers
// JetStream.
func (l *Log) openExternal(ctx context.Context, cfg Config) error {
	shown := redactURLs(cfg.URL)
	opts := []nats.Option{
		nats.Name(connName),
		nats.MaxReconnects(-1),
		nats.ClosedHandler(l.onClosed),
		nats.ErrorHandler(l.onAsyncError),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			l.logger.Warn("nats disconnected", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			l.logger.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
		}),
	}
	if cfg.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	}
	if deadline, ok := ctx.Deadline(); ok {
		opts = append(opts, nats.Timeout(max(time.Until(deadline), time.Millisecond)))
	}

	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		return fmt.Errorf("changelog: connect to NATS at %s: %w", shown, err)
	}

	js, err := jetstream.New(nc)
	if err == nil {
		_, err = js.AccountInfo(ctx)
	}
	if err != nil {
		nc.Close()
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) ||
			errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
			return fmt.Errorf("changelog: NATS at %s has no JetStream for this account "+
				"(start nats-server with -js): %w", shown, err)
		}
		return fmt.Errorf("changelog: NATS at %s: query JetStream account: %w", shown, err)
	}

	l.nc = nc
	l.clientURL = cfg.URL
	l.logger.Info("change log connected",
		"mode", "external",
		"url", nc.ConnectedUrlRedacted(),
	)
	return nil
}

func (l *Log) onClosed(*nats.Conn) {
	close(l.connClosed)
}

func (l *Log) onAsyncError(_ *nats.Conn, sub *nats.Subscription, err error) {
	subject := ""
	if sub != nil {
		subject = sub.Subject
	}
	l.logger.Error("nats asynchronous error", "subject", subject, "err", err)
}

// Close drains the connection and, for an embedded log, shuts the server
// down and waits until it has stopped. Close the [Publisher]s of the log
// first. Calling Close again returns the first result.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		if l.nc != nil {
			// Drain ends in-flight subscriptions gracefully; it closes the
			// connection itself, at the latest after the drain timeout.
			if err := l.nc.Drain(); err != nil {
				l.nc.Close()
				if !errors.Is(err, nats.ErrConnectionClosed) {
					l.closeErr = fmt.Errorf("changelog: drain connection: %w", err)
				}
			}
			<-l.connClosed
		}

		if l.srv != nil {
			l.srv.Shutdown()
			l.srv.WaitForShutdown()
			l.logger.Info("change log stopped", "mode", "embedded")
		}
	})
	return l.closeErr
}

// Conn returns the underlying NATS connection.
func (l *Log) Conn() *nats.Conn { return l.nc }

// JetStream returns the JetStream client of the connection.
func (l *Log) JetStream() jetstream.JetStream { return l.js }

// Embedded reports whether the log runs its own server in this process.
func (l *Log) Embedded() bool { return l.srv != nil }

// ClientURL returns the URL other processes use to reach the log: the
// listener of an embedded server, such as "nats://127.0.0.1:4222", or the
// configured external URL. It is empty for an embedded server without a
// listener.
func (l *Log) ClientURL() string { return l.clientURL }

// redactURLs returns a comma-separated URL list with passwords and tokens
// replaced, fit for logs and error messages.
func redactURLs(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		u, err := url.Parse(p)
		if err != nil {
			// Unparsable, perhaps "user:pass@host:port" without a scheme.
			if at := strings.LastIndexByte(p, '@'); at >= 0 {
				p = "xxxxx" + p[at:]
			}
			parts[i] = p
			continue
		}
		if u.User == nil {
			parts[i] = p
			continue
		}
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		} else {
			// A lone user part is a token.
			u.User = url.User("xxxxx")
		}
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}
