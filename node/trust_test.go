package node

import (
	"context"
	"testing"
	"time"

	"github.com/ztmesh/ztmesh/attest"
	"github.com/ztmesh/ztmesh/did"
)

// approve signs reference values allowing only this test binary's hash.
func approve(t *testing.T, m *mesh, version uint64) []byte {
	t.Helper()
	self, err := attest.Measure(attest.MeasureOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := attest.SignReference(m.issuer, &attest.Reference{Version: version, AllowedBinaries: []string{self.BinarySHA256}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func quarantinedBy(n *testNode, x *testNode) bool {
	p, ok := n.registry.Get(x.host.ID())
	if !ok {
		return false
	}
	_, _, q := n.standing(p.Credential)
	return q != ""
}

// TestUnapprovedBinaryQuarantined: a node whose binary is not in the
// reference values is quarantined by every other node of a 5-node mesh
// within 2 s of publishing its evidence, and stops receiving readable zone
// traffic.
func TestUnapprovedBinaryQuarantined(t *testing.T) {
	m := newMesh(t)
	m.options = func(o *Options) { o.AttestDelay = -1 }
	var good []*testNode
	for i := 0; i < 4; i++ {
		good = append(good, m.startIn([]string{"north"}))
	}
	m.options = func(o *Options) {
		o.AttestDelay = -1
		o.BinarySHA256 = "0000000000000000000000000000000000000000000000000000000000000bad"
	}
	bad := m.startIn([]string{"north"})
	all := append(append([]*testNode{}, good...), bad)
	verifiedMesh(t, all...)
	time.Sleep(1500 * time.Millisecond) // control topic mesh

	// The bad node reads north for now: no reference values are in force.
	gotBad := collect(t, bad, "north", "maps")
	publishUntil(t, good[1], "north", "maps", "before", gotBad.has)

	if err := good[0].Mesh().PublishReference(context.Background(), approve(t, m, 1)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, "reference values everywhere", func() bool {
		for _, n := range all {
			if n.references.Current() == nil {
				return false
			}
		}
		return true
	})
	start := time.Now()
	for _, n := range good {
		if err := n.Attest(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if err := bad.Attest(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "every good node quarantines the bad one within 2s", func() bool {
		for _, n := range good {
			if !quarantinedBy(n, bad) {
				return false
			}
		}
		return true
	})
	t.Logf("quarantined by 4 nodes %s after its evidence was published", time.Since(start))
	for _, n := range good {
		for _, o := range good {
			if n != o && quarantinedBy(n, o) {
				t.Fatal("a node running the approved binary was quarantined")
			}
		}
	}
	if good[0].logs.find(map[string]string{"event_type": "peer_quarantined", "reason": "binary"}) == nil {
		t.Fatal("no peer_quarantined event naming the binary")
	}

	// New zone traffic is not readable for it: keys rotated, pulls refused.
	before := gotBad.count()
	gotGood := collect(t, good[2], "north", "maps")
	publishUntil(t, good[1], "north", "maps", "after", gotGood.has)
	time.Sleep(500 * time.Millisecond)
	if gotBad.count() != before {
		t.Fatal("quarantined node read zone traffic sent after its quarantine")
	}
	// Its peers list says why.
	for _, p := range good[0].Peers() {
		if p.DID == bad.DID().String() && (!p.Quarantined || p.QuarantineReason == "" || p.EffectiveTrust != 0) {
			t.Fatalf("peers entry %+v", p)
		}
	}
}

func TestStaleEvidenceQuarantines(t *testing.T) {
	m := newMesh(t)
	m.options = func(o *Options) { o.AttestDelay = -1 }
	a, b := m.startIn([]string{"north"}), m.startIn([]string{"north"})
	verifiedMesh(t, a, b)
	ref := approve(t, m, 1)
	for _, n := range []*testNode{a, b} {
		if _, err := n.ApplyReference(ref); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(1500 * time.Millisecond)
	if err := b.Attest(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, "a holds b's passing evidence", func() bool {
		p, _ := a.registry.Get(b.host.ID())
		tr, _, q := a.standing(p.Credential)
		return tr > 0.7 && q == ""
	})
	// b stops attesting: after MaxAge (10 min) its evidence halves in weight
	// every 5 min; 25 min on, 0.72 x 1/8 is under the 0.3 threshold.
	m.clock.advance(25 * time.Minute)
	eventually(t, 3*time.Second, "stale evidence quarantines b", func() bool { return quarantinedBy(a, b) })
}

func TestForgedEvidenceRefused(t *testing.T) {
	m := newMesh(t)
	m.options = func(o *Options) { o.AttestDelay = -1 }
	a, b, c := m.startIn([]string{"north"}), m.startIn([]string{"north"}), m.startIn([]string{"north"})
	verifiedMesh(t, a, b, c)
	evB, err := b.Evidence()
	if err != nil {
		t.Fatal(err)
	}
	// c relays b's evidence as its own author: refused (and Rejected).
	if _, err := a.ApplyEvidence(c.host.ID(), evB); err == nil {
		t.Fatal("evidence about b accepted from author c")
	}
	// A bit flipped anywhere breaks b's signature.
	tampered := append([]byte(nil), evB...)
	tampered[len(tampered)/2] ^= 1
	if _, err := a.ApplyEvidence(b.host.ID(), tampered); err == nil {
		t.Fatal("tampered evidence accepted")
	}
	// A node cannot publish evidence about another one.
	if err := c.Mesh().PublishEvidence(context.Background(), evB); err == nil {
		t.Fatal("c published b's evidence")
	}
	// b's own, genuine evidence is fine; an older one afterwards is stale.
	if _, err := a.ApplyEvidence(b.host.ID(), evB); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ApplyEvidence(b.host.ID(), evB); err == nil {
		t.Fatal("the same evidence applied twice")
	}
	_ = did.DefaultTTL
}

func TestChallengeGivesFreshEvidence(t *testing.T) {
	m := newMesh(t)
	m.options = func(o *Options) { o.AttestDelay = -1 }
	a, b := m.startIn([]string{"north"}), m.startIn([]string{"north"})
	m.options = func(o *Options) {
		o.AttestDelay = -1
		o.BinarySHA256 = "00000000000000000000000000000000000000000000000000000000000000ff"
	}
	x := m.startIn([]string{"north"})
	ref := approve(t, m, 1)
	for _, n := range []*testNode{a, b, x} {
		if _, err := n.ApplyReference(ref); err != nil {
			t.Fatal(err)
		}
	}
	// With reference values in force, verifying a peer challenges it at once.
	verifiedMesh(t, a, b, x)
	eventually(t, 5*time.Second, "x quarantined by a on joining", func() bool { return quarantinedBy(a, x) })
	time.Sleep(1100 * time.Millisecond) // a node answers one challenge a second per peer
	res, err := a.Challenge(context.Background(), b.host.ID())
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK || quarantinedBy(a, b) {
		t.Fatalf("approved node failed its challenge: %+v", res)
	}
	if res, err := a.Challenge(context.Background(), x.host.ID()); err == nil && res.OK {
		t.Fatal("modified node passed its challenge")
	}
}
