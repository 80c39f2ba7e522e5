package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/jackc/pgx/v5"

	"github.com/pgtide/pgtide/internal/capture"
	"github.com/pgtide/pgtide/internal/change"
	"github.com/pgtide/pgtide/internal/changelog"
	"github.com/pgtide/pgtide/internal/gateway"
	"github.com/pgtide/pgtide/internal/pgtest"
)

const warmUp = 2 * time.Second

// pgtideLatency runs the whole pipeline: Postgres, capture, the embedded
// log and the gateway, with one WebSocket subscriber.
func pgtideLatency(ctx context.Context, rate int, dur time.Duration) (latencyStats, error) {
	// synchronous_commit on, as in production: with it off (the test
	// clusters' default) the walsender sees commits only when the WAL
	// writer flushes, every wal_writer_delay (200 ms).
	pg, err := pgtest.StartCluster(ctx, pgtest.Options{Settings: map[string]string{"synchronous_commit": "on"}})
	if err != nil {
		return latencyStats{}, err
	}
	defer pg.Stop(context.Background())
	dir, err := os.MkdirTemp("", "pgtide-bench-gw-")
	if err != nil {
		return latencyStats{}, err
	}
	defer os.RemoveAll(dir)
	l, err := changelog.Open(ctx, changelog.Config{DataDir: dir})
	if err != nil {
		return latencyStats{}, err
	}
	defer l.Close()

	if err := pg.Exec(ctx, "postgres", `CREATE TABLE t (id bigserial PRIMARY KEY, v text); INSERT INTO t (v) VALUES ('first')`); err != nil {
		return latencyStats{}, err
	}
	opts := capture.Options{
		Source: "bench", DSN: pg.DSN("postgres"), Slot: "pgtide_bench", Publication: "pgtide_bench",
		Log: l, StatusInterval: 100 * time.Millisecond,
	}
	if _, err := capture.Setup(ctx, opts); err != nil {
		return latencyStats{}, err
	}
	c, err := capture.New(opts)
	if err != nil {
		return latencyStats{}, err
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	capDone := make(chan error, 1)
	go func() { capDone <- c.Run(cctx) }()
	defer func() {
		cancel()
		<-capDone
	}()
	if err := pg.Exec(ctx, "postgres", `INSERT INTO t (v) VALUES ('second')`); err != nil {
		return latencyStats{}, err
	}
	for {
		if st, err := l.Info(ctx, "bench"); err == nil && st.Msgs > 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}

	gw, err := gateway.New(gateway.Config{Listen: "127.0.0.1:0"}, l, nil, nil)
	if err != nil {
		return latencyStats{}, err
	}
	if err := gw.Start(ctx); err != nil {
		return latencyStats{}, err
	}
	defer gw.Shutdown(context.Background())

	rec := &recorder{from: time.Now().Add(warmUp)}
	conn, err := dialPgtide(ctx, gw.Addr(), `{"type":"subscribe","id":"s","source":"bench","tables":["public.t"]}`)
	if err != nil {
		return latencyStats{}, err
	}
	defer conn.CloseNow()
	go readPgtide(ctx, conn, nil, rec)

	// For the diagnosis of a slow run: how long until the log stored each
	// change (capture's share of the latency).
	stored := &recorder{from: rec.from}
	go l.Read(cctx, "bench", changelog.ReadOptions{DeliverNew: true}, func(m *changelog.Message) error {
		if b, err := change.DecodeBatch(m.Data); err == nil {
			stored.add(b.CommitTime, m.Time)
		}
		return nil
	})
	defer func() {
		st := stored.stats()
		fmt.Printf("commit to log store: p50 %.2f ms p99 %.2f ms\n", st.p50, st.p99)
	}()

	// Four connections each commit rate/4 single-row transactions per
	// second on a fixed schedule.
	const workers = 4
	end := time.Now().Add(warmUp + dur)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db, err := pgx.Connect(ctx, pg.DSN("postgres"))
			if err != nil {
				errs <- err
				return
			}
			defer db.Close(context.Background())
			interval := time.Duration(float64(time.Second) * workers / float64(rate))
			next := time.Now().Add(time.Duration(w) * interval / workers)
			for next.Before(end) {
				time.Sleep(time.Until(next))
				if _, err := db.Exec(ctx, `INSERT INTO t (v) VALUES ('x')`); err != nil {
					errs <- err
					return
				}
				next = next.Add(interval)
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return latencyStats{}, err
	}
	time.Sleep(time.Second)
	return rec.stats(), nil
}

// dialPgtide connects to a gateway and subscribes.
func dialPgtide(ctx context.Context, addr, subscribe string) (*websocket.Conn, error) {
	conn, _, err := websocket.Dial(ctx, "ws://"+addr+"/v1/ws", nil)
	if err != nil {
		return nil, err
	}
	conn.SetReadLimit(64 << 20)
	if err := conn.Write(ctx, websocket.MessageText, []byte(subscribe)); err != nil {
		conn.CloseNow()
		return nil, err
	}
	_, msg, err := conn.Read(ctx)
	if err != nil {
		conn.CloseNow()
		return nil, err
	}
	if !bytes.Contains(msg, []byte(`"subscribed"`)) {
		conn.CloseNow()
		return nil, fmt.Errorf("subscribe: %s", msg)
	}
	return conn, nil
}

var (
	cursorKey = []byte(`{"cursor":`)
	commitKey = []byte(`"commit_time":"`)
)

// readPgtide counts the changes a connection receives and, with rec,
// records each one's latency from its commit time.
func readPgtide(ctx context.Context, conn *websocket.Conn, count *counter, rec *recorder) {
	for {
		_, msg, err := conn.Read(ctx)
		if err != nil {
			return
		}
		now := time.Now()
		if count != nil {
			count.add(int64(bytes.Count(msg, cursorKey)))
		}
		if rec == nil {
			continue
		}
		for rest := msg; ; {
			i := bytes.Index(rest, commitKey)
			if i < 0 {
				break
			}
			rest = rest[i+len(commitKey):]
			j := bytes.IndexByte(rest, '"')
			if t, err := time.Parse(time.RFC3339Nano, string(rest[:j])); err == nil {
				rec.add(t, now)
			}
		}
	}
}

// counter is a shared count.
type counter struct {
	mu sync.Mutex
	n  int64
}

func (c *counter) add(n int64) {
	c.mu.Lock()
	c.n += n
	c.mu.Unlock()
}

func (c *counter) get() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// stamp is the payload of a reference message.
type stamp struct {
	T int64 `json:"t"`
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
