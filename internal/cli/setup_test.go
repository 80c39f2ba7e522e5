package cli

import (
	"strings"
	"testing"
)

// TestSetup runs `pgtide setup` on a database with a table that has a key
// and one that has none.
func TestSetup(t *testing.T) {
	t.Parallel()
	// Slots are cluster-wide: the source (and so its slot) is named after
	// the test's own database.
	db, dsn := createDB(t, "kl")
	execSQL(t, db, `CREATE TABLE orders (id int PRIMARY KEY); CREATE TABLE events (msg text)`)
	// With the default initial snapshot, capture creates the slot.
	cfgSnap := writeConfig(t, "sources:\n  - name: "+db+"\n    dsn: "+dsn+"\n")
	r := mustRun(t, "setup", "--config", cfgSnap)
	for _, want := range []string{
		"source " + db + " (",
		"slot pgtide_" + db + ": created by capture on its first start",
		"publication: add to pgtide_" + db + ": public.orders",
		"WARNING: table public.events has no primary key or replica identity: " +
			"only INSERT and TRUNCATE are captured; add a primary key or set keyless: full",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("setup output lacks %q:\n%s", want, r.stdout)
		}
	}

	// Without a snapshot setup creates the slot; a second run changes
	// nothing and still warns.
	cfg := writeConfig(t, "sources:\n  - name: "+db+"\n    dsn: "+dsn+"\n    snapshot: \"off\"\n")
	r = mustRun(t, "setup", "--config", cfg)
	if want := "slot pgtide_" + db + ": created\n"; !strings.Contains(r.stdout, want) {
		t.Errorf("setup output lacks %q:\n%s", want, r.stdout)
	}
	r = mustRun(t, "setup", "--config", cfg, "--source", db)
	for _, want := range []string{
		"slot pgtide_" + db + ": exists",
		"publication pgtide_" + db + ": up to date",
		"WARNING: table public.events",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("second setup output lacks %q:\n%s", want, r.stdout)
		}
	}

	// keyless: full gives the table a replica identity instead.
	cfgFull := writeConfig(t, "sources:\n  - name: "+db+"\n    dsn: "+dsn+"\n    keyless: full\n")
	r = mustRun(t, "setup", "--config", cfgFull)
	if strings.Contains(r.stdout, "WARNING") {
		t.Errorf("setup with keyless: full still warns:\n%s", r.stdout)
	}
}

func TestSetupUnreachable(t *testing.T) {
	t.Parallel()
	cfg := writeConfig(t, "sources:\n  - name: gone\n"+
		"    dsn: postgres://postgres:secret@127.0.0.1:1/gone?connect_timeout=2\n")
	r := run(t, "setup", "--config", cfg)
	if r.code != ExitError || !strings.Contains(r.stdout, "FAILED") ||
		!strings.Contains(r.stderr, "source gone") {
		t.Errorf("setup of an unreachable source: %s\nwant exit 1 naming the source", r)
	}
	if strings.Contains(r.stdout+r.stderr, "secret") {
		t.Errorf("setup output shows the password:\n%s", r)
	}
}
