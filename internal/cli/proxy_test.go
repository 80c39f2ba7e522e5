package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgtide/pgtide/internal/config"
)

// secretEmail is an original value the offline dataset must mask.
const secretEmail = "carol.secret@corp.example"

// offlineDataDir returns a data directory the OS user postgres can
// traverse: t.TempDir's parents are private to the test's user.
func offlineDataDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pgtide-cli-offline-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestOfflineDatabases takes a snapshot of a dataset with `snapshot
// create`, lists it, and reads it masked through the proxy `up` runs,
// over SCRAM with pgx; then checks the status and pruning.
func TestOfflineDatabases(t *testing.T) {
	t.Parallel()
	db, dsn := createDB(t, "offline")
	execSQL(t, db, `CREATE TABLE customers (id int PRIMARY KEY, email text NOT NULL, city text);
		INSERT INTO customers VALUES (1, '`+secretEmail+`', 'Lyon'), (2, 'dan@shop.example', 'Paris')`)

	dataDir := offlineDataDir(t)
	cfg := writeConfig(t, fmt.Sprintf(`
data_dir: %s
admin: {listen: "127.0.0.1:0"}
nats: {embedded: {listen: "127.0.0.1:0"}}
proxy:
  listen: 127.0.0.1:0
  users: {ann: ann-secret, bob: %q}
datasets:
  shop:
    source: %s
    database: %s
    schedule: "off"
    keep: 1
    rules:
      - {table: customers, column: email, method: email, key: id}
`, dataDir, annVerifierCLI, dsn, db))

	r := mustRun(t, "snapshot", "create", "shop", "--config", cfg)
	if !strings.Contains(r.stdout, "of shop ready") {
		t.Errorf("snapshot create printed %q, want it to say the snapshot is ready", r.stdout)
	}

	r = mustRun(t, "snapshot", "list", "--json", "--config", cfg)
	var list []snapshotListItem
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("snapshot list --json: %v\n%s", err, r.stdout)
	}
	if len(list) != 1 || list[0].Dataset != "shop" || list[0].State != "ready" || list[0].LSN == "" ||
		list[0].Size == 0 || list[0].InUse {
		t.Fatalf("snapshot list --json = %+v, want one ready snapshot of shop, not in use", list)
	}
	first := list[0].ID

	r = mustRun(t, "snapshot", "list", "--config", cfg)
	if !strings.Contains(r.stdout, first) || !strings.Contains(r.stdout, "ready") {
		t.Errorf("snapshot list does not show %s ready:\n%s", first, r.stdout)
	}

	t.Run("usage", func(t *testing.T) {
		if r := run(t, "snapshot", "create", "nope", "--config", cfg); r.code != ExitConfig ||
			!strings.Contains(r.stderr, `no dataset "nope"`) {
			t.Errorf("snapshot create of an unknown dataset: %s\nwant exit 2 naming it", r)
		}
		if r := run(t, "snapshot", "create", "--config", cfg); r.code != ExitConfig {
			t.Errorf("snapshot create without a dataset: %s\nwant exit 2", r)
		}
	})

	// up runs the proxy next to the capture of the same database.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	exited := make(chan int, 1)
	go func() {
		exited <- Main(ctx, []string{"up", "--config", cfg, "--source", dsn, "--log-format", "json"},
			&stdout, &stderr)
	}()
	stopped := false
	stop := func() int {
		cancel()
		if stopped {
			return 0
		}
		stopped = true
		select {
		case code := <-exited:
			return code
		case <-time.After(time.Minute):
			t.Error("pgtide up did not stop within a minute of its context ending")
			return -1
		}
	}
	t.Cleanup(func() { stop() })

	ready := waitReadyLine(t, &stderr, exited)
	proxyAddr := proxyAddrOf(t, stderr.String())

	// ann has a plain password in the file, bob a verifier.
	for _, user := range []string{"ann", "bob"} {
		conn, err := pgx.Connect(t.Context(),
			fmt.Sprintf("postgres://%s:ann-secret@%s/shop?sslmode=disable", user, proxyAddr))
		if err != nil {
			t.Fatalf("connect through the proxy as %s: %v\nstderr:\n%s", user, err, &stderr)
		}
		var email, city string
		err = conn.QueryRow(t.Context(), "SELECT email, city FROM customers WHERE id = 1").Scan(&email, &city)
		conn.Close(context.Background())
		if err != nil {
			t.Fatalf("query through the proxy as %s: %v", user, err)
		}
		if email == secretEmail || !strings.HasSuffix(email, "@corp.example") || city != "Lyon" {
			t.Errorf("customer 1 through the proxy = %q, %q; want a masked email at corp.example, Lyon",
				email, city)
		}
	}

	_, err := pgx.Connect(t.Context(), "postgres://ann:wrong@"+proxyAddr+"/shop?sslmode=disable")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
		t.Errorf("connect with a wrong password: %v, want SQLSTATE 28P01", err)
	}

	t.Run("status", func(t *testing.T) {
		addr := strings.TrimPrefix(ready.AdminURL, "http://")
		r := mustRun(t, "status", "--admin-listen", addr, "--json")
		var doc statusDoc
		if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
			t.Fatalf("status --json: %v\n%s", err, r.stdout)
		}
		if doc.Proxy == nil || doc.Proxy.Listen != proxyAddr || len(doc.Proxy.Snapshots) != 1 ||
			len(doc.Proxy.Instances) != 1 || len(doc.Proxy.Datasets) != 1 || doc.Proxy.Datasets[0].Schedule != "off" {
			t.Errorf("status --json proxy = %+v, want its address, one snapshot, one instance and dataset shop",
				doc.Proxy)
		}

		r = mustRun(t, "status", "--admin-listen", addr)
		for _, want := range []string{"offline databases: proxy on " + proxyAddr, first, "shop"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("status output lacks %q:\n%s", want, r.stdout)
			}
		}

		if code, body := httpGet(t, ready.AdminURL+"/metrics"); code != 200 ||
			!strings.Contains(body, "pgtide_proxy_connections_total") {
			t.Errorf("GET /metrics = %d, want the proxy's metrics", code)
		}
	})

	// A second snapshot makes the first one prunable (keep: 1), but the
	// running instance still uses it.
	mustRun(t, "snapshot", "create", "shop", "--config", cfg)
	r = mustRun(t, "snapshot", "prune", "--config", cfg, "--dataset", "shop")
	if strings.Contains(r.stdout, first) {
		t.Errorf("snapshot prune deleted %s, which an instance uses:\n%s", first, r.stdout)
	}

	if code := stop(); code != 0 {
		t.Fatalf("pgtide up exited with %d, want 0; stderr:\n%s", code, &stderr)
	}
	r = mustRun(t, "snapshot", "prune", "--config", cfg)
	if !strings.Contains(r.stdout, "deleted "+first) {
		t.Errorf("snapshot prune after up stopped: %q, want %s deleted", r.stdout, first)
	}
	r = mustRun(t, "snapshot", "list", "--json", "--config", cfg)
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 1 || list[0].ID == first {
		t.Errorf("snapshot list after prune = %+v (%v), want only the second snapshot", list, err)
	}
}

// proxyAddrOf returns the proxy address of the "pgtide ready" log line.
func proxyAddrOf(t *testing.T, logs string) string {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var l struct {
			Msg       string `json:"msg"`
			ProxyAddr string `json:"proxy_addr"`
		}
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "pgtide ready" && l.ProxyAddr != "" {
			return l.ProxyAddr
		}
	}
	t.Fatalf("the ready line names no proxy address; logs:\n%s", logs)
	return ""
}

// annVerifierCLI is a SCRAM-SHA-256 verifier of the password "ann-secret".
const annVerifierCLI = "SCRAM-SHA-256$4096:9Q1j+2JEoY7W0w2uTW9sKw==$" +
	"h62AnHnZzcae8n52vBq1H3Nr6kA6Xbcw57eAB7n/7gQ=:fO4gsr3goaZG4H7yyABl3xB6mLEul4fgnEK3isqsE3s="

// TestProxyCommand checks the proxy command's usage errors and
// hash-password.
func TestProxyCommand(t *testing.T) {
	t.Parallel()
	r := run(t, "proxy", "--config", writeConfig(t, "log: {level: warn}\n"))
	if r.code != ExitConfig || !strings.Contains(r.stderr, "no datasets configured") {
		t.Errorf("proxy without datasets: %s\nwant exit 2", r)
	}

	noUsers := writeConfig(t, "datasets: {shop: {source: postgres://127.0.0.1:1/shop}}\n"+
		"admin: {listen: \"off\"}\ndata_dir: "+offlineDataDir(t)+"\n")
	r = run(t, "proxy", "--config", noUsers)
	if r.code != ExitConfig || !strings.Contains(r.stderr, "proxy.users is empty") {
		t.Errorf("proxy without users: %s\nwant exit 2 about proxy.users", r)
	}

	var stdout, stderr strings.Builder
	root := (&env{stdout: &stdout, stderr: &stderr}).rootCommand()
	root.SetArgs([]string{"proxy", "hash-password"})
	root.SetIn(strings.NewReader("ann-secret\n"))
	if err := root.ExecuteContext(t.Context()); err != nil {
		t.Fatalf("proxy hash-password: %v", err)
	}
	v := strings.TrimSpace(stdout.String())
	_, err := config.Parse([]byte(fmt.Sprintf("proxy: {users: {ann: %q}}\n", v)), "t.yaml")
	if !strings.HasPrefix(v, "SCRAM-SHA-256$4096:") || err != nil {
		t.Errorf("proxy hash-password printed %q (parse: %v), want a verifier the configuration accepts", v, err)
	}
}
