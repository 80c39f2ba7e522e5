package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgtide/pgtide/internal/config"
	"github.com/pgtide/pgtide/internal/instance"
	"github.com/pgtide/pgtide/internal/snapshot"
)

// Results of a scheduled snapshot run, as the runs metric labels them.
const (
	runOK      = "ok"
	runFailed  = "failed"
	runSkipped = "skipped" // a snapshot of the dataset was being taken already
)

// scheduleMetrics are the metrics of scheduled snapshots.
type scheduleMetrics struct {
	runs        *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	lastSuccess *prometheus.GaugeVec
	pruned      *prometheus.CounterVec
}

func newScheduleMetrics(reg prometheus.Registerer) *scheduleMetrics {
	m := &scheduleMetrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgtide_snapshot_runs_total",
			Help: "Scheduled snapshot runs by dataset and result (ok, failed, skipped).",
		}, []string{"dataset", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pgtide_snapshot_duration_seconds",
			Help:    "Time to take and mask a snapshot, successful runs only.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 14), // 1 s to about 2.3 h
		}, []string{"dataset"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pgtide_snapshot_last_success_timestamp_seconds",
			Help: "Unix time the last scheduled snapshot of the dataset became ready.",
		}, []string{"dataset"}),
		pruned: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgtide_snapshots_pruned_total",
			Help: "Snapshots deleted by scheduled pruning, by dataset.",
		}, []string{"dataset"}),
	}
	if reg != nil {
		reg.MustRegister(m.runs, m.duration, m.lastSuccess, m.pruned)
	}
	return m
}

// datasetStatus is the schedule state of one dataset, for /v1/status.
type datasetStatus struct {
	Name         string    `json:"name"`
	Source       string    `json:"source"`   // password redacted
	Schedule     string    `json:"schedule"` // "off" when manual only
	Running      bool      `json:"running"`
	NextRun      time.Time `json:"next_run,omitzero"`
	LastRun      time.Time `json:"last_run,omitzero"`
	LastSnapshot string    `json:"last_snapshot,omitempty"`
	LastError    string    `json:"last_error,omitempty"`
}

// scheduler takes a snapshot of each dataset with a schedule every
// schedule (plus up to a tenth of it at random), then prunes the
// dataset's old snapshots. One goroutine per dataset runs its jobs one
// after the other, so a dataset never has two scheduled runs at once; a
// run is skipped while another process takes a snapshot of the dataset.
type scheduler struct {
	snaps    *snapshot.Manager
	datasets map[string]config.DatasetConfig
	dataDir  string
	inUse    snapshot.InUse // instances of this process
	metrics  *scheduleMetrics
	logger   *slog.Logger

	cancel context.CancelFunc
	wg     sync.WaitGroup

	// mu guards state.
	mu    sync.Mutex
	state map[string]*datasetStatus
}

func newScheduler(
	snaps *snapshot.Manager, datasets map[string]config.DatasetConfig, dataDir string,
	inUse snapshot.InUse, m *scheduleMetrics, logger *slog.Logger,
) *scheduler {
	s := &scheduler{
		snaps:    snaps,
		datasets: datasets,
		dataDir:  dataDir,
		inUse:    inUse,
		metrics:  m,
		logger:   logger,
		state:    map[string]*datasetStatus{},
	}
	for name, d := range datasets {
		sched := config.Off
		if d.Schedule > 0 {
			sched = d.Schedule.String()
		}
		s.state[name] = &datasetStatus{Name: name, Source: d.RedactedSource(), Schedule: sched}
	}
	return s
}

// start starts one goroutine per scheduled dataset.
func (s *scheduler) start() {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	for name, d := range s.datasets {
		if d.Schedule <= 0 {
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.loop(ctx, name, time.Duration(d.Schedule))
		}()
	}
}

// stop cancels the runs in progress and waits for the goroutines.
func (s *scheduler) stop() {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
}

// loop runs the schedule of one dataset until ctx ends.
func (s *scheduler) loop(ctx context.Context, name string, every time.Duration) {
	delay := s.firstDelay(ctx, name, every)
	t := time.NewTimer(delay)
	defer t.Stop()
	for {
		s.update(name, func(st *datasetStatus) { st.NextRun = time.Now().Add(delay).UTC() })
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}

		s.run(ctx, name)
		delay = every + jitter(every)
		t.Reset(delay)
	}
}

// firstDelay is the wait before the first run: none when the dataset has
// no ready snapshot, else until its newest one is every old.
func (s *scheduler) firstDelay(ctx context.Context, name string, every time.Duration) time.Duration {
	snaps, err := s.snaps.List(ctx)
	if err != nil {
		s.logger.Warn("list snapshots failed", "dataset", name, "err", err)
		return jitter(every)
	}
	var newest time.Time
	for _, sn := range snaps {
		if sn.Dataset == name && sn.State == snapshot.StateReady && sn.Created.After(newest) {
			newest = sn.Created
		}
	}
	if newest.IsZero() {
		return 0
	}
	return max(time.Until(newest.Add(every)), 0) + jitter(every)
}

// jitter returns a random wait of up to a tenth of every.
func jitter(every time.Duration) time.Duration {
	if every < 10 {
		return 0
	}
	return rand.N(every / 10)
}

// run takes one snapshot of the dataset and prunes its old ones.
func (s *scheduler) run(ctx context.Context, name string) {
	log := s.logger.With("dataset", name)
	if busy, err := creating(ctx, s.snaps, name); err != nil || busy != nil {
		if err == nil {
			log.Info("snapshot skipped: one is being taken", "snapshot", busy.ID, "pid", busy.PID)
			s.metrics.runs.WithLabelValues(name, runSkipped).Inc()
		} else if ctx.Err() == nil {
			log.Warn("list snapshots failed", "err", err)
		}
		return
	}

	s.update(name, func(st *datasetStatus) { st.Running = true })
	log.Info("snapshot starting")
	start := time.Now()
	snap, err := s.snaps.Create(ctx, name)
	took := time.Since(start)
	s.update(name, func(st *datasetStatus) {
		st.Running = false
		st.LastRun = start.UTC()
		st.LastError = ""
		if err != nil {
			st.LastError = err.Error()
		} else {
			st.LastSnapshot = snap.ID
		}
	})
	switch {
	case err != nil && ctx.Err() != nil:
		return // shutting down
	case err != nil:
		log.Error("snapshot failed", "err", err, "duration", took.Round(time.Millisecond))
		s.metrics.runs.WithLabelValues(name, runFailed).Inc()
		return
	}
	log.Info("snapshot ready",
		"snapshot", snap.ID,
		"lsn", snap.LSN,
		"size", snap.Size,
		"duration", took.Round(time.Millisecond),
	)
	s.metrics.runs.WithLabelValues(name, runOK).Inc()
	s.metrics.duration.WithLabelValues(name).Observe(took.Seconds())
	s.metrics.lastSuccess.WithLabelValues(name).Set(float64(time.Now().Unix()))

	deleted, err := pruneDataset(ctx, s.snaps, s.dataDir, name, s.inUse)
	for _, d := range deleted {
		log.Info("snapshot pruned", "snapshot", d.ID, "state", d.State)
	}
	s.metrics.pruned.WithLabelValues(name).Add(float64(len(deleted)))
	if err != nil && ctx.Err() == nil {
		log.Warn("prune snapshots failed", "err", err)
	}
}

func (s *scheduler) update(name string, f func(*datasetStatus)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s.state[name])
}

// status returns the state of every dataset, sorted by name.
func (s *scheduler) status() []datasetStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]datasetStatus, 0, len(s.state))
	for _, name := range slices.Sorted(maps.Keys(s.state)) {
		out = append(out, *s.state[name])
	}
	return out
}

// creating returns the snapshot of dataset some live process is taking,
// or nil. List marks snapshots of dead processes failed first.
func creating(ctx context.Context, m *snapshot.Manager, dataset string) (*snapshot.Snapshot, error) {
	all, err := m.List(ctx)
	if err != nil {
		return nil, err
	}
	for _, s := range all {
		if s.Dataset == dataset && (s.State == snapshot.StateCreating || s.State == snapshot.StateMasking) {
			return &s, nil
		}
	}
	return nil, nil
}

// pruneDataset prunes the snapshots of dataset ("" means every dataset),
// sparing those that inUse (may be nil) or an instance of any process
// under dataDir uses.
func pruneDataset(
	ctx context.Context, m *snapshot.Manager, dataDir, dataset string, inUse snapshot.InUse,
) ([]snapshot.Snapshot, error) {
	// Snapshots of other datasets count as in use, so Prune leaves them.
	other := map[string]bool{}
	if dataset != "" {
		if _, ok := m.Dataset(dataset); !ok {
			return nil, fmt.Errorf("%w %q", snapshot.ErrUnknownDataset, dataset)
		}
		all, err := m.List(ctx)
		if err != nil {
			return nil, err
		}
		for _, s := range all {
			if s.Dataset != dataset {
				other[s.ID] = true
			}
		}
	}
	used := instance.SnapshotsInUse(dataDir)
	deleted, err := m.Prune(ctx, func(id string) bool {
		return other[id] || used[id] || (inUse != nil && inUse(id))
	})
	if err != nil {
		return deleted, fmt.Errorf("prune snapshots: %w", err)
	}
	return deleted, nil
}

// errSnapshotBusy is returned by `snapshot create` while another process
// takes a snapshot of the same dataset.
var errSnapshotBusy = errors.New("a snapshot of this dataset is being taken")
