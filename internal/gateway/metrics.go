package gateway

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the gateway's Prometheus metrics.
type metrics struct {
	connections   *prometheus.GaugeVec     // by transport
	subscriptions *prometheus.GaugeVec     // by transport
	delivered     *prometheus.CounterVec   // records, by transport
	lag           *prometheus.HistogramVec // commit to send, by transport
	errors        *prometheus.CounterVec   // by kind
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pgtide_gateway_connections",
			Help: "Open client connections (long polls in progress), by transport.",
		}, []string{"transport"}),
		subscriptions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pgtide_gateway_subscriptions",
			Help: "Active subscriptions, by transport.",
		}, []string{"transport"}),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgtide_gateway_records_delivered_total",
			Help: "Changes written to clients, by transport.",
		}, []string{"transport"}),
		lag: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pgtide_gateway_delivery_lag_seconds",
			Help:    "Time from a change's source commit to its write to a subscriber, by transport.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"transport"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgtide_gateway_errors_total",
			Help: "Errors, by kind (an error code, or decode, predicate, write).",
		}, []string{"kind"}),
	}
	if reg != nil {
		m.connections = register(reg, m.connections)
		m.subscriptions = register(reg, m.subscriptions)
		m.delivered = register(reg, m.delivered)
		m.lag = register(reg, m.lag)
		m.errors = register(reg, m.errors)
	}
	return m
}

// register registers c, or returns the collector already registered under
// its name, so a restarted gateway keeps counting on the same registry.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}
