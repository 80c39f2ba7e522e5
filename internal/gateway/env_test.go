package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pgtide/pgtide/internal/capture"
	"github.com/pgtide/pgtide/internal/change"
	"github.com/pgtide/pgtide/internal/changelog"
	"github.com/pgtide/pgtide/internal/pgtest"
)

// testEnv is a real source cluster, a running capture, a real embedded
// change log and a gateway on 127.0.0.1.
type testEnv struct {
	pg  *pgtest.Cluster
	log *changelog.Log
	cfg Config
	gw  *Server
	url string // http://addr
	// top is the test that owns the environment; gateways restarted by
	// subtests are shut down when it ends.
	top *testing.T
}

const testSource = "src"

// newTestEnv starts Postgres, capture and the log. Start the gateway with
// startGateway.
func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	pg := pgtest.Start(t)
	l, err := changelog.Open(t.Context(), changelog.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatalf("open change log: %v", err)
	}
	t.Cleanup(func() { l.Close() })

	opts := capture.Options{
		Source: testSource, DSN: pg.DSN("postgres"), Slot: "pgtide_src", Publication: "pgtide_src",
		DDL: true, Log: l, StatusInterval: 100 * time.Millisecond, HeartbeatInterval: time.Second,
		BatchRows: 7,
	}
	if _, err := capture.Setup(t.Context(), opts); err != nil {
		t.Fatalf("capture.Setup: %v", err)
	}
	c, err := capture.New(opts)
	if err != nil {
		t.Fatalf("capture.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("capture.Run: %v", err)
		}
	})
	return &testEnv{pg: pg, log: l, cfg: Config{Listen: "127.0.0.1:0"}, top: t}
}

// startGateway starts a gateway with e.cfg, on the previous gateway's
// address when there was one.
func (e *testEnv) startGateway(t *testing.T) {
	t.Helper()
	cfg := e.cfg
	if e.url != "" {
		cfg.Listen = strings.TrimPrefix(e.url, "http://")
	}
	gw, err := New(cfg, e.log, nil, nil)
	if err != nil {
		t.Fatalf("gateway.New: %v", err)
	}
	if err := gw.Start(t.Context()); err != nil {
		t.Fatalf("gateway.Start: %v", err)
	}
	e.gw, e.url = gw, "http://"+gw.Addr()
	e.top.Cleanup(func() { gw.Shutdown(context.Background()) })
}

// restartGateway shuts the gateway down and starts a new one on the same
// address.
func (e *testEnv) restartGateway(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := e.gw.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	e.startGateway(t)
}

func (e *testEnv) exec(t *testing.T, sql string) {
	t.Helper()
	if err := e.pg.Exec(t.Context(), "postgres", sql); err != nil {
		t.Fatalf("exec %q: %v", sql, err)
	}
}

// logIDs returns the IDs of every record of table in the log, waiting
// until there are at least n.
func (e *testEnv) logIDs(t *testing.T, table string, n int) []string {
	t.Helper()
	subject := changelog.Subject(testSource, "public", table)
	deadline := time.Now().Add(60 * time.Second)
	for {
		var ids []string
		err := e.log.ReadRange(t.Context(), testSource, 0, 0, func(m *changelog.Message) error {
			if m.Subject != subject {
				return nil
			}
			b, err := change.DecodeBatch(m.Data)
			if err != nil {
				return err
			}
			for _, r := range b.Records() {
				ids = append(ids, r.ID.String())
			}
			return nil
		})
		// Capture creates the stream when it starts: until then, wait.
		if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Fatalf("read log: %v", err)
		}
		if len(ids) >= n {
			return ids
		}
		if time.Now().After(deadline) {
			t.Fatalf("log holds %d records of %s, want %d", len(ids), table, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitTable waits until the log holds a change of table, so that the
// gateway knows it.
func (e *testEnv) waitTable(t *testing.T, table string) {
	t.Helper()
	e.logIDs(t, table, 1)
}

// change is a delivered change as a test reads it.
type testChange struct {
	Cursor     string          `json:"cursor"`
	Op         string          `json:"op"`
	Schema     string          `json:"schema"`
	Table      string          `json:"table"`
	LSN        string          `json:"lsn"`
	Pos        uint32          `json:"pos"`
	Xid        uint32          `json:"xid"`
	CommitTime time.Time       `json:"commit_time"`
	Last       bool            `json:"last"`
	Key        json.RawMessage `json:"key"`
	New        json.RawMessage `json:"new"`
	Old        json.RawMessage `json:"old"`
	Unchanged  []string        `json:"unchanged"`
	AckID      string          `json:"ack_id"`
}

func (c testChange) id() string { return fmt.Sprintf("%s:%d", c.LSN, c.Pos) }

// getJSON performs GET url with an optional token and decodes the body
// into v; it returns the status.
func getJSON(t *testing.T, rawURL, token string, v any) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", rawURL, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: status %d, decode body: %v", rawURL, resp.StatusCode, err)
	}
	return resp.StatusCode
}

// apiError is the error body of a failed request.
type apiError struct {
	Error Error `json:"error"`
}

func changesURL(base string, q url.Values) string {
	return base + "/v1/changes?" + q.Encode()
}
