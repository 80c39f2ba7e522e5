package proxy

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the proxy's Prometheus metrics.
type Metrics struct {
	Connections    *prometheus.CounterVec
	Active         prometheus.Gauge
	BootWait       prometheus.Histogram
	CancelRequests prometheus.Counter
	Bytes          *prometheus.CounterVec
	Relays         *prometheus.CounterVec
}

// NewMetrics creates the proxy's metrics and registers them with reg
// (when reg is not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Connections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgtide_proxy_connections_total",
			Help: "Client connections by outcome of the handshake (ok, auth_failed, unknown_database, limit, boot_failed, backend_error, protocol_error).",
		}, []string{"result"}),
		Active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pgtide_proxy_active_connections", Help: "Client connections being relayed.",
		}),
		BootWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pgtide_proxy_instance_wait_seconds",
			Help:    "Time from authentication to an instance ready for the connection.",
			Buckets: []float64{0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60},
		}),
		CancelRequests: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pgtide_proxy_cancel_requests_total", Help: "Cancel requests forwarded to instances.",
		}),
		Bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgtide_proxy_bytes_total", Help: "Bytes relayed, by direction (client_to_server, server_to_client), counted when connections end.",
		}, []string{"direction"}),
		Relays: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgtide_proxy_relayed_sessions_total", Help: "Sessions relayed, by where their bytes moved (kernel, process).",
		}, []string{"mode"}),
	}

	if reg != nil {
		reg.MustRegister(m.Connections, m.Active, m.BootWait, m.CancelRequests, m.Bytes, m.Relays)
	}

	return m
}
