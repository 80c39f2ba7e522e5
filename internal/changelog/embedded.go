package changelog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

const (
	// maxMaxPayload is the server's limit on pending bytes per client; a
	// larger payload could never be delivered.
	maxMaxPayload = 64 << 20

	// embeddedMaxMemory bounds memory-backed streams; the log itself is
	// file-backed, only ephemeral consumer state lives in memory.
	embeddedMaxMemory = 64 << 20

	// readyPoll is how long one readiness check waits.
	readyPoll = 100 * time.Millisecond
)

// serverOptions translates cfg into the options of an embedded server.
func serverOptions(cfg Config, logger *slog.Logger) (*server.Options, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("changelog: embedded server needs a data directory (Config.DataDir)")
	}
	if cfg.SyncInterval < 0 {
		return nil, fmt.Errorf("changelog: sync interval %s is negative", cfg.SyncInterval)
	}
	if cfg.MaxPayload < 0 || cfg.MaxPayload > maxMaxPayload {
		return nil, fmt.Errorf("changelog: max payload %d bytes is outside 1..%d",
			cfg.MaxPayload, maxMaxPayload)
	}

	opts := &server.Options{
		ServerName:   "pgtide",
		JetStream:    true,
		StoreDir:     cfg.DataDir, // the server appends "jetstream"
		SyncInterval: cfg.SyncInterval,
		MaxPayload:   int32(cfg.MaxPayload),
		NoSigs:       true,
		NoLog:        !logger.Enabled(context.Background(), slog.LevelDebug),

		JetStreamMaxMemory: embeddedMaxMemory,
		JetStreamMaxStore:  -1, // all free disk space
	}
	if opts.SyncInterval == 0 {
		opts.SyncInterval = DefaultSyncInterval
	}
	if opts.MaxPayload == 0 {
		opts.MaxPayload = DefaultMaxPayload
	}

	if cfg.Listen == "" {
		opts.DontListen = true
		return opts, nil
	}
	host, portText, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("changelog: listen address %q: %w", cfg.Listen, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("changelog: listen address %q: port %q is not a number in 0..65535",
			cfg.Listen, portText)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	opts.Host = host
	opts.Port = port
	return opts, nil
}

// startServer starts an embedded server and waits until it accepts
// clients and JetStream runs.
func startServer(ctx context.Context, cfg Config, logger *slog.Logger) (*server.Server, error) {
	opts, err := serverOptions(cfg, logger)
	if err != nil {
		return nil, err
	}

	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("changelog: configure embedded server: %w", err)
	}
	sl := &serverLogger{logger: logger.With("component", "nats-server")}
	srv.SetLoggerV2(sl, logger.Enabled(ctx, slog.LevelDebug), false, false)

	fail := func(err error) (*server.Server, error) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, err
	}

	// Start recovers existing streams before it returns, which can take
	// a while for a large store; run it aside so ctx can abandon it.
	started := make(chan struct{})
	go func() {
		defer close(started)
		srv.Start()
	}()
	select {
	case <-started:
	case <-ctx.Done():
		srv.Shutdown()
		<-started
		srv.WaitForShutdown()
		return nil, fmt.Errorf("changelog: start embedded server: %w", ctx.Err())
	}

	// The server reports start-up failures (listen errors, an unusable
	// store) through its logger and keeps going, so ask the logger.
	if err := sl.fatalError(); err != nil {
		return fail(fmt.Errorf("changelog: start embedded server in %s: %w", cfg.DataDir, err))
	}
	for !srv.ReadyForConnections(readyPoll) {
		if err := sl.fatalError(); err != nil {
			return fail(fmt.Errorf("changelog: start embedded server in %s: %w", cfg.DataDir, err))
		}
		if ctx.Err() != nil {
			return fail(fmt.Errorf("changelog: embedded server not ready: %w", ctx.Err()))
		}
	}
	if !srv.JetStreamEnabled() {
		err := fmt.Errorf("changelog: embedded server in %s started without JetStream", cfg.DataDir)
		return fail(err)
	}
	return srv, nil
}

// serverLogger adapts slog to the logger interface of nats-server. The
// server's notices are routine, so they go to debug level; its warnings
// and errors keep their level. The first fatal message is kept so that
// startup can report it.
type serverLogger struct {
	logger *slog.Logger

	mu    sync.Mutex
	fatal error // first Fatalf message; guarded by mu
}

func (sl *serverLogger) fatalError() error {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	return sl.fatal
}

func (sl *serverLogger) log(level slog.Level, format string, v []any) {
	ctx := context.Background()
	if !sl.logger.Enabled(ctx, level) {
		return
	}
	sl.logger.Log(ctx, level, "nats server log", "detail", fmt.Sprintf(format, v...))
}

// Noticef implements server.Logger.
func (sl *serverLogger) Noticef(format string, v ...any) { sl.log(slog.LevelDebug, format, v) }

// Warnf implements server.Logger.
func (sl *serverLogger) Warnf(format string, v ...any) { sl.log(slog.LevelWarn, format, v) }

// Errorf implements server.Logger.
func (sl *serverLogger) Errorf(format string, v ...any) { sl.log(slog.LevelError, format, v) }

// Debugf implements server.Logger.
func (sl *serverLogger) Debugf(format string, v ...any) { sl.log(slog.LevelDebug, format, v) }

// Tracef implements server.Logger; protocol traces are dropped.
func (sl *serverLogger) Tracef(string, ...any) {}

// Fatalf implements server.Logger. It records the message instead of
// exiting the process.
func (sl *serverLogger) Fatalf(format string, v ...any) {
	err := fmt.Errorf(format, v...)
	sl.mu.Lock()
	if sl.fatal == nil {
		sl.fatal = err
	}
	sl.mu.Unlock()
	sl.logger.Error("nats server fatal error", "err", err)
}
