package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pgtide/pgtide/internal/change"
	"github.com/pgtide/pgtide/internal/changelog"
)

// TestCaptureExternalLog runs the capture role alone against a log it does
// not own (reached through --nats-url), without an admin server.
func TestCaptureExternalLog(t *testing.T) {
	t.Parallel()
	db, dsn := createDB(t, "ext")
	execSQL(t, db, `CREATE TABLE t (id int PRIMARY KEY)`)

	l, err := changelog.Open(t.Context(), changelog.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatalf("open change log: %v", err)
	}
	t.Cleanup(func() { l.Close() })

	cfg := writeConfig(t, "sources:\n  - name: "+db+"\n    dsn: "+dsn+"\n  - name: unused\n    dsn: "+
		"postgres://127.0.0.1:1/unused\n")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	exited := make(chan int, 1)
	go func() {
		exited <- Main(ctx, []string{
			"capture", "--config", cfg, "--source", db, "--nats-url", l.ClientURL(),
			"--admin-listen", "off", "--log-format", "json", "--data-dir", t.TempDir(),
		}, &stdout, &stderr)
	}()
	defer func() {
		cancel()
		<-exited
	}()

	ready := waitReadyLine(t, &stderr, exited)
	if ready.AdminURL != "" || strings.Join(ready.Sources, ",") != db {
		t.Errorf("ready line = %+v, want no admin URL and only source %s", ready, db)
	}

	execSQL(t, db, `INSERT INTO t VALUES (42)`)
	deadline := time.Now().Add(60 * time.Second)
	for {
		var recs []change.Record
		err := l.ReadRange(t.Context(), db, 0, 0, func(m *changelog.Message) error {
			b, err := change.DecodeBatch(m.Data)
			if err != nil {
				return err
			}
			recs = append(recs, b.Records()...)
			return nil
		})
		if err == nil && len(recs) == 1 && string(recs[0].New[0].Data) == "42" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the external log never held the insert (records %v, err %v); stderr:\n%s",
				recs, err, &stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}

	cancel()
	if code := <-exited; code != 0 {
		t.Errorf("capture exited with %d, want 0; stderr:\n%s", code, &stderr)
	}
	exited <- 0 // for the deferred wait
}
