package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/pgtide/pgtide/internal/config"
	"github.com/pgtide/pgtide/internal/demo"
)

// The demo's offline dataset and the proxy user that reaches it.
const (
	demoDataset  = "shop"
	demoUser     = "demo"
	demoPassword = "demo"
)

// configureDemoOffline adds the demo's offline dataset over the demo
// database dsn, with customers' emails masked, and a proxy user. The proxy
// listens on proxy.listen when that port is free, else on a free port.
// It does nothing when proxy.listen is off.
func configureDemoOffline(cfg *config.Config, dsn string) {
	if cfg.Proxy.Listen == config.Off {
		return
	}
	if !portFree(cfg.Proxy.Listen) {
		host, _, err := net.SplitHostPort(cfg.Proxy.Listen)
		if err != nil {
			host = "127.0.0.1"
		}
		cfg.Proxy.Listen = net.JoinHostPort(host, "0")
	}
	cfg.Proxy.Users = map[string]string{demoUser: demoPassword}
	cfg.Datasets = map[string]config.DatasetConfig{
		demoDataset: {
			Source:   dsn,
			Database: demoSource,
			Rules: []config.MaskRule{{
				Table: demo.Schema + ".customers", Column: "email", Method: config.MaskEmail, Key: "id",
			}},
		},
	}
	// One instance stays booted from the newest snapshot, so the printed
	// psql command answers at once.
	if cfg.Proxy.Instances.Warm == 0 {
		cfg.Proxy.Instances.Warm = 1
	}
	// The demo takes one snapshot at start, and none on a schedule.
	cfg.ApplyDefaults()
	d := cfg.Datasets[demoDataset]
	d.Schedule = 0
	cfg.Datasets[demoDataset] = d
}

// portFree reports whether addr can be listened on now.
func portFree(addr string) bool {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// demoPsqlCommand is the psql command reaching the demo's offline
// dataset through the proxy at addr.
func demoPsqlCommand(addr string) string {
	return fmt.Sprintf(`psql "postgresql://%s:%s@%s/%s"`, demoUser, demoPassword, dialAddr(addr), demoDataset)
}

// takeDemoSnapshot takes the demo dataset's first snapshot in the
// background and says on w when it is ready. The returned function
// cancels the snapshot if still running and waits for it.
func takeDemoSnapshot(ctx context.Context, n *node, w io.Writer, logger *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		start := time.Now()
		s, err := n.proxy.srv.Snapshots().Create(ctx, demoDataset)
		switch {
		case err != nil && ctx.Err() != nil:
		case err != nil:
			logger.Error("demo snapshot failed", "dataset", demoDataset, "err", err)
			fmt.Fprintf(w, "pgtide demo: the offline database could not be created: %v\n", err)
		default:
			fmt.Fprintf(w, "pgtide demo: offline database %s is ready (snapshot %s, %s): %s\n",
				demoDataset, s.ID, time.Since(start).Round(100*time.Millisecond),
				demoPsqlCommand(n.proxy.addr()))
		}
	}()
	return func() {
		cancel()
		wg.Wait()
	}
}

// lockedWriter serializes writes from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
