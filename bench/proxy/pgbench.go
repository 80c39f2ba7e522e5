package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgtide/pgtide/bench/internal/benchkit"
	"github.com/pgtide/pgtide/internal/instance/pgproc"
	"github.com/pgtide/pgtide/internal/proxy"
)

// target is one way to reach the instance, as libpq environment.
type target struct {
	name string
	env  []string
}

var tpsRE = regexp.MustCompile(`tps = ([0-9.]+)`)

// pgbench runs one pgbench of mode (select_only or tpcb_like) and returns
// its TPS.
func pgbench(ctx context.Context, tg target, mode string, d time.Duration, clients int) (float64, error) {
	runner, err := pgproc.NewRunner("")
	if err != nil {
		return 0, err
	}

	args := []string{"-n", "-T", strconv.Itoa(int(d.Seconds())), "-c", strconv.Itoa(clients), "-j", "2"}
	if mode == "select_only" {
		args = append(args, "-S")
	}

	args = append(args, "bench")

	cmd := exec.CommandContext(ctx, filepath.Join(runner.BinDir(), "pgbench"), args...)
	cmd.Env = append(os.Environ(), "PGSSLMODE=disable")
	cmd.Env = append(cmd.Env, tg.env...)

	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("pgbench %s via %s: %w: %s", mode, tg.name, err, out)
	}

	m := tpsRE.FindStringSubmatch(string(out))
	if m == nil {
		return 0, fmt.Errorf("pgbench %s via %s: no tps in output: %s", mode, tg.name, out)
	}

	return strconv.ParseFloat(m[1], 64)
}

// settle brings the instance to the same state before every run, as
// pgbench -v does (the bench needs -n: its role may not vacuum): tables
// vacuumed, history emptied, a checkpoint, and the machine's dirty pages
// written. Without it the run after a TPC-B-like one paid for that one's
// cleanup, pruning the accounts it had updated (measured: select-only
// through whichever target came next fell by a third).
func settle(ctx context.Context, ep endpoint) error {
	conn, err := pgx.Connect(ctx, fmt.Sprintf("host=127.0.0.1 port=%s user=postgres dbname=bench sslmode=disable", ep.port))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)

	steps := []string{"VACUUM pgbench_branches", "VACUUM pgbench_tellers", "VACUUM pgbench_accounts",
		"TRUNCATE pgbench_history", "CHECKPOINT"}
	for _, q := range steps {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("settle: %s: %w", q, err)
		}
	}

	syscall.Sync()

	return nil
}

// endpoint is the instance's addresses.
type endpoint struct {
	sockDir string
	port    string
}

func endpointOf(srv *proxy.Server) (endpoint, error) {
	st := srv.Controller().Status()
	if len(st) != 1 || st[0].TCPAddr == "" {
		return endpoint{}, fmt.Errorf("want one TCP-enabled instance, have %+v", st)
	}

	_, port, _ := strings.Cut(st[0].TCPAddr, ":")

	return endpoint{sockDir: st[0].Host, port: port}, nil
}

// stopAll waits until the proxy has released every connection, then
// stops the idle instances.
func stopAll(ctx context.Context, srv *proxy.Server) error {
	for {
		busy := false
		for _, st := range srv.Controller().Status() {
			busy = busy || st.Conns > 0
		}

		if !busy {
			return srv.Controller().StopIdle(ctx)
		}

		time.Sleep(10 * time.Millisecond)
	}
}

// bouncer is a PgBouncer in session mode in front of the instance.
type bouncer struct {
	cmd  *exec.Cmd
	port string
}

func (b *bouncer) stop() {
	_ = b.cmd.Process.Kill()
	_ = b.cmd.Wait()
}

// startBouncer runs PgBouncer (as the server user when root) on a free
// loopback port, session pooling, trust auth, forwarding to the
// instance's Unix socket.
func startBouncer(ctx context.Context, dir string, ep endpoint) (*bouncer, error) {
	runner, err := pgproc.NewRunner("")
	if err != nil {
		return nil, err
	}

	bdir := filepath.Join(dir, "pgbouncer")
	if err := os.Mkdir(bdir, 0o755); err != nil {
		return nil, err
	}

	port, err := freePort()
	if err != nil {
		return nil, err
	}

	ini := fmt.Sprintf(`[databases]
bench = host=%s port=%s dbname=bench user=pgtide_analyst

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s/userlist.txt
pool_mode = session
max_client_conn = 100
default_pool_size = 20
logfile = %s/pgbouncer.log
pidfile = %s/pgbouncer.pid
`, ep.sockDir, ep.port, port, bdir, bdir, bdir)

	if err := os.WriteFile(filepath.Join(bdir, "pgbouncer.ini"), []byte(ini), 0o644); err != nil {
		return nil, err
	}

	if err := os.WriteFile(filepath.Join(bdir, "userlist.txt"), []byte(`"pgtide_analyst" ""`+"\n"), 0o644); err != nil {
		return nil, err
	}

	if err := runner.Chown(bdir); err != nil {
		return nil, err
	}

	bin, err := exec.LookPath("pgbouncer")
	if err != nil {
		bin = "/usr/sbin/pgbouncer"
	}

	cmd := runner.Command(context.Background(), bin, nil, filepath.Join(bdir, "pgbouncer.ini"))
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start pgbouncer: %w", err)
	}

	b := &bouncer{cmd: cmd, port: strconv.Itoa(port)}

	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := dialTCP("127.0.0.1:" + b.port)
		if err == nil {
			c.Close()
			return b, nil
		}

		if time.Now().After(deadline) {
			b.stop()
			log, _ := os.ReadFile(filepath.Join(bdir, "pgbouncer.log"))
			return nil, fmt.Errorf("pgbouncer did not start: %s", log)
		}

		time.Sleep(50 * time.Millisecond)
	}
}

// tpsRounds runs each mode against every target rounds times, rotating
// the order of the targets each round, and returns the median TPS by
// "mode/target".
func tpsRounds(ctx context.Context, ep endpoint, targets []target, rounds int, d time.Duration, clients int) (map[string]float64, error) {
	runs := map[string][]float64{}
	for r := range max(rounds, 1) {
		for _, mode := range []string{"select_only", "tpcb_like"} {
			for i := range targets {
				tg := targets[(i+r)%len(targets)]

				if err := settle(ctx, ep); err != nil {
					return nil, err
				}

				cpu0, _ := benchkit.ReadProcStat(os.Getpid())

				tps, err := pgbench(ctx, tg, mode, d, clients)
				if err != nil {
					return nil, err
				}

				// pgtide's proxy runs in this process: its CPU per
				// transaction shows what the relay costs.
				cpu1, _ := benchkit.ReadProcStat(os.Getpid())
				runs[mode+"/"+tg.name] = append(runs[mode+"/"+tg.name], tps)
				fmt.Printf("round %d %-12s %-10s %10.0f tps, this process %.2f µs CPU per transaction\n",
					r+1, mode, tg.name, tps, (cpu1.CPU()-cpu0.CPU())*1e6/(tps*d.Seconds()))
			}
		}
	}

	medians := map[string]float64{}
	for k, v := range runs {
		slices.Sort(v)
		medians[k] = v[len(v)/2]
		fmt.Printf("median %-24s %10.0f tps\n", k, medians[k])
	}

	return medians, nil
}

// tpsResults prints the ratios of one client count and returns its RESULT
// lines: pgtide against PgBouncer, and pgtide against a direct
// connection.
func tpsResults(results map[string]float64, clients int) []string {
	var out []string
	for _, mode := range []string{"select_only", "tpcb_like"} {
		d, p, b := results[mode+"/direct"], results[mode+"/pgtide"], results[mode+"/pgbouncer"]
		name := fmt.Sprintf("proxy_%s_c%d", mode, clients)
		fmt.Printf("%s: direct %.0f tps, pgtide %.2f of direct, pgbouncer %.2f of direct\n", name, d, p/d, b/d)
		out = append(out,
			fmt.Sprintf("RESULT %s_tps pgtide=%.0f reference=%.0f unit=tps ratio=%.2f", name, p, b, p/b),
			fmt.Sprintf("RESULT %s_tps_vs_direct pgtide=%.0f reference=%.0f unit=tps ratio=%.2f", name, p, d, p/d))
	}

	return out
}

// parseCounts parses a comma-separated list of positive integers.
func parseCounts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}

		out = append(out, n)
	}

	return out, nil
}
