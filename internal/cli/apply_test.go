package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// queryString runs a query returning one text value in database db.
func queryString(t *testing.T, db, sql string) string {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), sharedPG.DSN(db))
	if err != nil {
		t.Fatalf("connect to %s: %v", db, err)
	}
	defer conn.Close(context.Background())
	var s *string
	if err := conn.QueryRow(t.Context(), sql).Scan(&s); err != nil {
		t.Fatalf("query %q in %s: %v", sql, db, err)
	}
	if s == nil {
		return ""
	}
	return *s
}

// itemsSQL lists the rows of items, in order.
const itemsSQL = `SELECT string_agg(id || '=' || name, ',' ORDER BY id) FROM items`

// waitSameItems waits until replica holds the items of source. The
// deadline only bounds a failing test.
func waitSameItems(t *testing.T, source, replica string) string {
	t.Helper()
	want := queryString(t, source, itemsSQL)
	deadline := time.Now().Add(60 * time.Second)
	for {
		got := ""
		if queryString(t, replica,
			`SELECT pg_catalog.to_regclass('public.items')::text`) != "" {
			got = queryString(t, replica, itemsSQL)
		}
		if got == want {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %s holds items %q, want %q as in %s", replica, got, want, source)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestUpReplica runs `pgtide up --source DSN --replica DSN` against an
// empty target: the schema is copied, rows that existed before arrive
// through the initial snapshot, later changes follow; status and metrics
// show the replica; `apply sync-sequences` brings a sequence in step; and
// `pgtide apply` alone fills a second replica from the stopped store.
func TestUpReplica(t *testing.T) {
	t.Parallel()
	src, srcDSN := createDB(t, "apply_src")
	dst, dstDSN := createDB(t, "apply_dst")
	execSQL(t, src, `CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
		CREATE SEQUENCE tickets;
		INSERT INTO items VALUES (1, 'old-a'), (2, 'old-b'), (3, 'old-c')`)

	dataDir := t.TempDir()
	cfg := writeConfig(t, "nats:\n  embedded:\n    listen: 127.0.0.1:0\n    sync_interval: 100ms\n")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	exited := make(chan int, 1)
	go func() {
		exited <- Main(ctx, []string{
			"up", "--config", cfg, "--source", srcDSN, "--replica", dstDSN, "--data-dir", dataDir,
			"--admin-listen", "127.0.0.1:0", "--log-format", "json",
		}, &stdout, &stderr)
	}()
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
	if got := waitSameItems(t, src, dst); got != "1=old-a,2=old-b,3=old-c" {
		t.Fatalf("replica after the snapshot holds %q", got)
	}

	execSQL(t, src, `INSERT INTO items VALUES (4, 'new-d'), (5, 'new-e');
		UPDATE items SET name = 'changed-a' WHERE id = 1;
		DELETE FROM items WHERE id = 2`)
	if got := waitSameItems(t, src, dst); got != "1=changed-a,3=old-c,4=new-d,5=new-e" {
		t.Fatalf("replica after the changes holds %q", got)
	}

	addr := strings.TrimPrefix(ready.AdminURL, "http://")
	t.Run("status", func(t *testing.T) {
		r := mustRun(t, "status", "--admin-listen", addr)
		for _, want := range []string{"REPLICA", dst, "applying", "LAG"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("status output lacks %q:\n%s", want, r.stdout)
			}
		}

		r = mustRun(t, "status", "--admin-listen", addr, "--json")
		var doc statusDoc
		if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
			t.Fatalf("status --json: %v\n%s", err, r.stdout)
		}
		if len(doc.Replicas) != 1 {
			t.Fatalf("status --json replicas = %+v, want one", doc.Replicas)
		}
		rs := doc.Replicas[0]
		if rs.Name != dst || rs.Source != src || rs.State != "applying" || rs.AppliedID == "" ||
			rs.LastError != "" {
			t.Errorf("status --json replica = %+v, want %s of %s applying with an applied ID", rs, dst, src)
		}
		if code, body := httpGet(t, ready.AdminURL+"/metrics"); code != http.StatusOK ||
			!strings.Contains(body, fmt.Sprintf(`pgtide_apply_records_total{op="insert",replica=%q,source=%q}`, dst, src)) {
			t.Errorf("GET /metrics = %d, want the apply metrics of source %s", code, src)
		}
	})

	t.Run("sync_sequences", func(t *testing.T) {
		execSQL(t, src, `SELECT setval('tickets', 42)`)
		conf := writeConfig(t, fmt.Sprintf("sources: [{name: %s, dsn: '%s'}]\n"+
			"replicas: [{name: copy, source: %s, dsn: '%s', sequence_sync_interval: 'off'}]\n",
			src, srcDSN, src, dstDSN))
		r := mustRun(t, "apply", "sync-sequences", "--config", conf, "--replica", "copy")
		if !strings.Contains(r.stdout, "replica copy: 1 sequences set") {
			t.Errorf("apply sync-sequences printed:\n%s\nwant 1 sequence set", r)
		}
		if got := queryString(t, dst, `SELECT last_value::text FROM tickets`); got != "42" {
			t.Errorf("replica sequence tickets = %s after sync-sequences, want 42", got)
		}
	})

	if code := stop(); code != 0 {
		t.Fatalf("pgtide up exited with %d, want 0; stderr:\n%s", code, &stderr)
	}

	// `pgtide apply` alone, against the stopped store, fills a second
	// replica whose schema it copies.
	dst2, dst2DSN := createDB(t, "apply_dst")
	conf := writeConfig(t, fmt.Sprintf("data_dir: %s\nadmin: {listen: '127.0.0.1:0'}\n"+
		"nats: {embedded: {listen: 'off'}}\n"+
		"sources: [{name: %s, dsn: '%s'}]\n"+
		"replicas:\n  - {name: first, source: %s, dsn: '%s'}\n"+
		"  - {name: second, source: %s, dsn: '%s', create_schema: true}\n",
		dataDir, src, srcDSN, src, dstDSN, src, dst2DSN))
	actx, acancel := context.WithCancel(t.Context())
	var astderr syncBuffer
	aexited := make(chan int, 1)
	go func() {
		aexited <- Main(actx, []string{"apply", "--config", conf, "--replica", "second"}, &syncBuffer{}, &astderr)
	}()
	waitSameItems(t, src, dst2)
	acancel()
	select {
	case code := <-aexited:
		if code != 0 {
			t.Errorf("pgtide apply exited with %d, want 0; stderr:\n%s", code, &astderr)
		}
	case <-time.After(time.Minute):
		t.Error("pgtide apply did not stop within a minute of its context ending")
	}

	// create_schema: true refuses a target that holds tables but no
	// progress of the source: a wrong dsn is not written into.
	other, otherDSN := createDB(t, "apply_other")
	execSQL(t, other, `CREATE TABLE unrelated (id int)`)
	conf = writeConfig(t, fmt.Sprintf("data_dir: %s\nadmin: {listen: 'off'}\n"+
		"nats: {embedded: {listen: 'off'}}\n"+
		"sources: [{name: %s, dsn: '%s'}]\n"+
		"replicas: [{name: wrong, source: %s, dsn: '%s', create_schema: true}]\n",
		dataDir, src, srcDSN, src, otherDSN))
	r := run(t, "apply", "--config", conf)
	if r.code != ExitError || !strings.Contains(r.stderr,
		"create_schema is true, but the target already holds tables (public.unrelated, ...)") {
		t.Errorf("apply onto a target with other tables: %s\nwant exit 1 naming the table", r)
	}
}

// TestApplyUsage checks the usage errors of the apply commands and of up
// --replica.
func TestApplyUsage(t *testing.T) {
	t.Parallel()
	conf := writeConfig(t, "sources: [{name: shop, dsn: 'postgres://h/shop'}]\n"+
		"replicas: [{name: copy, source: shop, dsn: 'postgres://postgres:tgtpw@h/copy'}]\n")
	twoSources := writeConfig(t, "sources:\n  - {name: a, dsn: 'postgres://h/a'}\n  - {name: b, dsn: 'postgres://h/b'}\n")
	bad := writeConfig(t, "sources: [{name: shop, dsn: 'postgres://h/shop'}]\n"+
		"replicas: [{name: copy, source: shop, dsn: 'postgres://postgres:tgtpw@h/copy', on_conflict: skip}]\n")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no_replica", []string{"apply", "--admin-listen", "off"}, "no replica configured"},
		{"unknown_replica", []string{"apply", "--config", conf, "--replica", "nope"},
			`--replica "nope": no such replica in the configuration (configured: copy)`},
		{"sync_unknown", []string{"apply", "sync-sequences", "--config", conf, "--replica", "nope"},
			`no such replica`},
		{"up_replica_no_source", []string{"up", "--replica", "postgres://h/copy"},
			"--replica: 0 sources are configured"},
		{"up_replica_two_sources", []string{"up", "--config", twoSources, "--replica", "postgres://h/copy"},
			"--replica: 2 sources are configured"},
		{"up_replica_is_source", []string{"up", "--source", "postgres://h/shop", "--replica", "postgres://h/shop"},
			`is the dsn of its source "shop"`},
		{"bad_policy", []string{"apply", "--config", bad},
			`replicas[0].on_conflict: "skip" is not a divergence policy`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, tt.args...)
			if r.code != ExitConfig || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("pgtide %s: %s\nwant exit 2 saying %q", strings.Join(tt.args, " "), r, tt.want)
			}
			if strings.Contains(r.stderr, "tgtpw") {
				t.Errorf("pgtide %s shows the target's password:\n%s", strings.Join(tt.args, " "), r)
			}
		})
	}
}
