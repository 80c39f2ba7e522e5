package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pgtide/pgtide/internal/instance/pgproc"
	"github.com/pgtide/pgtide/internal/pgtest"
	"github.com/pgtide/pgtide/internal/snapshot"
)

const (
	annPassword = "ann-secret"
	childEnv    = "PGTIDE_PROXY_TEST_CHILD"
)

// secretEmail and secretSSN are original values masking must hide.
const (
	secretEmail = "carol.hidden.secret@corp.example"
	secretSSN   = "999-88-7777-ssn"
)

const shopSQL = `
CREATE TABLE customers (id int PRIMARY KEY, email text NOT NULL, ssn text, city text);
INSERT INTO customers VALUES (1, '` + secretEmail + `', '` + secretSSN + `', 'Lyon');
INSERT INTO customers SELECT g, 'c' || g || '@shop.example', 's' || g, 'Paris' FROM generate_series(2, 200) g;
CHECKPOINT;
`

var shopRules = []snapshot.Rule{
	{Table: "customers", Column: "email", Method: snapshot.MethodEmail, Key: "id"},
	{Table: "customers", Column: "ssn", Method: snapshot.MethodSHA256},
}

// childConfig is handed to a proxy run as a child process.
type childConfig struct {
	DataDir string
	Listen  string
	Source  string
}

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		runChild()
		return
	}

	code := m.Run()
	if fixStop != nil {
		fixStop()
	}

	os.Exit(code)
}

// runChild serves a proxy until killed; it prints "ready <addr>".
func runChild() {
	var cc childConfig
	if err := json.Unmarshal([]byte(os.Getenv(childEnv)), &cc); err != nil {
		fmt.Println("bad config:", err)
		os.Exit(2)
	}

	s, err := New(context.Background(), proxyConfig(cc.DataDir, cc.Source, cc.Listen))
	if err != nil {
		fmt.Println("start:", err)
		os.Exit(2)
	}

	fmt.Println("ready", s.Addr())
	_ = s.Serve(context.Background())
}

// fixture is a source cluster with dataset shop and one masked snapshot.
type fixture struct {
	src     *pgtest.Cluster
	dataDir string
	snap    snapshot.Snapshot
}

var (
	fixOnce sync.Once
	fix     fixture
	fixErr  error
	fixStop func()
)

func getFixture(t *testing.T) fixture {
	t.Helper()

	fixOnce.Do(func() { fix, fixErr = buildFixture() })
	if fixErr != nil {
		t.Fatal(fixErr)
	}

	return fix
}

func buildFixture() (fixture, error) {
	ctx := context.Background()

	src, err := pgtest.StartCluster(ctx, pgtest.Options{})
	if err != nil {
		return fixture{}, err
	}

	dir, err := os.MkdirTemp("", "pgtide-proxy-")
	if err != nil {
		return fixture{}, err
	}

	fixStop = func() {
		_ = src.Stop(context.Background())
		_ = os.RemoveAll(dir)
	}

	if err := os.Chmod(dir, 0o755); err != nil {
		return fixture{}, err
	}

	if err := src.CreateDatabase(ctx, "shop"); err != nil {
		return fixture{}, err
	}

	if err := src.Exec(ctx, "shop", shopSQL); err != nil {
		return fixture{}, err
	}

	if out, err := src.Command(ctx, "pgbench", "-i", "-s", "1", "-q", "shop").CombinedOutput(); err != nil {
		return fixture{}, fmt.Errorf("pgbench -i: %w: %s", err, out)
	}

	m, err := snapshot.New(proxyConfig(dir, src.DSN("shop"), "").SnapshotConfig())
	if err != nil {
		return fixture{}, err
	}

	snap, err := m.Create(ctx, "shop")
	if err != nil {
		return fixture{}, err
	}

	return fixture{src: src, dataDir: dir, snap: snap}, nil
}

func proxyConfig(dataDir, source, listen string) Config {
	if listen == "" {
		listen = "127.0.0.1:0"
	}

	return Config{
		Listen:  listen,
		DataDir: dataDir,
		Users:   map[string]string{"ann": annPassword, "bob": "bob-secret"},
		Datasets: map[string]Dataset{
			"shop": {Dataset: snapshot.Dataset{Source: source, Rules: shopRules}},
		},
	}
}

// startProxy runs a proxy on the fixture, shut down at the end of the
// test. change adjusts the configuration.
func startProxy(t *testing.T, change func(*Config)) *Server {
	t.Helper()

	f := getFixture(t)
	cfg := proxyConfig(f.dataDir, f.src.DSN("shop"), "")
	if change != nil {
		change(&cfg)
	}

	s, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}

	served := make(chan error, 1)
	go func() { served <- s.Serve(context.Background()) }()

	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()

		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}

		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve = %v, want ErrServerClosed", err)
		}
	})

	return s
}

func dsn(s *Server, user, password, database string) string {
	host, port, _ := strings.Cut(s.Addr().String(), ":")
	return fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=%s sslmode=disable", host, port, user, password, database)
}

func connect(t *testing.T, s *Server, database string) *pgx.Conn {
	t.Helper()

	conn, err := pgx.Connect(t.Context(), dsn(s, "ann", annPassword, database))
	if err != nil {
		t.Fatal(err)
	}

	t.Cleanup(func() { conn.Close(context.Background()) })

	return conn
}

// clientCmd runs a client program (psql, pgbench, pg_dump) against the
// proxy as ann.
func clientCmd(t *testing.T, s *Server, name string, args ...string) *exec.Cmd {
	t.Helper()

	bin, err := pgtest.FindBinDir()
	if err != nil {
		t.Fatal(err)
	}

	host, port, _ := strings.Cut(s.Addr().String(), ":")
	cmd := exec.CommandContext(t.Context(), filepath.Join(bin, name), args...)

	cmd.Env = append(os.Environ(), "PGHOST="+host, "PGPORT="+port, "PGUSER=ann",
		"PGPASSWORD="+annPassword, "PGSSLMODE=disable", "PGDATABASE=shop")

	return cmd
}

func run(t *testing.T, cmd *exec.Cmd, stdin string) string {
	t.Helper()

	cmd.Stdin = strings.NewReader(stdin)

	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}

	return string(out)
}

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}

	return ""
}

func TestPgxMaskedAndStatus(t *testing.T) {
	s := startProxy(t, nil)
	conn := connect(t, s, "shop")

	var email, ssn string
	if err := conn.QueryRow(t.Context(), "SELECT email, ssn FROM customers WHERE id = 1").Scan(&email, &ssn); err != nil {
		t.Fatal(err)
	}

	if email != "user1@corp.example" || ssn == secretSSN || len(ssn) != 64 {
		t.Fatalf("masked row = %q, %q; want user1@corp.example and a sha256 hex", email, ssn)
	}

	var n int
	err := conn.QueryRow(t.Context(), "SELECT count(*) FROM customers WHERE email = $1 OR ssn = $2", secretEmail, secretSSN).Scan(&n)
	if err != nil || n != 0 {
		t.Fatalf("rows with original values = %d, %v; want 0", n, err)
	}

	// The session runs as the dataset role, not as a superuser.
	var super string
	if err := conn.QueryRow(t.Context(), "SHOW is_superuser").Scan(&super); err != nil || super != "off" {
		t.Fatalf("is_superuser = %q, %v; want off", super, err)
	}

	st, err := s.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}

	if len(st.Instances) != 1 || st.Instances[0].Conns != 1 || len(st.Connections) != 1 || len(st.Snapshots) == 0 {
		t.Fatalf("Status = %+v; want one instance, one connection, snapshots", st)
	}

	// A specific snapshot routes to the same instance.
	conn2 := connect(t, s, "shop@"+getFixture(t).snap.ID)
	if err := conn2.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}

	if st := s.ctrl.Status(); len(st) != 1 || st[0].Conns != 2 {
		t.Fatalf("instances after a second connection = %+v, want one with 2 connections", st)
	}
}

func TestPsqlCopyAndDescribe(t *testing.T) {
	s := startProxy(t, func(c *Config) { c.Audit = true })

	out := run(t, clientCmd(t, s, "psql", "-X", "-v", "ON_ERROR_STOP=1", "-c", `\d customers`), "")
	if !strings.Contains(out, `Table "public.customers"`) || !strings.Contains(out, "customers_pkey") {
		t.Fatalf("psql \\d customers:\n%s", out)
	}

	script := `CREATE TEMP TABLE notes (id int, body text);
\copy notes FROM stdin
1	first
2	second
\.
SELECT count(*) AS n FROM notes;
\copy (SELECT id, email FROM customers WHERE id <= 3 ORDER BY id) TO stdout
`
	out = run(t, clientCmd(t, s, "psql", "-X", "-v", "ON_ERROR_STOP=1", "-f", "-"), script)
	for _, want := range []string{"COPY 2", "2\n", "1\tuser1@corp.example", "3\tuser3@shop.example"} {
		if !strings.Contains(out, want) {
			t.Fatalf("psql COPY output lacks %q:\n%s", want, out)
		}
	}

	if strings.Contains(out, secretEmail) {
		t.Fatalf("psql output shows the original email:\n%s", out)
	}

	// Audit parses statements, so these sessions moved in the process.
	if k, p := relayed(s, "kernel"), relayed(s, "process"); k != 0 || p == 0 {
		t.Fatalf("audited sessions relayed: kernel %v, process %v; want all in the process", k, p)
	}
}

// relayed counts the sessions the proxy relayed in mode (kernel,
// process).
func relayed(s *Server, mode string) float64 {
	return testutil.ToFloat64(s.metrics.Relays.WithLabelValues(mode))
}

// TestKernelRelayEndsCleanly checks what the in-kernel relay must not
// lose: the instance's last words when it ends a session, and the end of
// a session whose client hangs up.
func TestKernelRelayEndsCleanly(t *testing.T) {
	s := startProxy(t, func(c *Config) { c.Relay = RelayKernel })
	victim := connect(t, s, "shop")
	killer := connect(t, s, "shop")

	var pid int
	if err := victim.QueryRow(t.Context(), "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}

	var ok bool
	if err := killer.QueryRow(t.Context(), "SELECT pg_terminate_backend($1, 10000)", pid).Scan(&ok); err != nil || !ok {
		t.Fatalf("pg_terminate_backend: %v %v", ok, err)
	}

	_, err := victim.Exec(t.Context(), "SELECT 1")
	if code := pgCode(err); code != "57P01" {
		t.Fatalf("query on a terminated session: %v (SQLSTATE %q), want 57P01 from the instance", err, code)
	}

	killer.Close(t.Context())
	waitFor(t, func() bool {
		st, _ := s.Status(t.Context())
		return len(st.Connections) == 0
	})

	if k, p := relayed(s, "kernel"), relayed(s, "process"); k != 2 || p != 0 {
		t.Fatalf("sessions relayed: kernel %v, process %v; want 2 and 0", k, p)
	}

	if up := testutil.ToFloat64(s.metrics.Bytes.WithLabelValues("client_to_server")); up == 0 {
		t.Fatal("no relayed bytes counted for kernel-relayed sessions")
	}
}

// TestProcessRelay runs clients through the relay in the process, the
// fallback where the kernel relay is not available.
func TestProcessRelay(t *testing.T) {
	s := startProxy(t, func(c *Config) { c.Relay = RelayProcess })

	out := run(t, clientCmd(t, s, "pgbench", "-n", "-t", "30", "-c", "2", "shop"), "")
	if !strings.Contains(out, "number of failed transactions: 0") {
		t.Fatalf("pgbench TPC-B-like output:\n%s", out)
	}

	if k, p := relayed(s, "kernel"), relayed(s, "process"); k != 0 || p != 3 {
		t.Fatalf("sessions relayed: kernel %v, process %v; want 0 and 3 (pgbench opens one more for its setup)", k, p)
	}
}

func TestCancel(t *testing.T) {
	s := startProxy(t, nil)
	conn := connect(t, s, "shop")

	// pgx sends a CancelRequest with the proxy's key when ctx ends.
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()

	start := time.Now()
	_, err := conn.Exec(ctx, "SELECT pg_sleep(60)")
	if err == nil {
		t.Fatal("pg_sleep(60) was not cancelled")
	}

	if time.Since(start) > 30*time.Second {
		t.Fatalf("cancel took %s", time.Since(start))
	}

	// psql sends its CancelRequest on SIGINT, as for Ctrl-C.
	cmd := clientCmd(t, s, "psql", "-X", "-c", "SELECT pg_sleep(60)")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	waitFor(t, func() bool {
		st, _ := s.Status(t.Context())
		for _, c := range st.Connections {
			if c.State == "active" {
				return true
			}
		}

		return false
	})
	time.Sleep(200 * time.Millisecond)
	_ = cmd.Process.Signal(os.Interrupt)
	_ = cmd.Wait()

	if !strings.Contains(out.String(), "canceling statement due to user request") {
		t.Fatalf("psql after SIGINT:\n%s", out.String())
	}
}

func TestPgbenchAndPgDump(t *testing.T) {
	s := startProxy(t, nil)

	out := run(t, clientCmd(t, s, "pgbench", "-n", "-S", "-T", "2", "-c", "2", "shop"), "")
	if !strings.Contains(out, "tps = ") {
		t.Fatalf("pgbench output:\n%s", out)
	}

	out = run(t, clientCmd(t, s, "pgbench", "-n", "-t", "50", "-c", "2", "shop"), "")
	if !strings.Contains(out, "number of failed transactions: 0") {
		t.Fatalf("pgbench TPC-B-like output:\n%s", out)
	}

	out = run(t, clientCmd(t, s, "pg_dump", "-t", "customers", "shop"), "")
	if !strings.Contains(out, "COPY public.customers") || !strings.Contains(out, "user1@corp.example") {
		t.Fatalf("pg_dump output lacks the masked table:\n%.2000s", out)
	}

	if strings.Contains(out, secretEmail) || strings.Contains(out, secretSSN) {
		t.Fatal("pg_dump output holds original values")
	}

	// By default the kernel relays (root on Linux 5.15+, as in CI).
	if k, p := relayed(s, "kernel"), relayed(s, "process"); k == 0 || p != 0 {
		t.Fatalf("sessions relayed: kernel %v, process %v; want all in the kernel", k, p)
	}
}

func TestErrors(t *testing.T) {
	var logs logBuffer
	s := startProxy(t, func(c *Config) {
		c.MaxUserConnections = 1
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})

	tests := []struct {
		name, user, password, database, code string
	}{
		{"wrong_password", "ann", "nope", "shop", codeInvalidPassword},
		{"unknown_user", "mallory", "x", "shop", codeInvalidPassword},
		{"unknown_dataset", "ann", annPassword, "nosuch", codeInvalidCatalogName},
		{"unknown_snapshot", "ann", annPassword, "shop@19990101-000000", codeInvalidCatalogName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := pgx.Connect(t.Context(), dsn(s, tt.user, tt.password, tt.database))
			if got := pgCode(err); got != tt.code {
				t.Fatalf("connect as %s to %s: %v (SQLSTATE %q), want SQLSTATE %s", tt.user, tt.database, err, got, tt.code)
			}
		})
	}

	if len(s.ctrl.Status()) != 0 {
		t.Fatal("an instance was booted for a failed connection")
	}

	t.Run("user_connection_limit", func(t *testing.T) {
		connect(t, s, "shop")

		_, err := pgx.Connect(t.Context(), dsn(s, "ann", annPassword, "shop"))
		if pgCode(err) != codeTooManyConnections {
			t.Fatalf("second connection of ann = %v, want SQLSTATE 53300", err)
		}
	})

	t.Run("live_is_read_only", func(t *testing.T) {
		conn, err := pgx.Connect(t.Context(), dsn(s, "bob", "bob-secret", "shop@live"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())

		var email string
		if err := conn.QueryRow(t.Context(), "SELECT email FROM customers WHERE id = 1").Scan(&email); err != nil {
			t.Fatal(err)
		}

		if _, err := conn.Exec(t.Context(), "INSERT INTO customers VALUES (9999, 'x')"); pgCode(err) != "25006" {
			t.Fatalf("INSERT on @live = %v, want SQLSTATE 25006", err)
		}

		// The fixture's source role is a superuser: the operator is told.
		if n := strings.Count(logs.String(), "live sessions run as a superuser"); n != 1 {
			t.Fatalf("superuser warning logged %d times, want 1:\n%s", n, logs.String())
		}
	})
}

func TestInstanceLimit(t *testing.T) {
	s := startProxy(t, func(c *Config) { c.Instances.Max = 1; c.Instances.Private = true })

	connect(t, s, "shop")

	_, err := pgx.Connect(t.Context(), dsn(s, "bob", "bob-secret", "shop"))
	if pgCode(err) != codeTooManyConnections || !strings.Contains(err.Error(), "max_instances") {
		t.Fatalf("bob's connection over max_instances = %v, want SQLSTATE 53300 naming the limit", err)
	}
}

func TestIdleStopAndReboot(t *testing.T) {
	s := startProxy(t, func(c *Config) { c.Instances.IdleTimeout = 200 * time.Millisecond })

	conn, err := pgx.Connect(t.Context(), dsn(s, "ann", annPassword, "shop"))
	if err != nil {
		t.Fatal(err)
	}

	first := s.ctrl.Status()[0].ID
	conn.Close(t.Context())

	waitFor(t, func() bool { return len(s.ctrl.Status()) == 0 })

	conn2 := connect(t, s, "shop")
	if err := conn2.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}

	if st := s.ctrl.Status(); len(st) != 1 || st[0].ID == first {
		t.Fatalf("instances after reconnect = %+v, want a new one (not %s)", st, first)
	}
}

func TestSIGKILLLeavesNoOrphans(t *testing.T) {
	f := getFixture(t)

	start := func() (*exec.Cmd, string) {
		cfg, _ := json.Marshal(childConfig{DataDir: f.dataDir, Source: f.src.DSN("shop"), Listen: "127.0.0.1:0"})
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+string(cfg))

		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}

		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}

		line, err := bufio.NewReader(stdout).ReadString('\n')
		addr, ok := strings.CutPrefix(strings.TrimSpace(line), "ready ")
		if err != nil || !ok {
			_ = cmd.Process.Kill()
			t.Fatalf("child proxy did not start: %q, %v", line, err)
		}

		return cmd, addr
	}

	query := func(addr string) {
		host, port, _ := strings.Cut(addr, ":")
		conn, err := pgx.Connect(t.Context(), fmt.Sprintf("host=%s port=%s user=ann password=%s dbname=shop sslmode=disable", host, port, annPassword))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())

		var n int
		if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM customers").Scan(&n); err != nil || n != 200 {
			t.Fatalf("count = %d, %v; want 200", n, err)
		}
	}

	cmd, addr := start()
	query(addr)

	instances := filepath.Join(f.dataDir, "instances")
	orphans := pgproc.Postmasters(instances)
	if len(orphans) != 1 {
		t.Fatalf("postmasters under %s = %v, want one", instances, orphans)
	}

	_ = cmd.Process.Kill()
	_ = cmd.Wait()

	if !pgproc.Alive(orphans[0]) {
		t.Fatal("the instance died with the proxy: nothing left to reconcile")
	}

	cmd, addr = start()
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()

		// The last child's instance is an orphan now; a proxy in this
		// process reconciles it.
		startProxy(t, nil)
	}()

	if pgproc.Alive(orphans[0]) {
		t.Fatalf("orphan postmaster %d still running after restart", orphans[0])
	}

	query(addr)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()

	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 30s")
		}

		time.Sleep(20 * time.Millisecond)
	}
}

// TestMemoryLimit runs a session over its instance's memory limit
// through the proxy: the session ends, the instance serves the next one.
func TestMemoryLimit(t *testing.T) {
	s := startProxy(t, func(c *Config) { c.Instances.Memory = 256 << 20 })
	conn := connect(t, s, "shop")

	var limit string
	if err := conn.QueryRow(t.Context(), "SHOW shared_buffers").Scan(&limit); err != nil || limit != "64MB" {
		t.Fatalf("shared_buffers %q (%v), want 64MB: a quarter of the limit", limit, err)
	}

	// string_agg doubles its buffer up to 512 MiB, twice the limit.
	var n int64
	err := conn.QueryRow(t.Context(),
		"SELECT length(string_agg(repeat('x', 64 * 1024 * 1024), '')) FROM generate_series(1, 8)").Scan(&n)
	if err == nil {
		t.Fatalf("a 512 MiB value was built (%d bytes) in an instance limited to 256 MiB", n)
	}

	after := connect(t, s, "shop")
	if err := after.QueryRow(t.Context(), "SELECT count(*) FROM customers").Scan(&n); err != nil || n == 0 {
		t.Fatalf("after the kill: count %d, %v", n, err)
	}
}

// TestWarmPoolServesFirstConnection checks that with a warm pool the
// first connection lands on the instance booted before it arrived.
func TestWarmPoolServesFirstConnection(t *testing.T) {
	s := startProxy(t, func(c *Config) { c.Instances.Warm = 1 })

	var warm string
	waitFor(t, func() bool {
		st, _ := s.Status(t.Context())
		for _, in := range st.Instances {
			if in.Warm && in.State == "warm" {
				warm = in.ID
				return true
			}
		}

		return false
	})

	conn := connect(t, s, "shop")

	var n int
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM customers").Scan(&n); err != nil || n == 0 {
		t.Fatalf("count %d, %v", n, err)
	}

	st, err := s.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}

	if len(st.Instances) != 1 || len(st.Connections) != 1 || st.Connections[0].Instance != warm {
		t.Fatalf("instances %+v, connections %+v: want the one warm instance %s serving", st.Instances, st.Connections, warm)
	}

	// The instance gauge follows the controller: one ready, none warm.
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s.Collector())

	want := `
# HELP pgtide_proxy_instances Instances by state (booting, ready, warm, stopping), read from the resource controller when scraped.
# TYPE pgtide_proxy_instances gauge
pgtide_proxy_instances{state="booting"} 0
pgtide_proxy_instances{state="ready"} 1
pgtide_proxy_instances{state="stopping"} 0
pgtide_proxy_instances{state="warm"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}

// logBuffer collects log output written from several goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()

	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()

	return l.b.String()
}
