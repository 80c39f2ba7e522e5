package cli

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pgtide/pgtide/internal/config"
	"github.com/pgtide/pgtide/internal/snapshot"
)

// TestScheduler runs the schedule of a dataset without snapshots: the
// first run takes one at once, records it and prunes.
func TestScheduler(t *testing.T) {
	t.Parallel()
	db, dsn := createDB(t, "sched")
	execSQL(t, db, `CREATE TABLE t (id int PRIMARY KEY, secret text); INSERT INTO t VALUES (1, 'x')`)

	dataDir := offlineDataDir(t)
	cfg := config.Config{DataDir: dataDir, Datasets: map[string]config.DatasetConfig{
		"sched": {Source: dsn, Database: db, Rules: []config.MaskRule{
			{Table: "t", Column: "secret", Method: config.MaskNull},
		}},
	}}
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	m, err := snapshot.New(proxyConfig(cfg, dataDir, nil).SnapshotConfig())
	if err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	metrics := newScheduleMetrics(reg)
	s := newScheduler(m, cfg.Datasets, dataDir, nil, metrics, slog.New(slog.DiscardHandler))
	s.start()
	t.Cleanup(s.stop)

	// The deadline only bounds a failing test.
	deadline := time.Now().Add(2 * time.Minute)
	var st datasetStatus
	for {
		st = s.status()[0]
		if st.LastSnapshot != "" || st.LastError != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the scheduler took no snapshot; status %+v", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.stop()

	if st.LastError != "" || st.Schedule != "24h0m0s" || st.Running {
		t.Errorf("status after the first run = %+v, want a snapshot, schedule 24h, not running", st)
	}
	if got := testutil.ToFloat64(metrics.runs.WithLabelValues("sched", runOK)); got != 1 {
		t.Errorf("pgtide_snapshot_runs_total{result=ok} = %v, want 1", got)
	}
	next := s.status()[0].NextRun
	if until := time.Until(next); until < 23*time.Hour || until > 27*time.Hour {
		t.Errorf("next run at %s (in %s), want about 24h to 26.4h from now", next, until)
	}

	snaps, err := m.List(t.Context())
	if err != nil || len(snaps) != 1 || snaps[0].ID != st.LastSnapshot || snaps[0].State != snapshot.StateReady {
		t.Errorf("catalog after the run = %+v (%v), want the one ready snapshot %s", snaps, err, st.LastSnapshot)
	}
	if strings.Contains(st.Source, "password") {
		t.Errorf("status shows the source unredacted: %s", st.Source)
	}
}
