package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pgtide/pgtide/internal/changelog"
	"github.com/pgtide/pgtide/internal/config"
)

// listenerDialTimeout bounds the attempt to reach the embedded server of a
// running pgtide before reading the store directly.
const listenerDialTimeout = time.Second

// openLogReader opens the change log for reading, in this order:
//
//  1. nats.url, when set;
//  2. the embedded server of a running pgtide, through its listener
//     nats.embedded.listen;
//  3. the embedded store under data_dir, opened in this process, which
//     works only while no pgtide process holds it.
//
// The returned func closes what was opened.
func openLogReader(
	ctx context.Context, cfg config.Config, logger *slog.Logger,
) (*changelog.Log, func(), error) {
	logger = logger.With("component", "changelog")
	if cfg.NATS.External() {
		l, err := changelog.Open(ctx, changelog.Config{
			URL:       cfg.NATS.URL,
			CredsFile: cfg.NATS.CredsFile,
			Logger:    logger,
		})
		if err != nil {
			return nil, nil, err
		}
		return l, func() { l.Close() }, nil
	}

	// A running pgtide with an embedded log serves it on its listener.
	listenErr := errors.New("its listener is off (nats.embedded.listen)")
	listenURL := ""
	if addr, ok := listenerAddr(cfg.NATS.Embedded.Listen); ok {
		listenURL = "nats://" + addr
		dctx, cancel := context.WithTimeout(ctx, listenerDialTimeout)
		l, err := changelog.Open(dctx, changelog.Config{URL: listenURL, Logger: logger})
		cancel()
		if err == nil {
			return l, func() { l.Close() }, nil
		}
		listenErr = err
		logger.Debug("embedded listener unreachable, opening the store", "url", listenURL, "err", err)
	}

	// No process answers: read the store directly.
	store := filepath.Join(cfg.DataDir, "jetstream")
	if _, err := os.Stat(store); err != nil {
		return nil, nil, fmt.Errorf("no change log found: no pgtide answers at %s (%v), and %s holds no "+
			"change log: start `pgtide up`, or point at the log with --nats-url or --data-dir",
			orNone(listenURL), listenErr, cfg.DataDir)
	}
	lock, err := lockDataDir(cfg.DataDir)
	if errors.Is(err, errDataDirLocked) {
		return nil, nil, fmt.Errorf("the change log in %s is in use (%w), and that process "+
			"does not answer at %s (%v): read through it with "+
			"--nats-url nats://<its nats.embedded.listen>, or stop it to read the store directly",
			cfg.DataDir, err, orNone(listenURL), listenErr)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("open change log in %s: %w", cfg.DataDir, err)
	}
	l, err := changelog.Open(ctx, changelog.Config{
		DataDir:      cfg.DataDir,
		SyncInterval: time.Duration(cfg.NATS.Embedded.SyncInterval),
		MaxPayload:   int(cfg.NATS.Embedded.MaxPayload),
		Logger:       logger,
	})
	if err != nil {
		lock.release()
		return nil, nil, err
	}
	return l, func() { l.Close(); lock.release() }, nil
}

// listenerAddr returns the address to dial for an embedded listener
// configured as listen, or false when there is none to dial ("off", or
// port 0, which the running process replaced by a random port).
func listenerAddr(listen string) (string, bool) {
	if listen == config.Off {
		return "", false
	}
	_, port, err := net.SplitHostPort(listen)
	if err != nil || port == "0" {
		return "", false
	}
	return dialAddr(listen), true
}

func orNone(url string) string {
	if url == "" {
		return "no listener"
	}
	return url
}

// resolveSource picks the source to read: the one named, the only one
// configured, or the only one the log holds.
func resolveSource(
	ctx context.Context, l *changelog.Log, cfg config.Config, name string,
) (string, error) {
	if name != "" {
		if err := changelog.ValidateSource(name); err != nil {
			return "", usageErrorf("--source %q: %v", name, err)
		}
		return name, nil
	}
	if len(cfg.Sources) == 1 {
		return cfg.Sources[0].Name, nil
	}

	names, err := logSources(ctx, l.JetStream())
	if err != nil {
		return "", fmt.Errorf("list the sources in the change log: %w", err)
	}
	switch len(names) {
	case 0:
		return "", errors.New("the change log holds no source yet: start capture first")
	case 1:
		return names[0], nil
	}
	return "", usageErrorf("the change log holds several sources (%s): choose one with --source",
		strings.Join(names, ", "))
}

// logSources lists the sources whose streams the log holds, sorted.
func logSources(ctx context.Context, js jetstream.JetStream) ([]string, error) {
	lister := js.ListStreams(ctx)
	var names []string
	for info := range lister.Info() {
		for _, subj := range info.Config.Subjects {
			rest, ok := strings.CutPrefix(subj, "pgtide.")
			if !ok {
				continue
			}
			name, ok := strings.CutSuffix(rest, ".>")
			if ok && changelog.ValidateSource(name) == nil &&
				info.Config.Name == changelog.StreamName(name) {
				names = append(names, name)
			}
		}
	}
	if err := lister.Err(); err != nil && !errors.Is(err, jetstream.ErrEndOfData) {
		return nil, err
	}
	slices.Sort(names)
	return names, nil
}
