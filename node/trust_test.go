package node

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ztmesh/ztmesh/attest"
	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/pubsub"
)

// approve signs reference values allowing only this test binary's hash.
func approve(t *testing.T, m *mesh, version uint64) []byte {
	t.Helper()
	self, err := attest.Measure(attest.MeasureOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := attest.SignReference(m.issuer, &attest.Reference{Version: version, AllowedBinaries: []string{self.BinarySHA256}, Mesh: DefaultMesh, Expires: m.clock.now().Add(24 * time.Hour)}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func quarantinedBy(n *testNode, x *testNode) bool {
	p, ok := n.roster.Connected(x.host.ID())
	if !ok {
		return false
	}
	_, _, q := n.standing(p.Credential)
	return q != ""
}

// TestUnapprovedBinaryQuarantined: a node whose binary is not in the
// reference values is quarantined by every other node of a 5-node mesh
// once it publishes its evidence, and stops receiving readable zone
// traffic. (The decision itself is tested in node/internal/trust; this is
// the path over real hosts.)
func TestUnapprovedBinaryQuarantined(t *testing.T) {
	m := newMesh(t)
	m.options = func(o *Options) { o.Test.AttestDelay = -1 }
	var good []*testNode
	for i := 0; i < 4; i++ {
		good = append(good, m.startIn([]string{"north"}))
	}
	m.options = func(o *Options) {
		o.Test.AttestDelay = -1
		o.Test.BinarySHA256 = "0000000000000000000000000000000000000000000000000000000000000bad"
	}
	bad := m.startIn([]string{"north"})
	all := append(append([]*testNode{}, good...), bad)
	verifiedMesh(t, all...)

	// The bad node reads north for now: no reference values are in force.
	gotBad := collect(t, bad, "north", "maps")
	publishUntil(t, good[1], "north", "maps", "before", gotBad.has)

	// Reference values reach everyone over the control topic (a newer
	// version every half second, until its mesh is grafted).
	version, published := uint64(0), time.Time{}
	eventually(t, 10*time.Second, "reference values everywhere", func() bool {
		for _, n := range all {
			if n.references.Current() == nil {
				if time.Since(published) < 500*time.Millisecond {
					return false
				}
				version, published = version+1, time.Now()
				if err := good[0].Mesh().PublishReference(context.Background(), approve(t, m, version)); err != nil {
					t.Fatal(err)
				}
				return false
			}
		}
		return true
	})
	// Every node attests, again every half second until the control
	// topic's mesh carries it (GossipSub grafts it at a heartbeat).
	start, published := time.Now(), time.Time{}
	eventually(t, 10*time.Second, "every good node quarantines the bad one", func() bool {
		for _, n := range good {
			if !quarantinedBy(n, bad) {
				if time.Since(published) >= 500*time.Millisecond {
					published = time.Now()
					for _, n := range all {
						if err := n.Attest(context.Background()); err != nil {
							t.Fatal(err)
						}
					}
				}
				return false
			}
		}
		return true
	})
	t.Logf("quarantined by 4 nodes %s after its evidence was first published", time.Since(start))
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
	gotGood := collect(t, good[2], "north", "maps")
	publishUntil(t, good[1], "north", "maps", "after", gotGood.has)
	time.Sleep(500 * time.Millisecond)
	for _, d := range collectedData(gotBad) {
		if strings.HasPrefix(d, "after ") {
			t.Fatalf("quarantined node read zone traffic sent after its quarantine: %q", d)
		}
	}
	// Its peers list says why.
	for _, p := range good[0].Peers() {
		if p.DID == bad.DID().String() && (!p.Quarantined || p.QuarantineReason == "" || p.EffectiveTrust != 0) {
			t.Fatalf("peers entry %+v", p)
		}
	}
}

func TestForgedEvidenceRefused(t *testing.T) {
	m := newMesh(t)
	m.options = func(o *Options) { o.Test.AttestDelay = -1 }
	a, b, c := m.startIn([]string{"north"}), m.startIn([]string{"north"}), m.startIn([]string{"north"})
	verifiedMesh(t, a, b, c)
	evB, err := b.attestor.Evidence()
	if err != nil {
		t.Fatal(err)
	}
	// c relays b's evidence as its own author: refused (and Rejected).
	if _, err := a.control.ApplyEvidence(c.host.ID(), evB); err == nil {
		t.Fatal("evidence about b accepted from author c")
	}
	// A bit flipped anywhere breaks b's signature.
	tampered := append([]byte(nil), evB...)
	tampered[len(tampered)/2] ^= 1
	if _, err := a.control.ApplyEvidence(b.host.ID(), tampered); err == nil {
		t.Fatal("tampered evidence accepted")
	}
	// A node cannot publish evidence about another one.
	if err := c.Mesh().PublishEvidence(context.Background(), evB); err == nil {
		t.Fatal("c published b's evidence")
	}
	// b's own, genuine evidence is fine; an older one afterwards is stale.
	if _, err := a.control.ApplyEvidence(b.host.ID(), evB); err != nil {
		t.Fatal(err)
	}
	if _, err := a.control.ApplyEvidence(b.host.ID(), evB); err == nil {
		t.Fatal("the same evidence applied twice")
	}
	_ = did.DefaultTTL
}

func TestChallengeGivesFreshEvidence(t *testing.T) {
	m := newMesh(t)
	m.options = func(o *Options) { o.Test.AttestDelay = -1 }
	a, b := m.startIn([]string{"north"}), m.startIn([]string{"north"})
	m.options = func(o *Options) {
		o.Test.AttestDelay = -1
		o.Test.BinarySHA256 = "00000000000000000000000000000000000000000000000000000000000000ff"
	}
	x := m.startIn([]string{"north"})
	ref := approve(t, m, 1)
	for _, n := range []*testNode{a, b, x} {
		if _, err := n.control.ApplyReference(ref); err != nil {
			t.Fatal(err)
		}
	}
	// With reference values in force, verifying a peer challenges it at once.
	verifiedMesh(t, a, b, x)
	eventually(t, 10*time.Second, "x quarantined by a on joining", func() bool { return quarantinedBy(a, x) })
	m.clock.advance(1100 * time.Millisecond) // a node answers one challenge a second per peer
	res, err := a.attestor.Challenge(context.Background(), b.host.ID())
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK || quarantinedBy(a, b) {
		t.Fatalf("approved node failed its challenge: %+v", res)
	}
	if res, err := a.attestor.Challenge(context.Background(), x.host.ID()); err == nil && res.OK {
		t.Fatal("modified node passed its challenge")
	}
}

// TestRateLimitDropsCountAgainstTrust: the messages r drops over f's rate
// limit count as violations against f: its trust falls, r logs it and its
// peers list shows it. f floods as fast as it can until r has counted
// violations, so the test does not depend on the machine's speed. How
// violations lower trust, decay and quarantine is tested on the trust
// book (TestPenaltiesDecay, TestQuarantineHysteresis); how the mesh drops
// them, in pubsub (TestRateLimitDropsFlood).
func TestRateLimitDropsCountAgainstTrust(t *testing.T) {
	m := newMesh(t)
	limit := func(c *Config) { c.RateLimit = RateLimit{PerSecond: 20, Burst: 40} }
	f, r := m.startIn([]string{"north"}, limit), m.startIn([]string{"north"}, limit)
	verifiedMesh(t, f, r)
	got := collect(t, r, "north", "maps")
	publishUntil(t, f, "north", "maps", "f warm-up", got.has)
	pf, _ := r.roster.Connected(f.host.ID())

	sent := 0
	eventually(t, 20*time.Second, "r counts f's rate-limit violations", func() bool {
		if r.trustDetail(pf.Credential).rateLimited > 0 {
			return true
		}
		for range 100 {
			f.Mesh().Publish(context.Background(), "north", "maps", []byte(fmt.Sprint("flood ", sent)))
			sent++
		}
		return false
	})
	tv := r.trustDetail(pf.Credential)
	t.Logf("after %d messages: r dropped %d; f's trust %.2f (%.1f violations)",
		sent, r.Mesh().Stats().RateLimited()[f.host.ID()], tv.trust, tv.rateLimited)
	if tv.trust >= 0.9 {
		t.Fatalf("f's trust did not fall: %+v", tv)
	}
	if r.logs.find(map[string]string{"event_type": "rate_limited", "peer": f.host.ID().String()}) == nil {
		t.Fatal("no rate_limited event at r")
	}
	for _, p := range r.Peers() {
		if p.DID == f.DID().String() && p.RateLimitViolations <= 0 {
			t.Fatalf("peers entry does not show the violations: %+v", p)
		}
	}
}

// TestNewReferencesLeaveTimeToAttest: when reference values first arrive,
// a peer that has not attested yet is pending, not penalized: its trust
// does not fall under the policy's minimum before it had a chance to
// attest. Once that time is over, an unattested peer is scored as such.
func TestNewReferencesLeaveTimeToAttest(t *testing.T) {
	m := newMesh(t)
	m.options = func(o *Options) { o.Test.AttestDelay = -1 }
	a, b := m.startIn([]string{"north"}), m.startIn([]string{"north"})
	verifiedMesh(t, a, b)
	got := collect(t, a, "north", "maps")
	publishUntil(t, b, "north", "maps", "before", got.has)
	p, _ := a.roster.Connected(b.host.ID())

	ref := approve(t, m, 1)
	for _, n := range []*testNode{a, b} {
		if _, err := n.control.ApplyReference(ref); err != nil {
			t.Fatal(err)
		}
	}
	if tv := a.trustDetail(p.Credential); !tv.pending || tv.trust < 0.85 {
		t.Fatalf("right after the reference values: %+v, want pending with the credential's 0.9", tv)
	}
	publishUntil(t, b, "north", "maps", "pending", got.has) // not refused as below min_trust_score 0.5

	// Its time to attest is over: unattested, 0.9 x 0.5 = 0.45 < 0.5.
	m.clock.advance(a.trust.EvidenceMaxAge() + time.Second)
	if tv := a.trustDetail(p.Credential); tv.pending || tv.trust > 0.46 || tv.quarantine != "" {
		t.Fatalf("once its time to attest is over: %+v, want 0.45, not pending, not quarantined", tv)
	}
	before := a.Mesh().Stats().Rejected()["unauthorized"]
	if _, err := b.Mesh().Publish(context.Background(), "north", "maps", []byte("unattested")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "a refuses the unattested peer's message", func() bool {
		return a.Mesh().Stats().Rejected()["unauthorized"] > before
	})

	// It attests: software-only evidence that passes, 0.72 (less the
	// decaying cost of the refused message).
	if err := b.Attest(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "a judges b's evidence", func() bool { return a.trustDetail(p.Credential).trust > 0.6 })
	publishUntil(t, b, "north", "maps", "attested", got.has)
	if got.has("unattested") {
		t.Fatal("the unattested peer's message was delivered")
	}
}

func collectedData(c *collector) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.got))
	for _, d := range c.got {
		out = append(out, string(d.Data))
	}
	return out
}

// TestJunkPublisherQuarantined: a member that publishes garbage straight
// into GossipSub is graylisted by its peer's scoring after a few rejected
// messages, after which its messages no longer reach the validator; the
// peer quarantines it for that, and keeps it quarantined while the score
// stays below the graylist threshold.
func TestJunkPublisherQuarantined(t *testing.T) {
	m := newMesh(t)
	a, j := m.startIn([]string{"north"}), m.startIn([]string{"north"})
	verifiedMesh(t, a, j)
	collect(t, a, "north", "maps")
	north, _ := pubsub.ZoneTopic(DefaultMesh, "north", "maps")
	tp, err := j.Mesh().PubSub().Join(north.String())
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	eventually(t, 5*time.Second, "j sees a on north", func() bool { return len(tp.ListPeers()) > 0 })
	for i := range 20 {
		tp.Publish(context.Background(), []byte(fmt.Sprintf("junk %d", i)))
		time.Sleep(20 * time.Millisecond)
	}
	eventually(t, 10*time.Second, "a quarantines the junk publisher", func() bool { return quarantinedBy(a, j) })
	_, _, reason := a.standing(j.Credential())
	if !strings.Contains(reason, "graylisted") && !strings.Contains(reason, "rejected") {
		t.Fatalf("quarantine reason %q names neither graylisting nor rejections", reason)
	}
	// Reassessed while GossipSub still graylists it: not released.
	a.reassessAll("test")
	if a.graylisted(j.Credential()).Listed && !quarantinedBy(a, j) {
		t.Fatal("released while still graylisted")
	}
}

// TestNoReferenceValuesIsNotAFailure: with no reference values in force,
// evidence is recorded but not judged; that is no failed attestation (a
// fresh fleet must not fire the attestation-failure alert), it is logged
// once at INFO and counted as unchecked.
func TestNoReferenceValuesIsNotAFailure(t *testing.T) {
	m := newMesh(t)
	m.options = func(o *Options) { o.Test.AttestDelay = -1 }
	a, b, c := m.startIn([]string{"north"}), m.startIn([]string{"north"}), m.startIn([]string{"north"})
	verifiedMesh(t, a, b, c)
	count := func(result string) float64 {
		mfs, _ := a.metrics.reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() != "ztmesh_attestations_total" {
				continue
			}
			for _, mt := range mf.Metric {
				for _, l := range mt.Label {
					if l.GetName() == "result" && l.GetValue() == result {
						return mt.Counter.GetValue()
					}
				}
			}
		}
		return 0
	}
	eventually(t, 20*time.Second, "a records evidence of b and c", func() bool {
		if count("unchecked") >= 2 {
			return true
		}
		for _, n := range []*testNode{b, c} {
			if err := n.Attest(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		return false
	})
	if f := count("failed"); f != 0 {
		t.Fatalf("%v failed attestations with no reference values in force", f)
	}
	if a.logs.find(map[string]string{"event_type": "attestation_failed"}) != nil {
		t.Fatal("attestation_failed logged with no reference values in force")
	}
	if a.logs.find(map[string]string{"event_type": "attestation_unchecked"}) == nil {
		t.Fatal("no attestation_unchecked line")
	}
	a.logs.mu.Lock()
	n := 0
	for _, l := range a.logs.lines {
		if l["event_type"] == "attestation_unchecked" {
			n++
		}
	}
	a.logs.mu.Unlock()
	if n != 1 {
		t.Fatalf("attestation_unchecked logged %d times, want once", n)
	}
}
