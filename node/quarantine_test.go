package node

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ztmesh/ztmesh/attest"
	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/pubsub"
)

const badBinary = "0000000000000000000000000000000000000000000000000000000000000bad"

// announce signs a quarantine announcement of subject by id.
func announce(t *testing.T, id *did.Identity, subject did.DID, reason string, evidence []byte) []byte {
	t.Helper()
	tok, err := attest.SignQuarantine(id, &attest.Quarantine{Subject: subject, Reason: reason, Evidence: evidence}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// otherLetter returns a base64 letter other than c.
func otherLetter(c byte) byte {
	if c == 'A' {
		return 'B'
	}
	return 'A'
}

// evidenceOf signs evidence about n's identity made at the given time,
// with this test binary's measurement (approved by approve) or, if
// binary is set, that binary hash.
func evidenceOf(t *testing.T, n *testNode, at time.Time, binary string) []byte {
	t.Helper()
	m, err := attest.Measure(attest.MeasureOptions{BinarySHA256: binary})
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, 32)
	rand.Read(nonce)
	ev, err := attest.Sign(n.id, m, nonce, at, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// controlMeshed waits until to has judged evidence that from published on
// the control topic, from publishing fresh evidence every half second
// until then: GossipSub needs a heartbeat or two to graft the control
// topic's mesh, and a publication before that reaches nobody. to must
// have reference values in force.
func controlMeshed(t *testing.T, from, to *testNode) {
	t.Helper()
	published := time.Time{}
	eventually(t, 10*time.Second, "the control topic carries "+from.DID().String()+"'s evidence", func() bool {
		if to.logs.find(map[string]string{"event_type": "attestation_passed", "did": from.DID().String()}) != nil {
			return true
		}
		if time.Since(published) >= 500*time.Millisecond {
			published = time.Now()
			if err := from.Attest(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		return false
	})
}

// TestQuarantineAnnouncementJudged applies announcements through the
// path the control topic's validator takes (ApplyQuarantine) and checks
// that the judge acts only on evidence that fails by its own reckoning.
func TestQuarantineAnnouncementJudged(t *testing.T) {
	m := newMesh(t)
	m.options = func(o *Options) { o.Test.AttestDelay = -1 }
	a, b, c, d := m.startIn([]string{"north"}), m.startIn([]string{"north"}), m.startIn([]string{"north"}), m.startIn([]string{"north"})
	m.options = func(o *Options) { o.Test.AttestDelay = -1; o.Test.BinarySHA256 = badBinary }
	x := m.startIn([]string{"north"})
	verifiedMesh(t, a, b, c, d, x)
	ref := approve(t, m, 1)
	for _, n := range []*testNode{a, b, c, d, x} {
		if _, err := n.control.ApplyReference(ref); err != nil {
			t.Fatal(err)
		}
	}
	evB, err := b.attestor.Evidence()
	if err != nil {
		t.Fatal(err)
	}
	evX, err := x.attestor.Evidence()
	if err != nil {
		t.Fatal(err)
	}
	oldFailingB := evidenceOf(t, b, time.Now().Add(-30*time.Second), badBinary)
	if _, err := a.control.ApplyEvidence(b.host.ID(), evB); err != nil { // a holds b's newer, passing evidence
		t.Fatal(err)
	}
	stranger, _ := did.GenerateIdentity(rand.Reader)
	flipped := announce(t, c.id, x.DID(), attest.QuarantineFailed, evX)
	// Inside the signature's base64: a different letter keeps the base64
	// valid (a flipped bit may not: 'A'^1 is '@'), so only the signature
	// check can refuse it.
	flipped[len(flipped)-10] = otherLetter(flipped[len(flipped)-10])

	for _, tc := range []struct {
		name    string
		tok     []byte
		ignored bool   // refused with ErrIgnored or ErrStale (GossipSub Ignore), else an error (Reject)
		event   string // logged by a
		reason  string // in the log line
	}{
		{"bad signature", flipped, false, "quarantine_announcement_refused", "bad signature"},
		{"evidence not signed by the accused", announce(t, c.id, b.DID(), attest.QuarantineFailed, evX), false,
			"quarantine_announcement_refused", "not by the accused"},
		{"evidence that verifies", announce(t, c.id, b.DID(), attest.QuarantineFailed, evB), true,
			"quarantine_announcement_ignored", "passes against reference values"},
		{"stale claim about fresh evidence", announce(t, c.id, b.DID(), attest.QuarantineStale, evB), true,
			"quarantine_announcement_ignored", "not stale here"},
		{"announcer not a member", announce(t, stranger, x.DID(), attest.QuarantineFailed, evX), true,
			"quarantine_announcement_ignored", "announcer is not a member"},
		{"old failing evidence replayed after newer evidence that passes", announce(t, c.id, b.DID(), attest.QuarantineFailed, oldFailingB), true,
			"quarantine_announcement_ignored", "holds newer evidence"},
		{"accusing the judge", announce(t, c.id, a.DID(), attest.QuarantineFailed, evidenceOf(t, a, time.Now(), badBinary)), true,
			"quarantine_announcement_ignored", "accuses this node"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			changed, err := a.control.ApplyQuarantine(tc.tok)
			if changed || err == nil {
				t.Fatalf("announcement applied (changed %v, err %v)", changed, err)
			}
			ignored := errors.Is(err, pubsub.ErrIgnored) || errors.Is(err, pubsub.ErrStale)
			if ignored != tc.ignored {
				t.Fatalf("ignored = %v, want %v: %v", ignored, tc.ignored, err)
			}
			if a.logs.find(map[string]string{"event_type": tc.event, "reason": tc.reason}) == nil {
				t.Fatalf("no %s log naming %q (error: %v)", tc.event, tc.reason, err)
			}
			for _, n := range []*testNode{b, x} {
				if quarantinedBy(a, n) {
					t.Fatalf("%s quarantined", n.DID())
				}
			}
		})
	}

	line := a.logs.find(map[string]string{"event_type": "quarantine_announcement_ignored", "reason": "passes against reference values"})
	if line["peer"] != c.host.ID().String() || line["announcer"] != c.DID().String() || line["did"] != b.DID().String() {
		t.Fatalf("the log does not name the announcer and the accused: %v", line)
	}

	// The genuine announcement: a quarantines x without having seen its
	// evidence itself; the same announcement again changes nothing.
	genuine := announce(t, c.id, x.DID(), attest.QuarantineFailed, evX)
	if changed, err := a.control.ApplyQuarantine(genuine); !changed || err != nil {
		t.Fatalf("genuine announcement: changed %v, %v", changed, err)
	}
	if !quarantinedBy(a, x) {
		t.Fatal("a did not quarantine x")
	}
	if changed, err := a.control.ApplyQuarantine(genuine); changed || !errors.Is(err, pubsub.ErrStale) {
		t.Fatalf("the same announcement twice: changed %v, %v", changed, err)
	}

	// Stale evidence about a member d holds no evidence of (d just
	// restarted): evidence b made 30 minutes ago (0.72 halved four times is
	// under 0.3) proves nothing to d, which cannot know whether b attested
	// since. d ignores it and says why; its own pending window judges b.
	// (The book's TestAnnouncementJudged covers a justified stale
	// announcement, about evidence the judge itself saw fade.)
	old := evidenceOf(t, b, time.Now().Add(-30*time.Minute), "")
	changed, err := d.control.ApplyQuarantine(announce(t, c.id, b.DID(), attest.QuarantineStale, old))
	if changed || !errors.Is(err, pubsub.ErrIgnored) {
		t.Fatalf("stale announcement about a member d holds no evidence of: changed %v, %v; want ignored", changed, err)
	}
	if quarantinedBy(d, b) {
		t.Fatal("d quarantined b on stale evidence it never saw replaced")
	}
	if d.logs.find(map[string]string{"event_type": "quarantine_announcement_ignored", "reason": "holds no evidence of the accused"}) == nil {
		t.Fatal("d did not log why it ignored the stale announcement")
	}
}

// TestQuarantineAnnouncementReachesNodeThatMissedTheEvidence: only a sees
// x's failing evidence; d learns of it from a's announcement on the
// control topic, checks it and quarantines x too.
func TestQuarantineAnnouncementReachesNodeThatMissedTheEvidence(t *testing.T) {
	m := newMesh(t)
	m.options = func(o *Options) { o.Test.AttestDelay = -1 }
	a, d := m.startIn([]string{"north"}), m.startIn([]string{"north"})
	m.options = func(o *Options) { o.Test.AttestDelay = -1; o.Test.BinarySHA256 = badBinary }
	x := m.startIn([]string{"north"})
	verifiedMesh(t, a, d, x)
	ref := approve(t, m, 1)
	for _, n := range []*testNode{a, d, x} {
		if _, err := n.control.ApplyReference(ref); err != nil {
			t.Fatal(err)
		}
	}
	controlMeshed(t, a, d)
	evX, err := x.attestor.Evidence()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := a.control.ApplyEvidence(x.host.ID(), evX); err != nil { // a alone: nothing is published
		t.Fatal(err)
	}
	if !quarantinedBy(a, x) {
		t.Fatal("a did not quarantine x")
	}
	eventually(t, 10*time.Second, "d quarantines x on a's announcement", func() bool { return quarantinedBy(d, x) })
	t.Logf("d quarantined x %s after a judged its evidence", time.Since(start).Round(time.Millisecond))
	if d.logs.find(map[string]string{"event_type": "quarantine_announcement_verified", "announcer": a.DID().String()}) == nil {
		t.Fatal("no quarantine_announcement_verified log at d")
	}
	for _, p := range d.Peers() {
		if p.DID == x.DID().String() && !strings.Contains(p.QuarantineReason, "binary") {
			t.Fatalf("d's reason is not its own judgment of the evidence: %+v", p)
		}
	}
	// a logs the announcement after its publish returns, which can be
	// after d has already acted on it.
	eventually(t, 10*time.Second, "a logs quarantine_announced", func() bool {
		return a.logs.find(map[string]string{"event_type": "quarantine_announced", "did": x.DID().String()}) != nil
	})
}
