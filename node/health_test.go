package node

import (
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/node/api"
)

// TestReadiness: a node alone by design is ready; one with bootstrap peers
// is not until a peer is verified, and says why; /healthz is always ok.
func TestReadiness(t *testing.T) {
	m := newMesh(t)
	a := m.start()
	if r := readiness(a.Node); !r.Ready {
		t.Fatalf("a node with no bootstrap peers is not ready: %v", r.Checks)
	}
	// b bootstraps to a peer that is not there.
	ghost, _ := did.GenerateIdentity(rand.Reader)
	b := m.start(func(c *Config) {
		c.Bootstrap = []string{"/ip4/127.0.0.1/tcp/9/p2p/" + ghost.PeerID().String()}
	})
	mux := http.NewServeMux()
	healthHandlers(mux, b.Node)
	get := func(path string) (int, api.Readiness) {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		var r api.Readiness
		if path == "/readyz" {
			if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
				t.Fatalf("%s: %v: %s", path, err, rec.Body.String())
			}
		}
		return rec.Code, r
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz: %d", code)
	}
	code, r := get("/readyz")
	if code != http.StatusServiceUnavailable || r.Ready || !strings.Contains(r.Checks["peers"], "none verified") {
		t.Fatalf("/readyz before any peer: %d %+v", code, r)
	}
	if !strings.Contains(r.Checks["credential"], "valid until") {
		t.Fatalf("credential check: %q", r.Checks["credential"])
	}
	connect(t, b, a)
	eventually(t, 10*time.Second, "b verifies a", func() bool { _, ok := b.Member(a.host.ID()); return ok })
	if code, r := get("/readyz"); code != http.StatusOK || !r.Ready {
		t.Fatalf("/readyz with a verified peer: %d %+v", code, r)
	}
	// An expired credential makes it unready again.
	m.clock.advance(13 * time.Hour)
	if code, r := get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(r.Checks["credential"], "expired") {
		t.Fatalf("/readyz with an expired credential: %d %+v", code, r)
	}
}

// TestProcessMetrics: the Go and process collectors, the build and the
// credential's remaining lifetime are served.
func TestProcessMetrics(t *testing.T) {
	m := newMesh(t)
	a := m.start()
	mfs, err := a.metrics.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]float64{}
	for _, mf := range mfs {
		if len(mf.Metric) > 0 && mf.Metric[0].Gauge != nil {
			have[mf.GetName()] = mf.Metric[0].Gauge.GetValue()
		} else {
			have[mf.GetName()] = 0
		}
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total", "ztmesh_build_info", "ztmesh_credential_expiry_seconds"} {
		if _, ok := have[name]; !ok {
			t.Errorf("metric %s not served", name)
		}
	}
	if exp := have["ztmesh_credential_expiry_seconds"]; exp < 11*3600 || exp > 12*3600+60 {
		t.Errorf("credential expiry %v s, want about 12 h", exp)
	}
}

// TestMembersListsUnconnected: a member two hops away, known only from its
// announcement, is listed by Members (ztmesh peers --all) as not
// connected, and not by Peers.
func TestMembersListsUnconnected(t *testing.T) {
	m := newMesh(t)
	a, b, c := m.startIn([]string{"north"}), m.startIn([]string{"north"}), m.startIn([]string{"north"})
	connect(t, a, b)
	connect(t, b, c)
	// GossipSub's peer exchange may connect a to c on its own: the test
	// wants c known and not connected, so it closes such a connection.
	eventually(t, 20*time.Second, "a knows c from its announcement, not connected", func() bool {
		if _, _, ok := a.roster.Member(c.host.ID()); !ok {
			return false
		}
		if len(a.host.Network().ConnsToPeer(c.host.ID())) > 0 {
			a.host.Network().ClosePeer(c.host.ID())
			return false
		}
		_, connected := a.roster.Connected(c.host.ID())
		return !connected
	})
	for _, p := range a.Peers() {
		if p.PeerID == c.host.ID().String() {
			t.Fatalf("Peers lists c, which a is not connected to: %+v", p)
		}
	}
	var found bool
	for _, p := range allMembers(a.Node) {
		if p.PeerID == c.host.ID().String() {
			found = true
			if p.Connected || !p.Verified || p.DID != c.id.DID().String() || len(p.Zones) == 0 {
				t.Fatalf("c listed as %+v", p)
			}
		}
		if p.PeerID == b.host.ID().String() && !p.Connected {
			t.Fatalf("b listed as not connected")
		}
	}
	if !found {
		t.Fatal("Members does not list c")
	}
}
