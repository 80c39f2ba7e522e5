package pgtest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestFindBinDir(t *testing.T) {
	dir, err := FindBinDir()
	if err != nil {
		t.Fatalf("FindBinDir() error: %v", err)
	}

	for _, name := range []string{"initdb", "postgres", "pg_ctl"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("FindBinDir() = %q, but %s is missing there: %v", dir, name, err)
		}
	}
}

func TestCluster(t *testing.T) {
	ctx := t.Context()

	c, err := StartCluster(ctx, Options{Settings: map[string]string{"max_connections": "42"}})
	if err != nil {
		t.Fatalf("StartCluster: %v", err)
	}
	t.Cleanup(func() { _ = c.Stop(context.Background()) })

	conn := connect(t, c.DSN("postgres"))
	for setting, want := range map[string]string{
		"wal_level":             "logical",
		"max_connections":       "42", // from Options.Settings
		"max_replication_slots": "20",
		"fsync":                 "off",
		"port":                  strconv.Itoa(c.Port()),
	} {
		if got := show(t, conn, setting); got != want {
			t.Errorf("SHOW %s = %q, want %q", setting, got, want)
		}
	}

	const db = "App Data" // needs quoting: space and upper case
	if err := c.CreateDatabase(ctx, db); err != nil {
		t.Fatalf("CreateDatabase(%q): %v", db, err)
	}

	appConn := connect(t, c.SocketDSN(db))
	var current string
	if err := appConn.QueryRow(ctx, "SELECT current_database()").Scan(&current); err != nil {
		t.Fatalf("current_database over socket: %v", err)
	}
	if current != db {
		t.Errorf("current_database() over SocketDSN(%q) = %q", db, current)
	}

	const setup = "CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2), (3)"
	if err := c.Exec(ctx, db, setup); err != nil {
		t.Fatalf("Exec with two statements: %v", err)
	}

	psql := c.Command(ctx, "psql", "-X", "-d", db, "-Atc", "SELECT count(*) FROM t")
	out, err := psql.CombinedOutput()
	if err != nil {
		t.Fatalf("Command(psql): %v: %s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "3" {
		t.Errorf("psql count(*) = %q, want 3", got)
	}

	var pgErr *pgconn.PgError
	err = c.Exec(ctx, db, "SELECT * FROM missing_table")
	if !errors.As(err, &pgErr) || pgErr.Code != "42P01" {
		t.Errorf("Exec of a query on a missing table: err = %v, want PgError 42P01", err)
	}

	port := c.Port()
	if err := c.Restart(ctx); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if c.Port() != port {
		t.Errorf("Port() after Restart = %d, want %d", c.Port(), port)
	}

	if got := count(t, connect(t, c.DSN(db))); got != 3 {
		t.Errorf("rows in t after Restart = %d, want 3", got)
	}

	pids := serverPIDs(t, c)

	if err := c.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}

	assertGone(t, c, pids)

	if err := c.Stop(ctx); err != nil {
		t.Errorf("second Stop: %v, want nil", err)
	}
	if err := c.Restart(ctx); !errors.Is(err, ErrStopped) {
		t.Errorf("Restart after Stop: %v, want ErrStopped", err)
	}
}

func TestStartCleanup(t *testing.T) {
	var (
		c    *Cluster
		pids []int
	)

	t.Run("helper", func(t *testing.T) {
		c = Start(t)
		pids = serverPIDs(t, c)

		if err := c.Exec(t.Context(), "postgres", "SELECT 1"); err != nil {
			t.Fatalf("Exec: %v", err)
		}
	})

	assertGone(t, c, pids)
}

func TestStartRetriesTakenPort(t *testing.T) {
	taken := listen(t)

	calls := 0
	pick := func() (int, error) {
		calls++
		if calls == 1 {
			return taken, nil
		}

		return freePort()
	}

	c, err := startCluster(t.Context(), Options{}, pick)
	if err != nil {
		t.Fatalf("startCluster with a taken first port: %v", err)
	}
	defer func() {
		if err := c.Stop(context.Background()); err != nil {
			t.Errorf("Stop: %v", err)
		}
	}()

	if calls != 2 {
		t.Errorf("port picker called %d times, want 2", calls)
	}
	if c.Port() == taken {
		t.Errorf("Port() = %d, the taken port", c.Port())
	}
	if err := c.Exec(t.Context(), "postgres", "SELECT 1"); err != nil {
		t.Errorf("Exec after retry: %v", err)
	}
}

func TestStartFailureReportsLogAndCleansUp(t *testing.T) {
	taken := listen(t)

	parent, err := os.MkdirTemp("", "pgtest-parent-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })

	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}

	opts := Options{Dir: parent, Settings: map[string]string{"port": strconv.Itoa(taken)}}

	c, err := StartCluster(t.Context(), opts)
	if err == nil {
		c.Stop(context.Background())
		t.Fatalf("StartCluster on taken fixed port %d: no error", taken)
	}

	for _, want := range []string{"last lines of", "Address already in use"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("StartCluster error lacks %q:\n%v", want, err)
		}
	}

	entries, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("parent directory after failed start holds %d entries, want 0", len(entries))
	}
}

func TestCheckTraversable(t *testing.T) {
	dir := t.TempDir() // 0700, owned by the current user

	stranger := &osUser{name: "stranger", uid: 54321, gid: 54321}

	err := stranger.checkTraversable(dir)
	if err == nil || !strings.Contains(err.Error(), "not traversable") {
		t.Errorf("checkTraversable(%q) for another user: %v, want not traversable",
			dir, err)
	}

	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}

	// t.TempDir's parent is 0700 too.
	if err := os.Chmod(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}

	if err := stranger.checkTraversable(dir); err != nil {
		t.Errorf("checkTraversable(%q) after chmod 0755: %v", dir, err)
	}

	var current *osUser
	if err := current.checkTraversable("/"); err != nil {
		t.Errorf("nil user checkTraversable: %v", err)
	}
}

func TestDSN(t *testing.T) {
	c := &Cluster{port: 54321, socketDir: "/tmp/pg sock"}

	tests := []struct {
		name     string
		dsn      string
		wantHost string
	}{
		{"tcp", c.DSN("my db/x"), "127.0.0.1"},
		{"socket", c.SocketDSN("my db/x"), "/tmp/pg sock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := pgx.ParseConfig(tt.dsn)
			if err != nil {
				t.Fatalf("ParseConfig(%q): %v", tt.dsn, err)
			}

			got := fmt.Sprintf("%s|%d|%s|%s", cfg.Host, cfg.Port, cfg.User, cfg.Database)
			want := fmt.Sprintf("%s|%d|postgres|my db/x", tt.wantHost, c.port)
			if got != want {
				t.Errorf("ParseConfig(%q) = %s, want %s", tt.dsn, got, want)
			}
		})
	}
}

func TestRenderSettings(t *testing.T) {
	got, err := renderSettings(map[string]string{
		"b_setting":  `it's a\path`,
		"a.ext_name": "10",
	})
	if err != nil {
		t.Fatalf("renderSettings: %v", err)
	}

	want := "a.ext_name = '10'\nb_setting = 'it''s a\\\\path'\n"
	if !strings.HasSuffix(got, want) {
		t.Errorf("renderSettings = %q, want suffix %q", got, want)
	}

	for _, bad := range []map[string]string{
		{"bad name": "x"},
		{"x": "line\nbreak"},
		{"": "x"},
	} {
		if _, err := renderSettings(bad); err == nil {
			t.Errorf("renderSettings(%q): no error", bad)
		}
	}
}

func TestVersionOrder(t *testing.T) {
	dirs := []string{"9.6", "15", "10", "beta", "16"}

	version := func(d string) []int { return versionOf(filepath.Join("/x", d, "bin")) }

	newest := dirs[0]
	for _, d := range dirs[1:] {
		if versionLess(version(newest), version(d)) {
			newest = d
		}
	}

	if newest != "16" {
		t.Errorf("newest of %v = %s, want 16", dirs, newest)
	}
}

func TestTailLines(t *testing.T) {
	if got := tailLines("a\nb\nc\n", 2); got != "b\nc" {
		t.Errorf("tailLines(a b c, 2) = %q, want %q", got, "b\nc")
	}
}

// connect opens a pgx connection that the test closes at its end.
func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()

	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatalf("connect %q: %v", dsn, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })

	return conn
}

// show returns the value of a server setting.
func show(t *testing.T, conn *pgx.Conn, setting string) string {
	t.Helper()

	var v string
	if err := conn.QueryRow(t.Context(), "SHOW "+setting).Scan(&v); err != nil {
		t.Fatalf("SHOW %s: %v", setting, err)
	}

	return v
}

// count returns the number of rows in table t.
func count(t *testing.T, conn *pgx.Conn) int {
	t.Helper()

	var n int
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM t").Scan(&n); err != nil {
		t.Fatalf("count rows: %v", err)
	}

	return n
}

// listen holds a TCP port on 127.0.0.1 for the rest of the test.
func listen(t *testing.T) int {
	t.Helper()

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })

	return l.Addr().(*net.TCPAddr).Port
}

// serverPIDs returns the postmaster's pid and its children's.
func serverPIDs(t *testing.T, c *Cluster) []int {
	t.Helper()

	pid, err := postmasterPID(c.DataDir())
	if err != nil {
		t.Fatalf("postmaster pid: %v", err)
	}

	children := childPIDs(pid)
	if len(children) == 0 {
		t.Fatalf("postmaster %d has no child processes in /proc", pid)
	}

	return append([]int{pid}, children...)
}

// assertGone checks that the cluster's directories and processes are gone.
func assertGone(t *testing.T, c *Cluster, pids []int) {
	t.Helper()

	for _, dir := range []string{c.Dir(), c.SocketDir()} {
		if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("after Stop, %s still exists (stat err %v)", dir, err)
		}
	}

	for _, pid := range pids {
		if processAlive(pid) {
			t.Errorf("after Stop, server process %d is alive", pid)
		}
	}

	if p := processesMentioning(c.DataDir()); len(p) > 0 {
		t.Errorf("after Stop, processes %v mention data dir %s", p, c.DataDir())
	}
}

// processesMentioning lists live processes whose command line contains s.
func processesMentioning(s string) []int {
	entries, _ := os.ReadDir("/proc")

	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}

		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), s) && processAlive(pid) {
			pids = append(pids, pid)
		}
	}

	return pids
}

func TestKillPostmaster(t *testing.T) {
	c := Start(t)
	pids := serverPIDs(t, c)

	if err := killPostmaster(pids[0]); err != nil {
		t.Fatalf("killPostmaster(%d): %v", pids[0], err)
	}

	for _, pid := range pids {
		if processAlive(pid) {
			t.Errorf("after killPostmaster, server process %d is alive", pid)
		}
	}

	// Stop copes with a server that is already gone.
	if err := c.Stop(t.Context()); err != nil {
		t.Errorf("Stop after the server was killed: %v", err)
	}

	assertGone(t, c, pids)
}

// A start whose context ends while pg_ctl waits must not leave a server
// (or a shell about to exec one) behind.
func TestStartCanceledLeavesNoServer(t *testing.T) {
	c := Start(t)

	for _, ms := range []int{2, 10, 30, 60} {
		if err := c.stopServer(t.Context()); err != nil {
			t.Fatalf("stopServer: %v", err)
		}

		ctx, cancel := context.WithTimeout(t.Context(), time.Duration(ms)*time.Millisecond)
		_, err := c.startServer(ctx)
		cancel()

		if err == nil {
			continue // the server won the race; it is ours and running
		}

		if p := processesMentioning(c.DataDir()); len(p) > 0 {
			t.Errorf("after start canceled at %d ms, processes %v remain", ms, p)
		}
	}
}
