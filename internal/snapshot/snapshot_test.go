package snapshot

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/pgtide/pgtide/internal/pgtest"
)

// secrets are original values the masking rules below must erase from
// every file of a snapshot.
var secrets = []string{"alice.wonder.secret", "123-45-6789-ssn", "Alice Secretname", "private note 4711"}

const sourceSQL = `
CREATE TABLE customers (id int PRIMARY KEY, name text, email text UNIQUE, ssn text, note text);
INSERT INTO customers VALUES
  (1, 'Alice Secretname', 'alice.wonder.secret@example.com', '123-45-6789-ssn', 'private note 4711'),
  (2, 'Bob Plain', 'bob@example.org', '987', NULL);
INSERT INTO customers SELECT g, 'n' || g, 'e' || g || '@x.test', 's' || g, 'note' || g FROM generate_series(3, 500) g;
CREATE INDEX ON customers (ssn);
UPDATE customers SET note = note WHERE id = 1;
ANALYZE customers;
CHECKPOINT;
`

var testRules = []Rule{
	{Table: "customers", Column: "email", Method: MethodEmail, Key: "id"},
	{Table: "public.customers", Column: "ssn", Method: MethodHash},
	{Table: "customers", Column: "name", Method: MethodFixed, Value: "redacted"},
	{Table: "customers", Column: "note", Method: MethodNull},
}

// dataDir returns a fresh directory the server user can traverse.
func dataDir(t *testing.T) string {
	t.Helper()

	dir, err := os.MkdirTemp("", "pgtide-snap-")
	if err != nil {
		t.Fatal(err)
	}

	t.Cleanup(func() { os.RemoveAll(dir) })

	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}

	return dir
}

func startSource(t *testing.T) *pgtest.Cluster {
	t.Helper()

	c := pgtest.Start(t)
	if err := c.CreateDatabase(t.Context(), "shop"); err != nil {
		t.Fatal(err)
	}

	if err := c.Exec(t.Context(), "shop", sourceSQL); err != nil {
		t.Fatal(err)
	}

	return c
}

// filesContaining lists the files below dir holding any of the values.
func filesContaining(t *testing.T, dir string, values []string) []string {
	t.Helper()

	var hits []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}

		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}

		for _, v := range values {
			if bytes.Contains(b, []byte(v)) {
				hits = append(hits, p+": "+v)
			}
		}

		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	return hits
}

func TestCreateMasksAndScrubs(t *testing.T) {
	src := startSource(t)

	// The control: the source's files do hold the values.
	if hits := filesContaining(t, src.DataDir(), secrets[:1]); len(hits) == 0 {
		t.Fatalf("source files do not contain %q: the scrub check below would prove nothing", secrets[0])
	}

	m, err := New(Config{
		DataDir: dataDir(t),
		Datasets: map[string]Dataset{
			"shop": {Source: src.DSN("shop"), Rules: testRules, Keep: 1},
		},
	})
	if err != nil {
		t.Fatal(err)
	}

	snap, err := m.Create(t.Context(), "shop")
	if err != nil {
		t.Fatal(err)
	}

	if snap.State != StateReady || snap.LSN == "" || snap.Size == 0 {
		t.Fatalf("Create = %+v, want ready with LSN and size", snap)
	}

	if hits := filesContaining(t, filepath.Dir(snap.DataDir), secrets); len(hits) > 0 {
		t.Fatalf("original values survive in the snapshot:\n%v", hits)
	}

	got, err := m.Resolve("shop", "")
	if err != nil || got.ID != snap.ID {
		t.Fatalf("Resolve(shop, \"\") = %v, %v; want %s", got.ID, err, snap.ID)
	}

	// A second snapshot makes the first one prunable with Keep 1, unless
	// it is in use.
	snap2, err := m.Create(t.Context(), "shop")
	if err != nil {
		t.Fatal(err)
	}

	deleted, err := m.Prune(t.Context(), func(id string) bool { return id == snap.ID })
	if err != nil || len(deleted) != 0 {
		t.Fatalf("Prune with the old snapshot in use deleted %v, %v; want nothing", deleted, err)
	}

	deleted, err = m.Prune(t.Context(), nil)
	if err != nil || len(deleted) != 1 || deleted[0].ID != snap.ID {
		t.Fatalf("Prune = %v, %v; want %s deleted", deleted, err, snap.ID)
	}

	if _, err := os.Stat(snap.DataDir); !os.IsNotExist(err) {
		t.Fatalf("pruned snapshot's files still exist: %v", err)
	}

	list, err := m.List(t.Context())
	if err != nil || len(list) != 1 || list[0].ID != snap2.ID {
		t.Fatalf("List = %+v, %v; want only %s", list, err, snap2.ID)
	}
}

func TestCreateFailureCleansUp(t *testing.T) {
	src := startSource(t)

	m, err := New(Config{
		DataDir: dataDir(t),
		Datasets: map[string]Dataset{
			"shop": {Source: src.DSN("shop"), Rules: []Rule{{Table: "nosuch", Column: "x", Method: MethodNull}}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}

	snap, err := m.Create(context.Background(), "shop")
	if err == nil {
		t.Fatal("Create with a rule on a missing table succeeded")
	}

	if snap.State != StateFailed || snap.Error == "" {
		t.Fatalf("failed snapshot = %+v, want state failed with an error", snap)
	}

	if _, err := os.Stat(filepath.Dir(snap.DataDir)); !os.IsNotExist(err) {
		t.Fatalf("failed snapshot's files still exist: %v", err)
	}

	if _, err := m.Resolve("shop", ""); err == nil {
		t.Fatal("Resolve found a snapshot after a failed create")
	}
}

func TestDatasetValidate(t *testing.T) {
	tests := []struct {
		name string
		ds   Dataset
	}{
		{"no_source", Dataset{}},
		{"bad_method", Dataset{Source: "x", Rules: []Rule{{Table: "t", Column: "c", Method: "rot13"}}}},
		{"bad_ident", Dataset{Source: "x", Rules: []Rule{{Table: "t; drop", Column: "c", Method: "null"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.ds.Validate("shop"); err == nil {
				t.Fatalf("Validate(%+v) = nil, want an error", tt.ds)
			}
		})
	}
}
