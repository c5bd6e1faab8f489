package node

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/pubsub"
)

// TestApplyMemberVerifiesOnce checks the announcement cache: a copy of an
// announcement already verified changes nothing however its addresses
// differ (and is not an error, so the control topic forwards it), one
// that fails verification is refused every time it comes (a failure is not
// cached as seen), and our own is never taken in.
func TestApplyMemberVerifiesOnce(t *testing.T) {
	m := newMesh(t)
	a, b := m.start(), m.start()
	tok, err := b.roster.Announcement()
	if err != nil {
		t.Fatal(err)
	}
	if changed, err := a.roster.ApplyMember("", tok); err != nil || !changed {
		t.Fatalf("first announcement: changed %v, %v", changed, err)
	}
	if _, ok := a.roster.announced(b.host.ID()); !ok {
		t.Fatal("b is not in a's directory")
	}
	var other announcement
	if err := json.Unmarshal(tok, &other); err != nil {
		t.Fatal(err)
	}
	other.V, other.PeerRecord, other.Addrs = 1, nil, []string{"/ip4/127.0.0.9/tcp/4101"}
	relayed, _ := json.Marshal(other)
	// A copy is authentic and held: nothing to apply, but no error either,
	// so the control topic spreads it on.
	for _, copyTok := range [][]byte{tok, relayed} {
		if changed, err := a.roster.ApplyMember("", copyTok); changed || err != nil {
			t.Fatalf("a copy of a held announcement: changed %v, %v; want false, nil", changed, err)
		}
	}

	// A stranger's credential for b's own key, under an issuer a does not
	// trust: refused, and refused again (not remembered as held).
	stranger, err := did.GenerateIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	forged := other
	forged.Credential = m.credFor(stranger, b.id, did.IssueOptions{Now: m.clock.now()})
	bad, _ := json.Marshal(forged)
	for range 2 {
		if _, err := a.roster.ApplyMember("", bad); err == nil || errors.Is(err, pubsub.ErrStale) {
			t.Fatalf("announcement with an untrusted issuer's credential: %v", err)
		}
	}

	own, err := a.roster.Announcement()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.roster.ApplyMember("", own); !errors.Is(err, pubsub.ErrStale) {
		t.Fatalf("own announcement: %v, want ErrStale", err)
	}
	if _, ok := a.roster.announced(a.host.ID()); ok {
		t.Fatal("a holds itself in its directory")
	}
}

// TestHeldAnnouncementRecheckedForRevocationAndExpiry: the cache of
// verified announcements skips the signature checks, not the revocations
// and expiry in force now. A copy of a revoked or expired member's
// announcement is refused, so the control topic stops spreading it.
func TestHeldAnnouncementRecheckedForRevocationAndExpiry(t *testing.T) {
	m := newMesh(t)
	a, b, c := m.start(), m.start(), m.start()
	toks := map[*testNode][]byte{}
	for _, x := range []*testNode{b, c} {
		tok, err := x.roster.Announcement()
		if err != nil {
			t.Fatal(err)
		}
		if changed, err := a.roster.ApplyMember("", tok); err != nil || !changed {
			t.Fatalf("first announcement: changed %v, %v", changed, err)
		}
		toks[x] = tok
	}
	var relayed announcement
	if err := json.Unmarshal(toks[b], &relayed); err != nil {
		t.Fatal(err)
	}
	relayed.Addrs = []string{"/ip4/127.0.0.9/tcp/4101"}
	relayedTok, _ := json.Marshal(relayed)

	list, err := did.SignRevocationList(m.issuer, &did.RevocationList{Version: 1, Subjects: []did.DID{b.DID()}}, m.clock.now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.control.ApplyRevocations([]byte(list)); err != nil {
		t.Fatal(err)
	}
	for _, tok := range [][]byte{toks[b], relayedTok} {
		if _, err := a.roster.ApplyMember("", tok); err == nil || errors.Is(err, pubsub.ErrStale) {
			t.Fatalf("held announcement of a revoked member: %v, want a refusal", err)
		}
	}
	if _, err := a.roster.ApplyMember("", toks[c]); err != nil {
		t.Fatalf("c is not revoked: %v", err)
	}

	m.clock.advance(did.DefaultTTL + time.Hour)
	if _, err := a.roster.ApplyMember("", toks[c]); err == nil || errors.Is(err, pubsub.ErrStale) {
		t.Fatalf("held announcement of an expired member: %v, want a refusal", err)
	}
}

// TestOlderAnnouncementDoesNotRollBackRenewal: once a node holds a
// member's renewed credential, a relayed copy of the member's older (still
// valid) announcement changes nothing.
func TestOlderAnnouncementDoesNotRollBackRenewal(t *testing.T) {
	m := newMesh(t)
	a, b := m.start(), m.start()
	announce := func(cred string) []byte {
		tok, _ := json.Marshal(announcement{V: 1, Credential: cred, KeyPackage: b.mesh.KeyPackage()})
		return tok
	}
	oldTok := announce(m.credZones(m.issuer, b.id, did.IssueOptions{Now: m.clock.now().Add(-time.Hour)}, "z1", "z2"))
	newTok := announce(m.credZones(m.issuer, b.id, did.IssueOptions{Now: m.clock.now()}, "z1"))
	if changed, err := a.roster.ApplyMember("", newTok); err != nil || !changed {
		t.Fatalf("renewed announcement: changed %v, %v", changed, err)
	}
	if changed, err := a.roster.ApplyMember("", oldTok); err != nil || changed {
		t.Fatalf("older announcement: changed %v, %v; want false, nil", changed, err)
	}
	e, ok := a.roster.announced(b.host.ID())
	if !ok || len(e.cred.Claims.Zones) != 1 {
		t.Fatalf("a holds b with zones %v, want the renewal's [z1]", e.cred.Claims.Zones)
	}
}

// TestAnnouncementPassesNodesThatHoldIt: c learns a from b's sync before
// a's announcement reaches it over the control topic; c must still forward
// the announcement, or d, whose sync with c came earlier, never learns a.
func TestAnnouncementPassesNodesThatHoldIt(t *testing.T) {
	m := newMesh(t)
	a, b, c, d := m.startIn([]string{"north"}), m.startIn([]string{"north"}), m.startIn([]string{"north"}), m.startIn([]string{"north"})
	verifiedMesh(t, c, d)
	verifiedMesh(t, a, b)
	verifiedMesh(t, b, c)
	eventually(t, 5*time.Second, "c knows a from b's sync", func() bool {
		_, ok := c.roster.announced(a.host.ID())
		return ok
	})
	// a's second announcement, 5 s after its first, must cross c, which
	// held a already.
	eventually(t, 10*time.Second, "d knows a from its announcement", func() bool {
		_, ok := d.roster.announced(a.host.ID())
		return ok
	})
}

// TestSyncOffersOnlyValidMembers: a member whose credential was revoked
// after its announcement is no longer offered to a new peer's sync.
func TestSyncOffersOnlyValidMembers(t *testing.T) {
	m := newMesh(t)
	a, b := m.start(), m.start()
	tok, err := b.roster.Announcement()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.roster.ApplyMember("", tok); err != nil {
		t.Fatal(err)
	}
	var ann announcement
	_ = json.Unmarshal(tok, &ann)
	h := pubsub.HashMember(ann.Credential, ann.KeyPackage)
	if !slices.Contains(a.roster.MemberHashes(""), h) {
		t.Fatal("b is not offered before its revocation")
	}
	list, err := did.SignRevocationList(m.issuer, &did.RevocationList{Version: 1, Subjects: []did.DID{b.DID()}}, m.clock.now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.control.ApplyRevocations([]byte(list)); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(a.roster.MemberHashes(""), h) {
		t.Fatal("a revoked member is still offered to new peers")
	}
}

// TestDirectoryKeepsToSharedZones: a node takes into its directory only
// members that share a zone with it, without verifying the others; an
// announcement on a zone's member topic must be of a member of that zone;
// a wildcard member shares every zone.
func TestDirectoryKeepsToSharedZones(t *testing.T) {
	m := newMesh(t)
	north, north2 := m.startIn([]string{"north"}), m.startIn([]string{"north"})
	both := m.startIn([]string{"north", "south"})
	south := m.startIn([]string{"south"})
	wild := m.startIn([]string{did.AllZones})
	tok := func(n *testNode) []byte {
		t.Helper()
		tok, err := n.roster.Announcement()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	// A south member's announcement with a broken credential signature:
	// ignored by a north node as out of scope, never verified.
	var forged announcement
	_ = json.Unmarshal(tok(south), &forged)
	forged.Credential = forged.Credential[:len(forged.Credential)-4] + "AAAA"
	forgedTok, _ := json.Marshal(forged)

	for _, tc := range []struct {
		name   string
		at     *testNode
		zone   string // the member topic it came on; "" for the control topic or a sync
		tok    []byte
		result string // "applied", "ignored" or "refused"
	}{
		{"zone-mate", north, "north", tok(both), "applied"},
		{"zone-mate from a sync", north2, "", tok(both), "applied"},
		{"member of another zone, from a sync", north, "", tok(south), "ignored"},
		{"forged member of another zone", north, "", forgedTok, "ignored"},
		{"forged zone-mate", both, "south", forgedTok, "refused"},
		{"member of another zone on this zone's topic", north, "north", tok(south), "refused"},
		{"wildcard member", north, "", tok(wild), "applied"},
		{"any member, at a wildcard node", wild, "south", tok(south), "applied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			changed, err := tc.at.roster.ApplyMember(tc.zone, tc.tok)
			got := "refused"
			switch {
			case err == nil && changed:
				got = "applied"
			case errors.Is(err, pubsub.ErrIgnored):
				got = "ignored"
			}
			if got != tc.result {
				t.Fatalf("%s (changed %v, err %v), want %s", got, changed, err, tc.result)
			}
		})
	}
	if _, ok := north.roster.announced(south.host.ID()); ok {
		t.Fatal("the north node holds a south member")
	}
}

// TestAnnouncementsStayInTheirZones: over the network, a member becomes
// known to the members of its zones beyond its neighbours, and to nobody
// else, whether by announcement or by sync.
func TestAnnouncementsStayInTheirZones(t *testing.T) {
	m := newMesh(t)
	a := m.startIn([]string{"north"})
	b := m.startIn([]string{"north", "south"})
	c := m.startIn([]string{"south"})
	d := m.startIn([]string{"north"})
	verifiedMesh(t, a, b)
	verifiedMesh(t, b, c)
	verifiedMesh(t, b, d)
	eventually(t, 10*time.Second, "d knows a through b", func() bool {
		_, ok := d.roster.announced(a.host.ID())
		return ok
	})
	// a's and d's second announcements (5 s after the first) have passed
	// b too by now.
	time.Sleep(6 * time.Second)
	for _, tc := range []struct{ at, member *testNode }{{c, a}, {c, d}, {a, c}, {d, c}} {
		if _, ok := tc.at.roster.announced(tc.member.host.ID()); ok {
			t.Errorf("%s holds %s, a member of no zone of its own", tc.at.DID(), tc.member.DID())
		}
		if _, ok := tc.at.Member(tc.member.host.ID()); ok {
			t.Errorf("%s knows %s as a member", tc.at.DID(), tc.member.DID())
		}
	}
	// b's sync to c offers b itself, and none of the north members it holds.
	if hs := b.roster.MemberHashes(c.host.ID()); len(hs) != 1 {
		t.Errorf("b offers c %d members, want 1 (itself)", len(hs))
	}
	if hs := b.roster.MemberHashes(d.host.ID()); len(hs) != 2 {
		t.Errorf("b offers d %d members, want 2 (itself and a)", len(hs))
	}
}

// announced returns a member the roster knows from its announcement (not
// from a handshake), while its credential is valid and not revoked.
func (r *roster) announced(p peer.ID) (dirEntry, bool) {
	r.mu.Lock()
	e, ok := r.directory[p]
	r.mu.Unlock()
	if !ok || r.verifier.Recheck(e.cred, r.now()) != nil {
		return dirEntry{}, false
	}
	return e, true
}
