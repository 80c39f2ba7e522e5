package instance

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// isMount reports whether path is a mount point of this process's view.
func isMount(t *testing.T, path string) bool {
	t.Helper()

	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}

	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == path {
			return true
		}
	}

	return false
}

// treeDigest sums the names, sizes, modes and contents of the files under
// dir.
func treeDigest(t *testing.T, dir string) string {
	t.Helper()

	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}

		info, err := d.Info()
		if err != nil {
			return err
		}

		fmt.Fprintf(h, "%s %d %v\n", p, info.Size(), info.Mode())
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			h.Write(b)

			return err
		}

		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	return fmt.Sprintf("%x", h.Sum(nil))
}

func startClone(t *testing.T, mode, id string) (*Local, Endpoint, string) {
	t.Helper()

	f := getFixture(t)

	// The server user must reach the instances below the temporary
	// directory.
	base := t.TempDir()
	for _, d := range []string{base, filepath.Dir(base)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	drv, err := NewLocal(LocalConfig{DataDir: base, Clone: mode})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { drv.Close() })

	ep, err := drv.Start(t.Context(), Spec{
		ID: id, Dataset: "shop", SnapshotID: f.snap.ID, SnapshotDir: f.snap.DataDir,
		Database: "shop", Role: "pgtide_analyst", Superuser: "postgres",
	})
	if err != nil {
		t.Fatal(err)
	}

	return drv, ep, filepath.Join(drv.dir, id)
}

func TestOverlayCloneLeavesTheSnapshotAlone(t *testing.T) {
	f := getFixture(t)
	before := treeDigest(t, f.snap.DataDir)

	drv, ep, dir := startClone(t, CloneOverlay, "overlay-1")
	if !isMount(t, filepath.Join(dir, "data")) {
		t.Fatal("the data directory of an overlay clone is not a mount")
	}

	conn, err := pgx.Connect(t.Context(), ep.DSN())
	if err != nil {
		t.Fatal(err)
	}

	_, err = conn.Exec(t.Context(), "INSERT INTO people SELECT g, 'w' || g FROM generate_series(2, 5000) g")
	conn.Close(t.Context())
	if err != nil {
		t.Fatal(err)
	}

	if got := queryEmail(t, ep); got == "" || strings.Contains(got, "secret") {
		t.Fatalf("email %q: want the masked value", got)
	}

	if err := drv.Stop(t.Context(), "overlay-1"); err != nil {
		t.Fatal(err)
	}

	if isMount(t, filepath.Join(dir, "data")) {
		t.Fatal("the overlay is still mounted after Stop")
	}

	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("instance directory after Stop: %v", err)
	}

	if after := treeDigest(t, f.snap.DataDir); after != before {
		t.Fatal("writing in an overlay instance changed the snapshot's files")
	}
}

func TestCopyCloneIsNotAMount(t *testing.T) {
	_, ep, dir := startClone(t, CloneCopy, "copy-1")
	if isMount(t, filepath.Join(dir, "data")) {
		t.Fatal("a copy clone is a mount")
	}

	if got := queryEmail(t, ep); got == "" {
		t.Fatal("no email in the copy")
	}
}

func TestReconcileUnmountsOrphanOverlays(t *testing.T) {
	drv, _, dir := startClone(t, CloneOverlay, "overlay-orphan")

	// Forget the instance as a crash would.
	drv.Close()

	again, err := NewLocal(LocalConfig{DataDir: filepath.Dir(drv.dir), Clone: CloneOverlay})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()

	if _, err := again.Reconcile(t.Context()); err != nil {
		t.Fatal(err)
	}

	if isMount(t, filepath.Join(dir, "data")) {
		t.Fatal("the orphan's overlay is still mounted after Reconcile")
	}

	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("orphan directory after Reconcile: %v", err)
	}
}
