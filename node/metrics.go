package node

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ztmesh/ztmesh/pubsub"
)

// metrics are the node's Prometheus metrics, in a registry of its own (no
// global state), served at the metrics address.
type metrics struct {
	reg          *prometheus.Registry
	handshakes   *prometheus.CounterVec
	refusals     *prometheus.CounterVec
	quarantines  *prometheus.CounterVec
	attestations *prometheus.CounterVec
	// equivocations counts control artifacts refused because their issuer
	// signed a different one with the same version.
	equivocations *prometheus.CounterVec
}

// zoneMetrics exports the mesh's counters and the versions in force.
func (m *metrics) registerZones(n *Node) {
	counter := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f)
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	st := n.mesh.Stats()
	m.reg.MustRegister(
		counter("ztmesh_messages_published_total", "Zone messages this node published.", func() float64 { return float64(st.Published.Load()) }),
		counter("ztmesh_messages_delivered_total", "Zone messages delivered to local subscribers.", func() float64 { return float64(st.Delivered.Load()) }),
		counter("ztmesh_key_rotations_total", "Sender keys rotated.", func() float64 { return float64(st.KeyRotations.Load()) }),
		counter("ztmesh_sync_refused_total", "Sync streams reset unread: their peer had too many open.", func() float64 { return float64(st.SyncRefused.Load()) }),
		counter("ztmesh_sync_invalid_total", "Sync streams that broke the protocol.", func() float64 { return float64(st.SyncInvalid.Load()) }),
		counter("ztmesh_sync_disconnects_total", "Peers disconnected after too many invalid sync streams.", func() float64 { return float64(st.SyncDisconnects.Load()) }),
		gauge("ztmesh_policy_version", "Version of the policy in force (0: embedded or file).", func() float64 { return float64(n.policy.Version()) }),
		gauge("ztmesh_revocation_list_version", "Highest revocation list version in force.", func() float64 {
			v := uint64(0)
			for _, l := range n.verifier.Revocations().Lists() {
				v = max(v, l.Version)
			}
			return float64(v)
		}),
		&rejectedCollector{st: st, desc: prometheus.NewDesc("ztmesh_messages_rejected_total",
			"Zone and control messages rejected or ignored, by reason.", []string{"reason"}, nil)},
		&trustCollector{n: n,
			trust:       prometheus.NewDesc("ztmesh_peer_effective_trust", "This node's effective trust in each verified peer (0..1).", []string{"did"}, nil),
			quarantined: prometheus.NewDesc("ztmesh_peer_quarantined", "1 if the verified peer is quarantined here.", []string{"did"}, nil)},
	)
}

// trustCollector exports the effective trust and quarantine state of every
// verified peer.
type trustCollector struct {
	n                  *Node
	trust, quarantined *prometheus.Desc
}

func (c *trustCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.trust; ch <- c.quarantined }
func (c *trustCollector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.n.roster.connected.List() {
		trust, _, q := c.n.standing(p.Credential)
		ch <- prometheus.MustNewConstMetric(c.trust, prometheus.GaugeValue, trust, p.DID.String())
		v := 0.0
		if q != "" {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.quarantined, prometheus.GaugeValue, v, p.DID.String())
	}
}

// rejectedCollector exports the mesh's per-reason rejection counts.
type rejectedCollector struct {
	st   *pubsub.Stats
	desc *prometheus.Desc
}

func (c *rejectedCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c *rejectedCollector) Collect(ch chan<- prometheus.Metric) {
	for reason, n := range c.st.Rejected() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(n), reason)
	}
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
	m.quarantines = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ztmesh_quarantine_events_total", Help: "Peers quarantined and released, by event.",
	}, []string{"event"})
	m.attestations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ztmesh_attestations_total", Help: "Peer evidence verified, by result (passed, failed, unchecked: no reference values in force).",
	}, []string{"result"})
	m.equivocations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ztmesh_control_equivocations_total",
		Help: "Control artifacts refused because their issuer signed a different one with the same version, by kind.",
	}, []string{"kind"})
	m.reg.MustRegister(m.handshakes, m.refusals, m.quarantines, m.attestations, m.equivocations,
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
func (m *metrics) quarantine(event string)  { m.quarantines.WithLabelValues(event).Inc() }

// attestation counts a peer's evidence by result: passed, failed, or
// unchecked (no reference values in force to judge it against).
func (m *metrics) attestation(result string) { m.attestations.WithLabelValues(result).Inc() }
