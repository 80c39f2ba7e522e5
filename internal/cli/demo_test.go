package cli

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestDemo runs the demo for a few seconds and checks that it prints its
// banner, with the psql commands of the offline dataset and the replica,
// captured inserts and the replica's lag with rows applied, and removes
// its data directory (snapshots included).
func TestDemo(t *testing.T) {
	t.Parallel()
	cfg := writeConfig(t, "nats:\n  embedded:\n    listen: 127.0.0.1:0\nproxy: {listen: \"127.0.0.1:0\"}\n")
	r := mustRun(t, "demo", "--duration", "5s", "--config", cfg, "--admin-listen", "127.0.0.1:0")

	for _, want := range []string{
		"pgtide log tail --nats-url nats://127.0.0.1:", "/metrics", "pgtide status --admin-listen",
		`psql "postgresql://demo:demo@127.0.0.1:`, `/shop"`, "emails are masked",
		"/v1/changes?source=demo&tables=shop.orders&from=now&timeout=30s'",
		"curl -N -H 'Accept: text/event-stream' 'http://127.0.0.1:", "pgtide tail --url http://127.0.0.1:",
		"/demo_replica?", "the replica demo_replica: the same rows",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("demo banner lacks %q:\n%s", want, r.stdout)
		}
	}
	insert := regexp.MustCompile(
		`(?m)^\S+ [0-9A-F]+/[0-9A-F]+:\d+ insert shop\.(orders|customers) key=\{id=\d+\} new=\{`)
	if !insert.MatchString(r.stdout) {
		t.Errorf("demo printed no insert line:\n%s", r.stdout)
	}

	lag := regexp.MustCompile(`(?m)^replica demo_replica: lag \d+(\.\d)?s, [1-9]\d* rows applied$`)
	if !lag.MatchString(r.stdout) {
		t.Errorf("demo printed no replica lag line with rows applied:\n%s", r.stdout)
	}

	dir := regexp.MustCompile(`\(embedded, in (\S+)\)`).FindStringSubmatch(r.stdout)
	if dir == nil {
		t.Fatalf("demo banner does not name its data directory:\n%s", r.stdout)
	}
	if _, err := os.Stat(dir[1]); !os.IsNotExist(err) {
		t.Errorf("demo data directory %s still exists after the demo (stat: %v)", dir[1], err)
	}
}
