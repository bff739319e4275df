package node

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/dynakv/dynakv/proxy"
)

// maxCommandLabels bounds the distinct command names that get their own metric
// series; garbage command names from the network share the "other" label.
const maxCommandLabels = 200

// metrics holds the node's Prometheus collectors on a private registry and implements
// proxy.Observer for the front ends.
type metrics struct {
	reg      *prometheus.Registry
	commands *prometheus.CounterVec
	errors   *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	conns    *prometheus.GaugeVec
	siblings prometheus.Histogram

	mu     sync.RWMutex
	series map[[2]string]*commandSeries
}

type commandSeries struct {
	count, errs prometheus.Counter
	latency     prometheus.Observer
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dynakv_commands_total", Help: "Commands executed, by protocol and command.",
		}, []string{"protocol", "command"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dynakv_command_errors_total", Help: "Commands that answered an error, by protocol and command.",
		}, []string{"protocol", "command"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dynakv_command_duration_seconds",
			Help:    "Command latency as seen by the front end, by protocol and command.",
			Buckets: prometheus.ExponentialBuckets(10e-6, 2.5, 12), // 10µs .. ~240ms
		}, []string{"protocol", "command"}),
		conns: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "dynakv_connections", Help: "Open client connections, by protocol.",
		}, []string{"protocol"}),
		siblings: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "dynakv_siblings_per_read", Help: "Live siblings found by each read.",
			Buckets: []float64{0, 1, 2, 3, 5, 10},
		}),
		series: make(map[[2]string]*commandSeries),
	}
	m.reg.MustRegister(m.commands, m.errors, m.latency, m.conns, m.siblings,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) seriesFor(protocol, name string) *commandSeries {
	k := [2]string{protocol, name}
	m.mu.RLock()
	s := m.series[k]
	m.mu.RUnlock()
	if s != nil {
		return s
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if s = m.series[k]; s != nil {
		return s
	}
	if len(m.series) >= maxCommandLabels {
		k[1] = "other"
		if s = m.series[k]; s != nil {
			return s
		}
	}
	s = &commandSeries{
		count:   m.commands.WithLabelValues(k[0], k[1]),
		errs:    m.errors.WithLabelValues(k[0], k[1]),
		latency: m.latency.WithLabelValues(k[0], k[1]),
	}
	m.series[k] = s
	return s
}

// Command implements proxy.Observer.
func (m *metrics) Command(protocol, name string, took time.Duration, failed bool) {
	s := m.seriesFor(protocol, name)
	s.count.Inc()
	if failed {
		s.errs.Inc()
	}
	s.latency.Observe(took.Seconds())
}

// Connection implements proxy.Observer.
func (m *metrics) Connection(protocol string, delta int) {
	m.conns.WithLabelValues(protocol).Add(float64(delta))
}

var _ proxy.Observer = (*metrics)(nil)
