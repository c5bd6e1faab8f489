package node

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the node's Prometheus metrics, in a registry of its own (no
// global state), served at the metrics address.
type metrics struct {
	reg        *prometheus.Registry
	handshakes *prometheus.CounterVec
	refusals   *prometheus.CounterVec
}

func newMetrics(connected, verified func() float64) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ztmesh_handshakes_total",
			Help: "Credential handshakes received, by outcome (accepted, refused, failed).",
		}, []string{"outcome"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ztmesh_refusals_total",
			Help: "Peers refused or dropped, by reason.",
		}, []string{"reason"}),
	}
	m.reg.MustRegister(m.handshakes, m.refusals,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "ztmesh_peers_connected", Help: "Peers with at least one open connection.",
		}, connected),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "ztmesh_peers_verified", Help: "Connected peers whose credential is verified.",
		}, verified),
	)
	return m
}

func (m *metrics) handshake(outcome string) { m.handshakes.WithLabelValues(outcome).Inc() }
func (m *metrics) refusal(reason string)    { m.refusals.WithLabelValues(reason).Inc() }
