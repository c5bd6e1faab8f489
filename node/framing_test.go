package node

import (
	"context"
	"crypto/rand"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/pubsub"
)

// Framing honest relays (issue 15, item 1), on complete nodes: an origin's
// content that this node refuses for reasons the relays that forwarded it
// could not know must not get them graylisted and quarantined.

// startSkewed starts a node in zone z1 whose clock runs offset from the
// mesh's, within the skews the mesh tolerates.
func (m *mesh) startSkewed(offset time.Duration, cred func(id *did.Identity) string) *testNode {
	m.t.Helper()
	c := &clock{}
	c.offset.Store(m.clock.offset.Load() + int64(offset))
	m.options = func(o *Options) { o.Now = c.now }
	defer func() { m.options = nil }()
	id, err := did.GenerateIdentity(rand.Reader)
	if err != nil {
		m.t.Fatal(err)
	}
	tok := m.credFor(m.issuer, id, did.IssueOptions{Now: m.clock.now()})
	if cred != nil {
		tok = cred(id)
	}
	return m.startWith(id, tok)
}

// freshScores waits for two new snapshots of n's GossipSub scores (they
// are taken every second) and returns the last: what n's GossipSub did
// before the call shows in it.
func freshScores(t *testing.T, n *testNode) map[peer.ID]float64 {
	t.Helper()
	var last map[peer.ID]float64
	for range 2 {
		p0 := reflect.ValueOf(n.Mesh().Scores()).UnsafePointer()
		eventually(t, 10*time.Second, "fresh score snapshot", func() bool {
			last = n.Mesh().Scores()
			return reflect.ValueOf(last).UnsafePointer() != p0
		})
	}
	return last
}

// relayNotFramed checks that receiver v holds nothing against the honest
// relay r: a GossipSub score that is not negative, no graylisting, and no
// quarantine when v judges its peers again.
func relayNotFramed(t *testing.T, v, r *testNode) {
	t.Helper()
	if s, ok := freshScores(t, v)[r.host.ID()]; !ok || s < 0 {
		t.Errorf("receiver's GossipSub score of the honest relay is %.1f (tracked %v): framed", s, ok)
	}
	p, ok := v.roster.Connected(r.host.ID())
	if !ok {
		t.Fatal("the receiver no longer holds the honest relay as a verified peer")
	}
	if gl := v.graylisted(p.Credential); gl.Listed {
		t.Errorf("receiver graylisted the honest relay (score %.1f)", gl.Score)
	}
	v.reassessAll("test")
	if quarantinedBy(v, r) {
		_, _, why := v.standing(p.Credential)
		t.Errorf("receiver quarantined the honest relay: %s", why)
	}
}

// TestRelayedExpiredAnnouncementDoesNotFrameRelay: member M's credential
// is still valid by relay R's clock and already expired by receiver V's
// (115 s ahead: within every skew tolerated). R relays M's announcements
// to V. On the code before issue 15 V rejected each, and GossipSub's
// scoring graylisted R after three.
//
//	M — R — V
func TestRelayedExpiredAnnouncementDoesNotFrameRelay(t *testing.T) {
	m := newMesh(t)
	r := m.start()
	v := m.startSkewed(115*time.Second, nil)
	// Expires, with the verifier's skew, 110 s from now.
	mm := m.startSkewed(0, func(id *did.Identity) string {
		return m.credFor(m.issuer, id, did.IssueOptions{Now: m.clock.now().Add(-time.Hour), TTL: time.Hour - did.DefaultClockSkew + 110*time.Second})
	})
	connect(t, v, r)
	connect(t, mm, r)
	eventually(t, 10*time.Second, "verified", func() bool {
		return verifiedBy(v, r.host.ID()) && verifiedBy(r, v.host.ID()) && verifiedBy(r, mm.host.ID()) && verifiedBy(mm, r.host.ID())
	})
	refused := func() uint64 { return v.Mesh().Stats().Rejected()[pubsub.ReasonInvalidAnnouncement] }
	members, err := pubsub.MembersTopic(DefaultMesh, "z1")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "R sees V on the member topic", func() bool {
		return slices.Contains(r.Mesh().PubSub().ListPeers(members.String()), v.host.ID())
	})
	// M announces until V has refused four of its announcements relayed
	// by R (GossipSub needs a heartbeat to graft V into R's mesh; three
	// Rejects used to graylist R; R relays no more than M's allowance).
	const want = 4
	deadline := time.Now().Add(60 * time.Second)
	for refused() < want {
		if s, ok := v.Mesh().Scores()[r.host.ID()]; ok && s < 0 {
			break // framed: relayNotFramed says how
		}
		if time.Now().After(deadline) {
			t.Fatalf("V refused %d relayed announcements of M, want %d", refused(), want)
		}
		if err := mm.Announce(context.Background()); err != nil {
			t.Fatal(err)
		}
		// Paced: R relays no more than M's allowance of announcements.
		time.Sleep(500 * time.Millisecond)
	}
	relayNotFramed(t, v, r)
	if _, ok := v.Member(mm.host.ID()); ok {
		t.Error("V holds the member whose credential expired by its clock")
	}
}

// TestFutureOriginBlamedNotRelays: origin O's clock runs 90 s ahead, so its
// evidence and messages are fresh for relays R1 and R2 (on time) and from
// too far in the future for receiver F (a minute behind). O publishes a
// burst through R1 and R2. On the code before issue 15 F rejected R2 for
// each, and GossipSub's scoring graylisted it; now F ignores them, counts
// them against O, and honest traffic through R2 still arrives.
//
//	O — R1 — R2 — F
func TestFutureOriginBlamedNotRelays(t *testing.T) {
	m := newMesh(t)
	o := m.startSkewed(90*time.Second, nil)
	r1, r2 := m.start(), m.start()
	f := m.startSkewed(-time.Minute, nil)
	connect(t, o, r1)
	connect(t, r1, r2)
	eventually(t, 10*time.Second, "verified along the line", func() bool {
		return verifiedBy(r1, o.host.ID()) && verifiedBy(r2, r1.host.ID())
	})
	r2c := collect(t, r2, "z1", "maps")
	collect(t, r1, "z1", "maps") // a relay relays the topics it reads
	// O's path is warm before F joins: GossipSub knows who reads the topic
	// and R1 and R2 hold O's sender key (a message that arrives before
	// either is dropped, not retried), and F has seen nothing of O yet.
	publishUntil(t, o, "z1", "maps", "o-warm", func(last string) bool { return r2c.has(last) })
	connect(t, r2, f)
	eventually(t, 10*time.Second, "F verifies R2", func() bool { return verifiedBy(f, r2.host.ID()) })
	// F knows O from its announcement, relayed or handed over in a sync.
	eventually(t, 30*time.Second, "F holds O's announcement", func() bool {
		_, ok := f.Member(o.host.ID())
		return ok
	})
	fc := collect(t, f, "z1", "maps")
	// Honest traffic first, until it flows R1 → R2 → F.
	publishUntil(t, r1, "z1", "maps", "warm", func(last string) bool { return fc.has(last) })

	om, _ := f.Member(o.host.ID())
	trustBefore := f.trust.Standing(om.Credential, f.now()).Trust
	// Each message of the burst is refused as stale or, once the
	// misbehaviour has lowered O's trust, as unauthorized.
	stale := func() uint64 {
		v := f.Mesh().Stats().Rejected()
		return v[pubsub.ReasonStale] + v[pubsub.ReasonUnauthorized] + v[pubsub.ReasonQuarantinedOrigin]
	}
	before := stale()
	const burst = 8
	for i := range burst {
		if _, err := o.Mesh().Publish(context.Background(), "z1", "maps", fmt.Appendf(nil, "future %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 30*time.Second, "R2 delivers the origin's burst", func() bool {
		for i := range burst {
			if !r2c.has(fmt.Sprintf("future %d", i)) {
				return false
			}
		}
		return true
	})
	judged := time.Now().Add(20 * time.Second)
	for {
		s, ok := f.Mesh().Scores()[r2.host.ID()]
		if stale() >= before+burst || ok && s < 0 {
			break
		}
		if time.Now().After(judged) {
			t.Fatalf("after 20s F judged %d of the burst (verdicts %v, deliveries %d)", stale()-before, f.Mesh().Stats().Rejected(), len(collectedData(fc)))
		}
		time.Sleep(10 * time.Millisecond)
	}
	relayNotFramed(t, f, r2)
	relayNotFramed(t, r2, r1)
	if after := f.trust.Standing(om.Credential, f.now()).Trust; after >= trustBefore {
		t.Errorf("the origin's trust at F did not fall: %.3f -> %.3f", trustBefore, after)
	}
	if t.Failed() {
		t.FailNow()
	}
	// Honest delivery through the same relays is whole.
	for i := range 10 {
		if _, err := r1.Mesh().Publish(context.Background(), "z1", "maps", fmt.Appendf(nil, "after %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "F receives every honest message", func() bool {
		for i := range 10 {
			if !fc.has(fmt.Sprintf("after %d", i)) {
				return false
			}
		}
		return true
	})
}
