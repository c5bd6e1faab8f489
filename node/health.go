package node

import (
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/ztmesh/ztmesh/internal/buildinfo"
	"github.com/ztmesh/ztmesh/node/api"
)

// Health and build information, for service managers and dashboards.
//
// GET /healthz answers 200 while the process serves at all. GET /readyz
// answers 200 when the node can do its work: its own credential is valid
// now, and it has at least one verified peer, or it has no bootstrap peers
// configured (a first node, alone until others dial it). Otherwise 503,
// with the failing check named. Both are served on the local API and on
// the metrics listener.

// readiness returns whether n is ready, and each check's verdict.
func readiness(n *Node) api.Readiness {
	r := api.Readiness{Ready: true, Checks: map[string]string{}}
	fail := func(check, why string) {
		r.Ready = false
		r.Checks[check] = why
	}
	now := n.now()
	c := n.cred.Load()
	if err := n.verifier.Recheck(c, now); err != nil {
		fail("credential", oneLine(err))
	} else {
		r.Checks["credential"] = "valid until " + c.Expires.Format(time.RFC3339)
	}
	switch v := n.roster.connected.Len(); {
	case v > 0:
		r.Checks["peers"] = fmt.Sprintf("%d verified", v)
	case len(n.s.bootstrap) == 0:
		r.Checks["peers"] = "none verified; no bootstrap peers configured, so waiting alone is expected"
	default:
		fail("peers", fmt.Sprintf("none verified yet (%d bootstrap peers configured)", len(n.s.bootstrap)))
	}
	return r
}

// healthHandlers adds n's /healthz and /readyz to mux.
func healthHandlers(mux *http.ServeMux, n *Node) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		r := readiness(n)
		if !r.Ready {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		writeJSON(w, r)
	})
}

// registerProcess adds the Go runtime and process collectors, the build
// information and the credential's remaining lifetime.
func (m *metrics) registerProcess(n *Node) {
	b := buildinfo.Get()
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "ztmesh_build_info",
			Help:        "Always 1; the labels say which build runs.",
			ConstLabels: prometheus.Labels{"version": b.Version, "commit": b.Commit, "goversion": b.Go},
		}, func() float64 { return 1 }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "ztmesh_credential_expiry_seconds",
			Help: "Seconds until this node's own credential expires (negative once it has).",
		}, func() float64 {
			c := n.cred.Load()
			if c == nil {
				return 0
			}
			return c.Expires.Sub(n.now()).Seconds()
		}),
	)
}
