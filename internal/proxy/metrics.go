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

// instancesDesc describes the instance gauge of [Server.Collector].
var instancesDesc = prometheus.NewDesc("pgtide_proxy_instances",
	"Instances by state (booting, ready, warm, stopping), read from the resource controller when scraped.",
	[]string{"state"}, nil)

// instanceCollector reports the controller's instances when scraped.
type instanceCollector struct{ s *Server }

// Collector returns a Prometheus collector of the server's instances by
// state; register it next to the [Metrics].
func (s *Server) Collector() prometheus.Collector { return instanceCollector{s} }

// Describe implements prometheus.Collector.
func (ic instanceCollector) Describe(ch chan<- *prometheus.Desc) { ch <- instancesDesc }

// Collect implements prometheus.Collector.
func (ic instanceCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[string]int{"booting": 0, "ready": 0, "warm": 0, "stopping": 0}
	for _, st := range ic.s.ctrl.Status() {
		counts[st.State]++
	}

	for state, n := range counts {
		ch <- prometheus.MustNewConstMetric(instancesDesc, prometheus.GaugeValue, float64(n), state)
	}
}
