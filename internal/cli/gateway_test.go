package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgtide/pgtide/internal/config"
	"github.com/pgtide/pgtide/internal/gateway"
)

// runningUp is a `pgtide up` running for a test.
type runningUp struct {
	ready  readyLine
	admin  string // host:port of the admin listener
	stderr *syncBuffer
	stop   func() int // ends it and returns its exit code
}

// startUp runs `pgtide up` on dsn with the config file cfg until the test
// ends, and waits until it is ready.
func startUp(t *testing.T, cfg, dsn string) *runningUp {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	u := &runningUp{stderr: &syncBuffer{}}
	var stdout syncBuffer
	exited := make(chan int, 1)
	go func() {
		exited <- Main(ctx, []string{
			"up", "--config", cfg, "--source", dsn, "--data-dir", t.TempDir(),
			"--admin-listen", "127.0.0.1:0", "--log-format", "json",
		}, &stdout, u.stderr)
	}()
	code := -1
	u.stop = func() int {
		cancel()
		if code >= 0 {
			return code
		}
		select {
		case code = <-exited:
		case <-time.After(time.Minute):
			t.Error("pgtide up did not stop within a minute of its context ending")
		}
		return code
	}
	t.Cleanup(func() { u.stop() })
	u.ready = waitReadyLine(t, u.stderr, exited)
	u.admin = strings.TrimPrefix(u.ready.AdminURL, "http://")
	return u
}

// pollResponse is the body of a long poll.
type pollResponse struct {
	Changes []struct {
		Op    string         `json:"op"`
		Table string         `json:"table"`
		New   map[string]any `json:"new"`
	} `json:"changes"`
	Cursor string `json:"cursor"`
}

// longPoll polls /v1/changes at base with query until cond holds for the
// changes from the beginning. The deadline only bounds a failing test.
func longPoll(t *testing.T, base string, query url.Values, cond func(pollResponse) bool) pollResponse {
	t.Helper()
	query.Set("from", "beginning")
	query.Set("timeout", "2s")
	query.Set("limit", "1000")
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, body := httpGet(t, base+"/v1/changes?"+query.Encode())
		var resp pollResponse
		if code == http.StatusOK {
			if err := json.Unmarshal([]byte(body), &resp); err != nil {
				t.Fatalf("long poll answer %q: %v", body, err)
			}
			if cond(resp) {
				return resp
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("long poll %s never showed the changes wanted; last answer %d %s", query.Encode(), code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// countOps counts the changes of op.
func countOps(r pollResponse, op string) int {
	n := 0
	for _, c := range r.Changes {
		if c.Op == op {
			n++
		}
	}
	return n
}

// TestGatewayAndBackfill runs `pgtide up` and reads its captured changes
// through the gateway mounted on the admin listener, with a long poll and
// `pgtide tail`, runs online backfills with `pgtide snapshot backfill`,
// and runs `pgtide gateway` alone over the same log.
func TestGatewayAndBackfill(t *testing.T) {
	t.Parallel()
	db, dsn := createDB(t, "gateway_e2e")
	execSQL(t, db, `CREATE TABLE items (id int PRIMARY KEY, name text);
		INSERT INTO items VALUES (1, 'alpha'), (2, 'beta'), (3, 'gamma')`)
	execSQL(t, db, `CREATE TABLE nokey (v int)`)

	cfg := writeConfig(t, "nats:\n  embedded:\n    listen: 127.0.0.1:0\n    sync_interval: 100ms\n")
	u := startUp(t, cfg, dsn)
	if u.ready.AdminURL == "" {
		t.Fatalf("ready line %+v has no admin URL", u.ready)
	}
	base := u.ready.AdminURL

	execSQL(t, db, `INSERT INTO items VALUES (4, 'delta'), (5, 'epsilon')`)

	// The initial snapshot's reads, then the inserts, by long poll.
	q := url.Values{"source": {db}, "tables": {"public.items"}}
	resp := longPoll(t, base, q, func(r pollResponse) bool { return countOps(r, "insert") == 2 })
	if got := countOps(resp, "read"); got != 3 || len(resp.Changes) != 5 || resp.Cursor == "" {
		t.Fatalf("long poll = %+v, want 3 reads and 2 inserts, and a cursor", resp)
	}
	if c := resp.Changes[3]; c.New["name"] != "delta" || c.New["id"] != float64(4) {
		t.Errorf("4th change new = %v, want id 4 (a JSON number) and name delta", c.New)
	}

	t.Run("tail_json", func(t *testing.T) {
		cursors := filepath.Join(t.TempDir(), "cursor")
		r := mustRun(t, "tail", "--url", base, "--from", "beginning", "-n", "4", "--json",
			"--cursor-file", cursors, "items")
		recs := tailJSON(t, r.stdout)
		if len(recs) != 4 || recs[3]["op"] != "insert" || recs[3]["new"].(map[string]any)["name"] != "delta" {
			t.Fatalf("tail --json -n 4 = %v, want 3 reads and the insert of delta", recs)
		}
		saved, err := os.ReadFile(cursors)
		if err != nil || strings.TrimSpace(string(saved)) != recs[3]["cursor"] {
			t.Errorf("cursor file = %q (%v), want the 4th change's cursor %v", saved, err, recs[3]["cursor"])
		}

		// Resuming from the file: the next change, and the file moves on.
		r = mustRun(t, "tail", "--url", base, "-n", "1", "--json", "--cursor-file", cursors, "public.items")
		recs = tailJSON(t, r.stdout)
		if len(recs) != 1 || recs[0]["new"].(map[string]any)["name"] != "epsilon" {
			t.Errorf("tail resumed from the cursor file = %v, want the insert of epsilon", recs)
		}
	})

	t.Run("tail_human", func(t *testing.T) {
		r := mustRun(t, "tail", "--admin-listen", u.admin, "--from", "beginning", "-n", "1", "items")
		want := " read public.items key={id=1} new={id=1, name=alpha}"
		if !strings.Contains(r.stdout, want) {
			t.Errorf("tail printed %q, want a line containing %q", r.stdout, want)
		}
	})

	t.Run("tail_bad_cursor", func(t *testing.T) {
		r := run(t, "tail", "--url", base, "--from", "garbage", "-n", "1", "items")
		if r.code != ExitConfig || !strings.Contains(r.stderr, "invalid_cursor") {
			t.Errorf("tail --from garbage: %s\nwant exit 2 with invalid_cursor", r)
		}
	})

	t.Run("backfill", func(t *testing.T) {
		r := mustRun(t, "snapshot", "backfill", "--admin-listen", u.admin, "items")
		if !strings.Contains(r.stdout, "items") || !strings.HasSuffix(strings.TrimSpace(r.stdout), "5 rows (done)") {
			t.Errorf("snapshot backfill printed %q, want progress of items ending in 5 rows done", r.stdout)
		}
		// The backfill's rows follow the snapshot's in the log.
		q := url.Values{"source": {db}, "tables": {"public.items"}, "ops": {"read"}}
		longPoll(t, base, q, func(r pollResponse) bool { return len(r.Changes) == 3+5 })
	})

	t.Run("backfill_no_wait", func(t *testing.T) {
		r := mustRun(t, "snapshot", "backfill", "--admin-listen", u.admin, "--no-wait", "--source", db,
			"public.items")
		if id := strings.TrimSpace(r.stdout); id == "" || strings.Contains(id, " ") {
			t.Errorf("snapshot backfill --no-wait printed %q, want the backfill id", r.stdout)
		}
	})

	t.Run("backfill_errors", func(t *testing.T) {
		for _, tt := range []struct {
			args []string
			want string
		}{
			{[]string{"nosuch"}, `table "nosuch" is not captured by source`},
			{[]string{"nokey"}, "no primary key or replica identity index"},
			{[]string{"--source", "other", "items"}, `no source "other" here`},
		} {
			args := append([]string{"snapshot", "backfill", "--admin-listen", u.admin}, tt.args...)
			r := run(t, args...)
			if r.code != ExitConfig || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("pgtide %s: %s\nwant exit 2 saying %q", strings.Join(args, " "), r, tt.want)
			}
		}
	})

	t.Run("status", func(t *testing.T) {
		r := mustRun(t, "status", "--admin-listen", u.admin)
		if !strings.Contains(r.stdout, "gateway: "+base+" (no auth)") {
			t.Errorf("status lacks the gateway line:\n%s", r.stdout)
		}
	})

	t.Run("gateway_bad_grant", func(t *testing.T) {
		// A predicate only the gateway compiles.
		gcfg := writeConfig(t, "gateway:\n  tokens:\n    - {name: web, sha256: "+
			"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08, where: 'new.x >'}\n")
		r := run(t, "gateway", "--config", gcfg, "--nats-url", u.ready.NATSURL, "--admin-listen", "off")
		if r.code != ExitConfig || !strings.Contains(r.stderr, "gateway configuration: gateway: token 1 (web)") {
			t.Errorf("gateway with a bad grant predicate: %s\nwant exit 2 naming the token", r)
		}
	})

	t.Run("gateway_role", func(t *testing.T) {
		gcfg := writeConfig(t, "gateway:\n  listen: 127.0.0.1:0\n")
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var stdout, stderr syncBuffer
		exited := make(chan int, 1)
		go func() {
			exited <- Main(ctx, []string{"gateway", "--config", gcfg, "--nats-url", u.ready.NATSURL,
				"--admin-listen", "off", "--log-format", "json"}, &stdout, &stderr)
		}()
		gwURL := waitLogField(t, &stderr, exited, "gateway ready", "url")
		longPoll(t, gwURL, url.Values{"source": {db}, "tables": {"public.items"}},
			func(r pollResponse) bool { return countOps(r, "insert") == 2 })
		cancel()
		if code := <-exited; code != 0 {
			t.Errorf("pgtide gateway exited with %d, want 0; stderr:\n%s", code, &stderr)
		}
	})

	if code := u.stop(); code != 0 {
		t.Fatalf("pgtide up exited with %d, want 0; stderr:\n%s", code, u.stderr)
	}
}

// waitLogField waits for the JSON log line with message msg and returns
// its field key. The deadline only bounds a failing test.
func waitLogField(t *testing.T, stderr *syncBuffer, exited <-chan int, msg, key string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		sc := bufio.NewScanner(strings.NewReader(stderr.String()))
		for sc.Scan() {
			var l map[string]any
			if json.Unmarshal(sc.Bytes(), &l) == nil && l["msg"] == msg {
				v, _ := l[key].(string)
				return v
			}
		}
		select {
		case code := <-exited:
			t.Fatalf("exited with %d before logging %q; stderr:\n%s", code, msg, stderr)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q log line; stderr:\n%s", msg, stderr)
		}
	}
}

// TestUp_gatewayNeedsAuth checks that up refuses to serve the gateway
// without authentication on an admin listener other machines reach.
func TestUp_gatewayNeedsAuth(t *testing.T) {
	t.Parallel()
	r := run(t, "up", "--source", "postgres://localhost/x", "--admin-listen", "0.0.0.0:0",
		"--data-dir", t.TempDir())
	if r.code != ExitConfig || !strings.Contains(r.stderr, "has no authentication") {
		t.Errorf("up with a public admin listener and no gateway auth: %s\nwant exit 2 saying why", r)
	}
}

// TestGatewayConfigErrors checks that problems with the gateway keys are
// reported with file lines, and that grant problems only the gateway can
// find are configuration errors too.
func TestGatewayConfigErrors(t *testing.T) {
	t.Parallel()
	cfg := writeConfig(t, "gateway:\n  listen: 0.0.0.0:7071\n  send_buffer: 0\n"+
		"  jwt: {issuer: https://auth.example.com}\n")
	r := run(t, "gateway", "--config", cfg)
	for _, want := range []string{
		"pgtide.yaml:2: gateway.listen:", "has no authentication",
		"pgtide.yaml:3: gateway.send_buffer: 0 is out of range",
		"pgtide.yaml:4: gateway.jwt.issuer: is set but no JWT key is",
	} {
		if r.code != ExitConfig || !strings.Contains(r.stderr, want) {
			t.Errorf("gateway with bad keys: %s\nwant exit 2 saying %q", r, want)
		}
	}
}

// TestGatewayDefaults checks that the configuration's gateway defaults
// are the gateway's own.
func TestGatewayDefaults(t *testing.T) {
	g := config.Default().Gateway
	got := gatewayConfig(g, "")
	want := gateway.Config{
		SendBuffer:          gateway.DefaultSendBuffer,
		SlowConsumerTimeout: gateway.DefaultSlowConsumerTimeout,
		Heartbeat:           gateway.DefaultHeartbeat,
		CacheMessages:       gateway.DefaultCacheMessages,
		CacheBytes:          gateway.DefaultCacheBytes,
		MaxPollTimeout:      gateway.DefaultMaxPollTimeout,
		MaxSubscriptions:    gateway.DefaultMaxSubscriptions,
		AckWait:             gateway.DefaultAckWait,
	}
	if got.SendBuffer != want.SendBuffer || got.SlowConsumerTimeout != want.SlowConsumerTimeout ||
		got.Heartbeat != want.Heartbeat || got.CacheMessages != want.CacheMessages ||
		got.CacheBytes != want.CacheBytes || got.MaxPollTimeout != want.MaxPollTimeout ||
		got.MaxSubscriptions != want.MaxSubscriptions || got.AckWait != want.AckWait {
		t.Errorf("gatewayConfig(defaults) = %+v, want the gateway's defaults %+v", got, want)
	}
	if config.DefaultGatewayListen != gateway.DefaultListen {
		t.Errorf("config.DefaultGatewayListen = %q, gateway.DefaultListen = %q", config.DefaultGatewayListen,
			gateway.DefaultListen)
	}
}

// TestHashToken checks the digest `gateway hash-token` prints, which is
// what sha256sum prints for the token. It swaps os.Stdin, so it does not
// run in parallel.
func TestHashToken(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin := os.Stdin
	os.Stdin = r
	t.Cleanup(func() { os.Stdin = stdin; r.Close() })
	if _, err := w.WriteString("test\n"); err != nil {
		t.Fatal(err)
	}
	w.Close()

	res := mustRun(t, "gateway", "hash-token")
	const want = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n"
	if res.stdout != want {
		t.Errorf("hash-token of %q printed %q, want %q", "test", res.stdout, want)
	}
}
