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
	ref, err := attest.SignReference(m.issuer, &attest.Reference{Version: version, AllowedBinaries: []string{self.BinarySHA256}}, time.Now())
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
// within 2 s of publishing its evidence, and stops receiving readable zone
// traffic.
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
	m.options = func(o *Options) { o.Test.AttestDelay = -1 }
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
		p, _ := a.roster.Connected(b.host.ID())
		tv := a.trustDetail(p.Credential)
		return !tv.pending && tv.trust > 0.7 && tv.quarantine == "" // pending would be 0.9 without evidence
	})
	// b stops attesting: after MaxAge (10 min) its evidence halves in weight
	// every 5 min; 25 min on, 0.72 x 1/8 is under the 0.3 threshold.
	m.clock.advance(25 * time.Minute)
	eventually(t, 3*time.Second, "stale evidence quarantines b", func() bool { return quarantinedBy(a, b) })
}

func TestForgedEvidenceRefused(t *testing.T) {
	m := newMesh(t)
	m.options = func(o *Options) { o.Test.AttestDelay = -1 }
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
	m.options = func(o *Options) { o.Test.AttestDelay = -1 }
	a, b := m.startIn([]string{"north"}), m.startIn([]string{"north"})
	m.options = func(o *Options) {
		o.Test.AttestDelay = -1
		o.Test.BinarySHA256 = "00000000000000000000000000000000000000000000000000000000000000ff"
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

// TestRateLimitViolationsLowerTrust: a member publishing at ten times its
// rate limit has the excess dropped at the receivers, its effective trust
// falls, and it is quarantined if it goes on; an honest member publishing
// at the same time keeps delivering and keeps its trust.
func TestRateLimitViolationsLowerTrust(t *testing.T) {
	m := newMesh(t)
	limit := func(c *Config) { c.RateLimit = RateLimit{PerSecond: 20, Burst: 40} }
	f, h, r := m.startIn([]string{"north"}, limit), m.startIn([]string{"north"}, limit), m.startIn([]string{"north"}, limit)
	verifiedMesh(t, f, h, r)
	got := collect(t, r, "north", "maps")
	publishUntil(t, h, "north", "maps", "h warm-up", got.has)
	publishUntil(t, f, "north", "maps", "f warm-up", got.has)
	pf, _ := r.roster.Connected(f.host.ID())
	ph, _ := r.roster.Connected(h.host.ID())
	ctx := context.Background()

	stop := make(chan struct{})
	done := make(chan int)
	go func() { // h: 5 messages a second throughout
		i := 0
		defer func() { done <- i }()
		for ; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			if _, err := h.Mesh().Publish(ctx, "north", "maps", []byte(fmt.Sprint("honest ", i))); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	flood := func(until func() bool, max time.Duration) (sent int) {
		for end := time.Now().Add(max); time.Now().Before(end) && !until(); sent++ {
			f.Mesh().Publish(ctx, "north", "maps", []byte(fmt.Sprint("flood ", sent)))
			time.Sleep(5 * time.Millisecond) // about 200 a second: ten times the limit
		}
		return sent
	}
	fromF := func() (n int) {
		for _, d := range collectedData(got) {
			if strings.HasPrefix(d, "flood ") {
				n++
			}
		}
		return n
	}

	// One second of flooding: dropped at r, trust lower, not quarantined yet.
	start := time.Now()
	sent := flood(func() bool { return false }, time.Second)
	elapsed := time.Since(start)
	eventually(t, 3*time.Second, "r counts f's rate-limit violations", func() bool { return r.trustDetail(pf.Credential).rateLimited > 3 })
	tv := r.trustDetail(pf.Credential)
	delivered := fromF()
	t.Logf("after %d messages in %s: r delivered %d, dropped %d; f's trust %.2f (%.1f violations)",
		sent, elapsed.Round(time.Millisecond), delivered, r.Mesh().Stats().RateLimited()[f.host.ID()], tv.trust, tv.rateLimited)
	if max := 40 + int(20*elapsed.Seconds()) + 5; delivered > max {
		t.Fatalf("r delivered %d of f's messages; the limit allows %d", delivered, max)
	}
	if tv.trust > 0.8 || tv.quarantine != "" {
		t.Fatalf("after a second at ten times its limit, f has trust %.2f, quarantine %q", tv.trust, tv.quarantine)
	}
	if r.logs.find(map[string]string{"event_type": "rate_limited", "peer": f.host.ID().String()}) == nil {
		t.Fatal("no rate_limited event at r")
	}
	for _, p := range r.Peers() {
		if p.DID == f.DID().String() && p.RateLimitViolations < 3 {
			t.Fatalf("peers entry does not show the violations: %+v", p)
		}
	}

	// f goes on: quarantined.
	start = time.Now()
	flood(func() bool { return quarantinedBy(r, f) }, 10*time.Second)
	if !quarantinedBy(r, f) {
		t.Fatalf("f still not quarantined after 10 more seconds of flooding: %+v", r.trustDetail(pf.Credential))
	}
	t.Logf("quarantined after %s more; reason: %s", time.Since(start).Round(time.Millisecond), r.trustDetail(pf.Credential).quarantine)
	close(stop)
	honest := <-done

	// h delivered everything and kept its standing.
	eventually(t, 3*time.Second, "every honest message delivered", func() bool {
		for i := range honest {
			if !got.has(fmt.Sprint("honest ", i)) {
				return false
			}
		}
		return true
	})
	if th := r.trustDetail(ph.Credential); th.trust < 0.85 || th.quarantine != "" || th.rejected != 0 || th.rateLimited != 0 {
		t.Fatalf("honest h lost standing at r: %+v", th)
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
		if _, err := n.ApplyReference(ref); err != nil {
			t.Fatal(err)
		}
	}
	if tv := a.trustDetail(p.Credential); !tv.pending || tv.trust < 0.85 {
		t.Fatalf("right after the reference values: %+v, want pending with the credential's 0.9", tv)
	}
	publishUntil(t, b, "north", "maps", "pending", got.has) // not refused as below min_trust_score 0.5

	// Its time to attest is over: unattested, 0.9 x 0.5 = 0.45 < 0.5.
	m.clock.advance(a.evidenceMaxAge() + time.Second)
	if tv := a.trustDetail(p.Credential); tv.pending || tv.trust > 0.46 || tv.quarantine != "" {
		t.Fatalf("once its time to attest is over: %+v, want 0.45, not pending, not quarantined", tv)
	}
	before := a.Mesh().Stats().Rejected()["unauthorized"]
	if _, err := b.Mesh().Publish(context.Background(), "north", "maps", []byte("unattested")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, "a refuses the unattested peer's message", func() bool {
		return a.Mesh().Stats().Rejected()["unauthorized"] > before
	})

	// It attests: software-only evidence that passes, 0.72 (less the
	// decaying cost of the refused message).
	if err := b.Attest(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, "a judges b's evidence", func() bool { return a.trustDetail(p.Credential).trust > 0.6 })
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
	eventually(t, 5*time.Second, "a quarantines the junk publisher", func() bool { return quarantinedBy(a, j) })
	_, _, reason := a.standing(j.Credential())
	if !strings.Contains(reason, "graylisted") && !strings.Contains(reason, "rejected") {
		t.Fatalf("quarantine reason %q names neither graylisting nor rejections", reason)
	}
	time.Sleep(2 * time.Second)
	if !quarantinedBy(a, j) {
		t.Fatal("released while still graylisted")
	}
}
