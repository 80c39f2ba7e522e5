package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// readyLine is the "pgtide ready" log line of `up`.
type readyLine struct {
	Msg      string   `json:"msg"`
	AdminURL string   `json:"admin_url"`
	NATSURL  string   `json:"nats_url"`
	Sources  []string `json:"sources"`
}

// waitReadyLine waits for `up` to log that it is ready. The deadline only
// bounds a failing test.
func waitReadyLine(t *testing.T, stderr *syncBuffer, exited <-chan int) readyLine {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		sc := bufio.NewScanner(strings.NewReader(stderr.String()))
		for sc.Scan() {
			var l readyLine
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "pgtide ready" {
				return l
			}
		}
		select {
		case code := <-exited:
			t.Fatalf("pgtide up exited with %d before it was ready; stderr:\n%s", code, stderr)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("pgtide up did not log that it is ready; stderr:\n%s", stderr)
		}
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// tailJSON parses the output of `log tail --json`.
func tailJSON(t *testing.T, out string) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log tail --json line %q: %v", line, err)
		}
		recs = append(recs, rec)
	}
	return recs
}

// itemNames returns new.name of the inserts into public.items.
func itemNames(recs []map[string]any) []string {
	var names []string
	for _, r := range recs {
		if r["table"] != "items" || r["op"] != "insert" {
			continue
		}
		if n, ok := r["new"].(map[string]any)["name"].(string); ok {
			names = append(names, n)
		}
	}
	return names
}

// TestUp runs `pgtide up` against a real database and reads what it
// captured with `log tail`, over the embedded listener and from the
// store, and asks it for its status.
func TestUp(t *testing.T) {
	t.Parallel()
	db, dsn := createDB(t, "up_e2e")
	execSQL(t, db, `CREATE TABLE items (id int PRIMARY KEY, name text, note text)`)
	execSQL(t, db, `CREATE TABLE other (id int PRIMARY KEY)`)

	dataDir := t.TempDir()
	cfg := writeConfig(t, "nats:\n  embedded:\n    listen: 127.0.0.1:0\n    sync_interval: 100ms\n")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	exited := make(chan int, 1)
	go func() {
		exited <- Main(ctx, []string{
			"up", "--config", cfg, "--source", dsn, "--data-dir", dataDir,
			"--admin-listen", "127.0.0.1:0", "--log-format", "json",
		}, &stdout, &stderr)
	}()
	// stop ends `up` and returns its exit code; the test calls it, and
	// the cleanup again in case the test failed early.
	code := -1
	stop := func() int {
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
	t.Cleanup(func() { stop() })

	ready := waitReadyLine(t, &stderr, exited)
	if strings.Join(ready.Sources, ",") != db || ready.AdminURL == "" || ready.NATSURL == "" {
		t.Fatalf("ready line = %+v, want source %s, an admin URL and a NATS URL", ready, db)
	}
	if code, body := httpGet(t, ready.AdminURL+"/readyz"); code != http.StatusOK {
		t.Fatalf("GET /readyz = %d %q, want 200", code, body)
	}
	if code, body := httpGet(t, ready.AdminURL+"/metrics"); code != http.StatusOK ||
		!strings.Contains(body, "go_goroutines") {
		t.Errorf("GET /metrics = %d, want 200 with Go metrics", code)
	}

	execSQL(t, db, `INSERT INTO items VALUES (1, 'alpha', NULL), (2, 'beta', 'b'), (3, 'gamma', 'c');
		INSERT INTO other VALUES (1)`)

	// Poll the log until capture has stored the transaction.
	var recs []map[string]any
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := mustRun(t, "log", "tail", "--from", "beginning", "--follow=false", "--json",
			"--nats-url", ready.NATSURL)
		recs = tailJSON(t, r.stdout)
		if len(itemNames(recs)) == 3 && len(recs) == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("log tail never showed the 4 inserted rows; last output:\n%s", r)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := strings.Join(itemNames(recs), ","); got != "alpha,beta,gamma" {
		t.Errorf("items inserted = %s, want alpha,beta,gamma", got)
	}
	first := recs[0]
	if first["source"] != db || first["schema"] != "public" || first["new"].(map[string]any)["note"] != nil {
		t.Errorf("first record = %v, want source %s, schema public and a null note", first, db)
	}
	if last := recs[3]; last["last"] != true || last["table"] != "other" {
		t.Errorf("last record = %v, want the insert into other marked last", last)
	}

	t.Run("human", func(t *testing.T) {
		r := mustRun(t, "log", "tail", "--follow=false", "--tables", "items", "-n", "2",
			"--nats-url", ready.NATSURL)
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if len(lines) != 2 {
			t.Fatalf("log tail -n 2 printed %d lines, want 2:\n%s", len(lines), r.stdout)
		}
		want := " insert public.items key={id=1} new={id=1, name=alpha, note=null}"
		if !strings.Contains(lines[0], want) {
			t.Errorf("line 1 = %q, want it to contain %q", lines[0], want)
		}
	})

	t.Run("follow", func(t *testing.T) {
		// Following from the start stops after -n records.
		r := mustRun(t, "log", "tail", "--from", "beginning", "--tables", "public.other", "-n", "1",
			"--json", "--nats-url", ready.NATSURL)
		if recs := tailJSON(t, r.stdout); len(recs) != 1 || recs[0]["table"] != "other" {
			t.Errorf("log tail --tables public.other -n 1 = %v, want the one insert into other", recs)
		}
	})

	t.Run("glob", func(t *testing.T) {
		r := mustRun(t, "log", "tail", "--follow=false", "--tables", "ite?s", "--json",
			"--nats-url", ready.NATSURL)
		if got := len(tailJSON(t, r.stdout)); got != 3 {
			t.Errorf("log tail --tables ite?s printed %d records, want 3", got)
		}
	})

	t.Run("status", func(t *testing.T) {
		addr := strings.TrimPrefix(ready.AdminURL, "http://")
		r := mustRun(t, "status", "--admin-listen", addr)
		for _, want := range []string{db, "streaming", "pgtide_" + db} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("status output lacks %q:\n%s", want, r.stdout)
			}
		}

		r = mustRun(t, "status", "--admin-listen", addr, "--json")
		var doc statusDoc
		if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
			t.Fatalf("status --json: %v\n%s", err, r.stdout)
		}
		if !doc.Ready || len(doc.Sources) != 1 || doc.Sources[0].Log == nil ||
			doc.Sources[0].Log.LastSeq == 0 || doc.Sources[0].ConfirmedLSN == "" {
			t.Errorf("status --json = %+v, want one ready source with log messages", doc)
		}
	})

	t.Run("store_locked", func(t *testing.T) {
		// The configured listener (port 0) cannot be dialled, and the
		// running process holds the store.
		r := run(t, "log", "tail", "--config", cfg, "--data-dir", dataDir, "--follow=false")
		if r.code != ExitError || !strings.Contains(r.stderr, "in use") {
			t.Errorf("log tail of a store in use: %s\nwant exit 1 saying the store is in use", r)
		}
	})

	t.Run("second_up", func(t *testing.T) {
		r := run(t, "up", "--config", cfg, "--source", dsn, "--data-dir", dataDir,
			"--admin-listen", "127.0.0.1:0")
		if r.code != ExitError || !strings.Contains(r.stderr, "in use") {
			t.Errorf("second up on the same data directory: %s\nwant exit 1 saying it is in use", r)
		}
	})

	if code := stop(); code != 0 {
		t.Fatalf("pgtide up exited with %d after its context ended, want 0; stderr:\n%s", code, &stderr)
	}
	if !strings.Contains(stderr.String(), `"msg":"pgtide stopped"`) {
		t.Errorf("pgtide up did not log that it stopped; stderr:\n%s", &stderr)
	}

	// Stopped, the store opens directly.
	r := mustRun(t, "log", "tail", "--config", cfg, "--data-dir", dataDir, "--follow=false", "--json")
	if got := strings.Join(itemNames(tailJSON(t, r.stdout)), ","); got != "alpha,beta,gamma" {
		t.Errorf("log tail of the stopped store: items %q, want alpha,beta,gamma\n%s", got, r)
	}
}
