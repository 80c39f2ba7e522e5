package capture

import "github.com/prometheus/client_golang/prometheus"

// Metrics are capture's Prometheus metrics, labelled by source. One
// Metrics serves every source of a process.
type Metrics struct {
	Records       *prometheus.CounterVec
	Transactions  *prometheus.CounterVec
	Messages      *prometheus.CounterVec
	Bytes         *prometheus.CounterVec
	Restarts      *prometheus.CounterVec
	Connected     *prometheus.GaugeVec
	ConfirmedLSN  *prometheus.GaugeVec
	SlotLagBytes  *prometheus.GaugeVec
	LagSeconds    *prometheus.GaugeVec
	RetainedWAL   *prometheus.GaugeVec
	RetentionOver *prometheus.GaugeVec

	SnapshotRows       *prometheus.CounterVec
	SnapshotEstimated  *prometheus.GaugeVec
	SnapshotChunksDone *prometheus.CounterVec
}

// NewMetrics creates capture's metrics and registers them with reg (when
// reg is not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	src := []string{"source"}
	m := &Metrics{
		Records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgtide_capture_records_total", Help: "Change records written to the log, by operation.",
		}, []string{"source", "op"}),
		Transactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgtide_capture_transactions_total", Help: "Source transactions decoded.",
		}, src),
		Messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgtide_capture_log_messages_total", Help: "Messages (record batches) published to the log.",
		}, src),
		Bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgtide_capture_log_bytes_total", Help: "Bytes published to the log.",
		}, src),
		Restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgtide_capture_restarts_total", Help: "Replication sessions restarted after an error.",
		}, src),
		Connected: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pgtide_capture_connected", Help: "1 while the replication stream is running.",
		}, src),
		ConfirmedLSN: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pgtide_capture_confirmed_lsn", Help: "LSN the slot was last confirmed to, as a number.",
		}, src),
		SlotLagBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pgtide_capture_slot_lag_bytes", Help: "Bytes of WAL between the server's position and the slot's confirmed position.",
		}, src),
		LagSeconds: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pgtide_capture_lag_seconds", Help: "Age of the newest source commit in the log while a backlog exists; 0 when caught up.",
		}, src),
		RetainedWAL: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pgtide_capture_retained_wal_bytes", Help: "WAL the server keeps for the slot (current LSN minus restart_lsn).",
		}, src),
		RetentionOver: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pgtide_capture_wal_retention_exceeded", Help: "1 when retained WAL exceeds max_retained_wal.",
		}, src),
		SnapshotRows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgtide_snapshot_rows_total", Help: "Rows written to the log by snapshots.",
		}, src),
		SnapshotEstimated: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pgtide_snapshot_rows_estimated", Help: "Estimated rows of the running snapshot (from the planner's statistics).",
		}, src),
		SnapshotChunksDone: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgtide_snapshot_chunks_done_total", Help: "Snapshot chunks read completely.",
		}, src),
	}
	if reg != nil {
		reg.MustRegister(m.Records, m.Transactions, m.Messages, m.Bytes, m.Restarts, m.Connected,
			m.ConfirmedLSN, m.SlotLagBytes, m.LagSeconds, m.RetainedWAL, m.RetentionOver,
			m.SnapshotRows, m.SnapshotEstimated, m.SnapshotChunksDone)
	}
	return m
}

// sourceMetrics are the metrics of one source, resolved once so the hot
// path does no label lookups.
type sourceMetrics struct {
	records       map[string]prometheus.Counter
	transactions  prometheus.Counter
	messages      prometheus.Counter
	bytes         prometheus.Counter
	restarts      prometheus.Counter
	connected     prometheus.Gauge
	confirmedLSN  prometheus.Gauge
	slotLagBytes  prometheus.Gauge
	lagSeconds    prometheus.Gauge
	retainedWAL   prometheus.Gauge
	retentionOver prometheus.Gauge

	snapshotRows       prometheus.Counter
	snapshotEstimated  prometheus.Gauge
	snapshotChunksDone prometheus.Counter
}

func (m *Metrics) forSource(source string) *sourceMetrics {
	if m == nil {
		m = NewMetrics(nil)
	}
	sm := &sourceMetrics{
		records:       map[string]prometheus.Counter{},
		transactions:  m.Transactions.WithLabelValues(source),
		messages:      m.Messages.WithLabelValues(source),
		bytes:         m.Bytes.WithLabelValues(source),
		restarts:      m.Restarts.WithLabelValues(source),
		connected:     m.Connected.WithLabelValues(source),
		confirmedLSN:  m.ConfirmedLSN.WithLabelValues(source),
		slotLagBytes:  m.SlotLagBytes.WithLabelValues(source),
		lagSeconds:    m.LagSeconds.WithLabelValues(source),
		retainedWAL:   m.RetainedWAL.WithLabelValues(source),
		retentionOver: m.RetentionOver.WithLabelValues(source),

		snapshotRows:       m.SnapshotRows.WithLabelValues(source),
		snapshotEstimated:  m.SnapshotEstimated.WithLabelValues(source),
		snapshotChunksDone: m.SnapshotChunksDone.WithLabelValues(source),
	}
	for _, op := range []string{"insert", "update", "delete", "truncate", "ddl", "read"} {
		sm.records[op] = m.Records.WithLabelValues(source, op)
	}
	return sm
}
