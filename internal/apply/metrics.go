package apply

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgtide/pgtide/internal/change"
)

// Metrics are the applier's Prometheus metrics, labelled by source and
// replica. One Metrics serves every applier of a process.
type Metrics struct {
	Rows         *prometheus.CounterVec
	Transactions *prometheus.CounterVec
	Groups       *prometheus.CounterVec
	Divergences  *prometheus.CounterVec
	Restarts     *prometheus.CounterVec
	Running      *prometheus.GaugeVec
	AppliedLSN   *prometheus.GaugeVec
	LagSeconds   *prometheus.GaugeVec
	LagBytes     *prometheus.GaugeVec
	RowsPerSec   *prometheus.GaugeVec
}

// NewMetrics creates the applier's metrics and registers them with reg
// (when reg is not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	src := []string{"source", "replica"}
	m := &Metrics{
		Rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgtide_apply_records_total", Help: "Records applied to the target, by operation.",
		}, []string{"source", "replica", "op"}),
		Transactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgtide_apply_transactions_total", Help: "Source transactions applied and committed.",
		}, src),
		Groups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgtide_apply_target_commits_total", Help: "Target transactions committed (each holds one or more source transactions).",
		}, src),
		Divergences: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgtide_apply_divergences_total", Help: "Records that did not fit the target (insert conflict, update or delete of a missing row), by operation.",
		}, []string{"source", "replica", "op"}),
		Restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgtide_apply_restarts_total", Help: "Apply sessions restarted after an error.",
		}, src),
		Running: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pgtide_apply_running", Help: "1 while the applier holds the target and reads the log.",
		}, src),
		AppliedLSN: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pgtide_apply_applied_lsn", Help: "Commit LSN of the last applied source transaction, as a number.",
		}, src),
		LagSeconds: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pgtide_apply_lag_seconds", Help: "Age of the last applied source commit while a backlog exists; 0 when caught up.",
		}, src),
		LagBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pgtide_apply_lag_bytes", Help: "Source WAL between the last applied commit and the newest commit in the log.",
		}, src),
		RowsPerSec: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pgtide_apply_rows_per_second", Help: "Records applied per second, averaged over the last seconds.",
		}, src),
	}
	if reg != nil {
		reg.MustRegister(m.Rows, m.Transactions, m.Groups, m.Divergences, m.Restarts, m.Running,
			m.AppliedLSN, m.LagSeconds, m.LagBytes, m.RowsPerSec)
	}
	return m
}

// sourceMetrics are the metrics of one replica, resolved once so the hot
// path does no label lookups.
type sourceMetrics struct {
	rows         map[change.Op]prometheus.Counter
	divergences  map[string]prometheus.Counter
	transactions prometheus.Counter
	groups       prometheus.Counter
	restarts     prometheus.Counter
	running      prometheus.Gauge
	appliedLSN   prometheus.Gauge
	lagSeconds   prometheus.Gauge
	lagBytes     prometheus.Gauge
	rowsPerSec   prometheus.Gauge
}

func (m *Metrics) forReplica(source, replica string) *sourceMetrics {
	if m == nil {
		m = NewMetrics(nil)
	}
	sm := &sourceMetrics{
		rows:         map[change.Op]prometheus.Counter{},
		divergences:  map[string]prometheus.Counter{},
		transactions: m.Transactions.WithLabelValues(source, replica),
		groups:       m.Groups.WithLabelValues(source, replica),
		restarts:     m.Restarts.WithLabelValues(source, replica),
		running:      m.Running.WithLabelValues(source, replica),
		appliedLSN:   m.AppliedLSN.WithLabelValues(source, replica),
		lagSeconds:   m.LagSeconds.WithLabelValues(source, replica),
		lagBytes:     m.LagBytes.WithLabelValues(source, replica),
		rowsPerSec:   m.RowsPerSec.WithLabelValues(source, replica),
	}
	for _, op := range []change.Op{change.OpInsert, change.OpUpdate, change.OpDelete, change.OpTruncate,
		change.OpDDL, change.OpRead} {
		sm.rows[op] = m.Rows.WithLabelValues(source, replica, string(op))
		sm.divergences[string(op)] = m.Divergences.WithLabelValues(source, replica, string(op))
	}
	return sm
}
