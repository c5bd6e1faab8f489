package node

import (
	"math"
	"testing"
	"time"

	"github.com/ztmesh/ztmesh/did"
)

// TestGossipSubScoreSeesEveryStandingChange: GossipSub reuses a peer's
// standing as its score (here for an hour), so every change of standing
// must make the node forget it. Each step changes one peer's standing and
// checks that GossipSub's score is the fresh one at once.
func TestGossipSubScoreSeesEveryStandingChange(t *testing.T) {
	m := newMesh(t)
	m.options = func(o *Options) { o.Test.AttestDelay = -1; o.Test.AppScoreTTL = time.Hour }
	north := []string{"north"}
	a, b, d := m.startIn(north), m.startIn(north), m.startIn(north)
	m.options = func(o *Options) {
		o.Test.AttestDelay = -1
		o.Test.AppScoreTTL = time.Hour
		o.Test.BinarySHA256 = badBinary
	}
	x := m.startIn(north)

	const unverified = -60 // pubsub's score of a peer that is not a verified member
	// Penalties decay (half-life 10 minutes): a score computed a moment
	// before the fresh one may differ from it by this much per second.
	const tolerance = 0.01
	score := func(n *testNode) float64 { return a.Mesh().AppScore(n.host.ID()) }
	fresh := func(n *testNode) float64 {
		mem, ok := a.Member(n.host.ID())
		if !ok || mem.Quarantined {
			return unverified
		}
		return 10 * mem.TrustScore
	}
	check := func(what string, n *testNode, want func(float64) bool) {
		t.Helper()
		if s, f := score(n), fresh(n); math.Abs(s-f) > tolerance || !want(s) {
			t.Fatalf("%s: GossipSub's score is %v, the fresh one %v", what, s, f)
		}
	}
	// seen is check for a change made on another goroutine (a handshake):
	// the forget follows it, a moment after a reader can see the change.
	seen := func(what string, n *testNode, want func(float64) bool) {
		t.Helper()
		eventually(t, 2*time.Second, what+": GossipSub's score is the fresh one", func() bool {
			return math.Abs(score(n)-fresh(n)) < tolerance
		})
		check(what, n, want)
	}
	positive := func(s float64) bool { return s > 0 }
	isUnverified := func(s float64) bool { return s == unverified }

	// Scored before they are verified: remembered as unverified.
	for _, n := range []*testNode{b, d, x} {
		if s := score(n); s != unverified {
			t.Fatalf("score before any handshake: %v", s)
		}
	}
	verifiedMesh(t, a, b, x)
	seen("b verified", b, positive)
	seen("x verified", x, positive)

	// d is not connected: a knows it from its announcement.
	tok, err := d.roster.Announcement()
	if err != nil {
		t.Fatal(err)
	}
	score(d) // remembered: unverified
	if _, err := a.roster.ApplyMember("", tok); err != nil {
		t.Fatal(err)
	}
	check("d in the directory", d, positive)

	before := score(b)
	a.onReject(b.host.ID(), "test")
	check("b's message rejected", b, func(s float64) bool { return s < before })

	score(b)
	if _, err := a.control.ApplyReference(approve(t, m, 1)); err != nil {
		t.Fatal(err)
	}
	check("reference values applied", b, positive)

	// Time alone changes a standing without a forget: b has gone without
	// evidence for longer than it needs to attest and is now scored as
	// unattested, which GossipSub may see up to the TTL late. New
	// reference values make it pending again, seen at once.
	score(b)
	m.clock.advance(a.trust.EvidenceMaxAge() + time.Second)
	if math.Abs(score(b)-fresh(b)) < tolerance {
		t.Fatal("b's standing did not change with time: the next step would test nothing")
	}
	if _, err := a.control.ApplyReference(approve(t, m, 2)); err != nil {
		t.Fatal(err)
	}
	check("new reference values: b pending again", b, positive)
	evX, err := x.attestor.Evidence()
	if err != nil {
		t.Fatal(err)
	}
	score(x)
	if _, err := a.control.ApplyEvidence(x.host.ID(), evX); err != nil {
		t.Fatal(err)
	}
	check("x's evidence failed: quarantined", x, isUnverified)
	score(x)
	if _, err := a.control.ApplyEvidence(x.host.ID(), evidenceOf(t, x, m.clock.now(), "")); err != nil {
		t.Fatal(err)
	}
	check("x attests again and passes: released", x, positive)
	score(b)
	if _, err := a.control.ApplyEvidence(b.host.ID(), evidenceOf(t, b, m.clock.now(), "")); err != nil {
		t.Fatal(err)
	}
	check("b's evidence passes", b, positive)

	// A quarantine found by reassessment alone: x's evidence fades with
	// time, which changes no standing by itself (0.72 halved twice after
	// 20 minutes is under 0.3); the reassessment that quarantines x must
	// forget its score.
	score(x)
	m.clock.advance(20 * time.Minute)
	a.reassessAll("test")
	check("x quarantined on reassessment", x, isUnverified)
	score(b) // b's evidence faded too: b attests again
	if _, err := a.control.ApplyEvidence(b.host.ID(), evidenceOf(t, b, m.clock.now(), "")); err != nil {
		t.Fatal(err)
	}
	check("b attests again", b, positive)

	list, err := did.SignRevocationList(m.issuer, &did.RevocationList{Version: 1, Subjects: []did.DID{b.DID(), d.DID()}}, m.clock.now())
	if err != nil {
		t.Fatal(err)
	}
	score(b)
	score(d)
	if _, err := a.control.ApplyRevocations([]byte(list)); err != nil {
		t.Fatal(err)
	}
	check("b revoked", b, isUnverified)
	check("d revoked, known only from its announcement", d, isUnverified)
}
