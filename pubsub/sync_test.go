package pubsub

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ztmesh/ztmesh/internal/wire"
	"github.com/ztmesh/ztmesh/policy"
)

// TestControlPushReachesNeighbourOutsideTheMesh: an operator's policy
// bundle reaches a verified neighbour that is in no GossipSub mesh of the
// publisher (here it does not run GossipSub at all, the extreme of a peer
// that connected after the last heartbeat). Without the direct push it
// would get nothing until gossip repaired it, if ever.
func TestControlPushReachesNeighbourOutsideTheMesh(t *testing.T) {
	n := newNet(t, 0, []string{"north"})
	b := n.nodes[0]

	// c: a verified member of b that speaks only the sync protocol; d:
	// connected to b too, but never verified: it must get nothing.
	_, got := n.syncOnlyPeer(b, true)
	_, leaked := n.syncOnlyPeer(b, false)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	bundle, err := policy.SignBundle(n.issuer, map[string]string{"p.rego": "package ztmesh.authz\n\ndefault allow := false\n"}, 3, policy.Scope{Mesh: "fleet", Expires: time.Now().Add(time.Hour)}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.mesh.PublishPolicyBundle(ctx, bundle); err != nil {
		t.Fatal(err)
	}
	expectPush(t, got, syncMessage{V: 1, Bundle: bundle}, "the neighbour outside the mesh")
	expectNoPush(t, leaked, "an unverified peer")
}

// TestSyncedControlRelayedOnce: a node that gets a new bundle or
// quarantine announcement over the sync protocol hands it on to its other
// verified neighbours (it may be the only way it reaches them when
// GossipSub drops it), not back to the peer it came from, not to unverified
// peers, and only once.
func TestSyncedControlRelayedOnce(t *testing.T) {
	n := newNet(t, 0, []string{"north"})
	bundle, err := policy.SignBundle(n.issuer, map[string]string{"p.rego": "package ztmesh.authz\n\ndefault allow := false\n"}, 3, policy.Scope{Mesh: "fleet", Expires: time.Now().Add(time.Hour)}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, push := range []syncMessage{
		{V: 1, Bundle: bundle},
		{V: 1, Quarantines: [][]byte{[]byte("a quarantine announcement")}},
	} {
		b := n.add([]string{"north"}, 0)
		x, echoed := n.syncOnlyPeer(b, true) // where the push comes from
		_, got := n.syncOnlyPeer(b, true)
		_, leaked := n.syncOnlyPeer(b, false)
		send := func() {
			t.Helper()
			s, err := x.NewStream(context.Background(), b.h.ID(), SyncProtocol)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := wire.WriteJSON(s, push, maxSyncMessage); err != nil {
				t.Fatal(err)
			}
		}
		send()
		expectPush(t, got, push, "the other neighbour")
		expectNoPush(t, echoed, "the peer it came from")
		expectNoPush(t, leaked, "an unverified peer")
		send() // in force already: nothing more to relay
		expectNoPush(t, got, "the other neighbour a second time")
	}
}

// syncOnlyPeer starts a host connected to b that speaks only the sync
// protocol, a verified member of b if verified, and returns the syncs it
// receives.
func (n *tnet) syncOnlyPeer(b *tnode, verified bool) (host.Host, chan syncMessage) {
	t := n.t
	t.Helper()
	_, cred, h := n.identity([]string{"south"})
	got := make(chan syncMessage, 4)
	h.SetStreamHandler(SyncProtocol, func(s network.Stream) {
		defer s.Close()
		var msg syncMessage
		if err := wire.ReadJSON(s, &msg, maxSyncMessage); err == nil {
			got <- msg
		}
	})
	if verified {
		b.members.set(h.ID(), Member{Credential: cred, TrustScore: 0.9})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.h.Connect(ctx, peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}); err != nil {
		t.Fatal(err)
	}
	return h, got
}

func expectPush(t *testing.T, got chan syncMessage, want syncMessage, to string) {
	t.Helper()
	select {
	case msg := <-got:
		if !reflect.DeepEqual(msg, want) {
			t.Fatalf("pushed to %s: %+v, want %+v", to, msg, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("the push never reached %s", to)
	}
}

func expectNoPush(t *testing.T, got chan syncMessage, to string) {
	t.Helper()
	select {
	case <-got:
		t.Fatalf("pushed to %s", to)
	case <-time.After(300 * time.Millisecond):
	}
}

// TestSyncHandsOverOnlyMissingMembers: a new peer's sync offers member
// hashes; the peer asks for the announcements it lacks and gets exactly
// those, in frames, whatever their number.
func TestSyncHandsOverOnlyMissingMembers(t *testing.T) {
	n := newNet(t, 0, []string{"north"}, []string{"north"})
	a, b := n.nodes[0], n.nodes[1]
	const total = 2*membersPerFrame + 7 // several frames
	var toks [][]byte
	for i := range total {
		toks = append(toks, []byte(fmt.Sprintf("announcement-%04d", i)))
	}
	for _, tok := range toks {
		a.control.ApplyMember("", tok)
	}
	for _, tok := range toks[:10] { // b holds the first ten already
		b.control.ApplyMember("", tok)
	}
	b.control.mu.Lock()
	b.control.applied = nil
	b.control.mu.Unlock()

	if err := a.mesh.SyncTo(context.Background(), b.h.ID()); err != nil {
		t.Fatal(err)
	}
	eventuallyT(t, 5*time.Second, "b holds every member", func() bool {
		return len(b.control.MemberHashes("")) == total
	})
	b.control.mu.Lock()
	defer b.control.mu.Unlock()
	if len(b.control.applied) != total-10 {
		t.Fatalf("b was handed %d announcements, want the %d it lacked", len(b.control.applied), total-10)
	}
	for _, tok := range b.control.applied {
		if bytes.Compare(tok, toks[10]) < 0 {
			t.Fatalf("b was handed %s, which it held", tok)
		}
	}
}

// TestSyncMessagesChecked: the member exchange refuses what breaks its
// limits (a want list naming members never offered, frames too large,
// hashes of the wrong length).
func TestSyncMessagesChecked(t *testing.T) {
	if err := (&wantMessage{V: 1, Want: []int{0, 3}}).check(3); err == nil {
		t.Error("want index 3 of 3 offered: accepted")
	}
	if err := (&wantMessage{V: 1, Want: []int{-1}}).check(3); err == nil {
		t.Error("negative want index: accepted")
	}
	if err := (&wantMessage{V: 1, Want: []int{0, 1, 2, 0}}).check(3); err == nil {
		t.Error("want list longer than the offer: accepted")
	}
	if err := (&membersMessage{V: 1, Members: make([][]byte, membersPerFrame+1)}).check(); err == nil {
		t.Error("oversized members frame: accepted")
	}
	if err := (&syncMessage{V: 2}).check(); err == nil {
		t.Error("sync v2: accepted")
	}
	if err := (&syncMessage{V: 1, Quarantines: make([][]byte, maxSyncLists+1)}).check(); err == nil {
		t.Error("too many quarantine announcements: accepted")
	}
	if err := (&syncMessage{V: 1, Revocations: make([][]byte, maxSyncLists+1)}).check(); err == nil {
		t.Error("too many revocation lists: accepted")
	}
	var msg syncMessage
	if err := wire.DecodeStrict([]byte(`{"v":1,"revocations":[],"member_hashes":["AAAA"]}`), &msg); err == nil {
		t.Error("3-byte member hash: accepted")
	}
	h := HashMember("cred", []byte("kp"))
	enc, _ := json.Marshal(syncMessage{V: 1, MemberHashes: []MemberHash{h}})
	if err := wire.DecodeStrict(enc, &msg); err != nil || msg.MemberHashes[0] != h {
		t.Fatalf("round trip: %v %x", err, msg.MemberHashes)
	}
}

func FuzzSyncMessages(f *testing.F) {
	f.Add([]byte(`{"v":1,"revocations":[],"member_hashes":["`+strings.Repeat("A", 43)+`="]}`), 1)
	f.Add([]byte(`{"v":1,"want":[0,2]}`), 3)
	f.Add([]byte(`{"v":1,"members":["YQ=="],"done":true}`), 0)
	f.Add([]byte(`{"v":1,"revocations":null,"quarantines":["YQ==","Yg=="]}`), 0)
	f.Fuzz(func(t *testing.T, data []byte, offered int) {
		var s syncMessage
		if wire.DecodeStrict(data, &s) == nil && s.check() == nil && (s.V != 1 || len(s.MemberHashes) > maxSyncMembers ||
			len(s.Revocations) > maxSyncLists || len(s.Quarantines) > maxSyncLists) {
			t.Fatalf("accepted %+v", s)
		}
		var w wantMessage
		if wire.DecodeStrict(data, &w) == nil && w.check(offered) == nil {
			for _, i := range w.Want {
				if i < 0 || i >= offered {
					t.Fatalf("accepted want index %d of %d", i, offered)
				}
			}
		}
		var mm membersMessage
		if wire.DecodeStrict(data, &mm) == nil && mm.check() == nil && len(mm.Members) > membersPerFrame {
			t.Fatalf("accepted a frame of %d", len(mm.Members))
		}
	})
}

// TestMemberTopicsOnlyOfOwnZones: a node reads the member topics of its
// credential's zones, and not of a zone a permissive policy lets it publish
// in (that zone's members would refuse it there, and drop it as a peer
// subscribed where it may not be).
func TestMemberTopicsOnlyOfOwnZones(t *testing.T) {
	n := newNet(t, 0)
	n.config = func(c *Config) {
		pol, err := policy.New()
		if err != nil {
			t.Fatal(err)
		}
		if err := pol.LoadModules(map[string]string{"p.rego": "package ztmesh.authz\n\ndefault allow := true\n"}, 2, "test"); err != nil {
			t.Fatal(err)
		}
		c.Policy = pol
	}
	a := n.add([]string{"north"}, 0)
	if _, err := a.mesh.Subscribe("south", "maps"); err != nil {
		t.Fatal(err)
	}
	joined := map[string]bool{}
	for _, name := range a.mesh.ps.GetTopics() {
		joined[name] = true
	}
	north, _ := MembersTopic("fleet", "north")
	south, _ := MembersTopic("fleet", "south")
	if !joined[north.String()] || joined[south.String()] {
		t.Fatalf("subscribed topics %v: want %s and not %s", a.mesh.ps.GetTopics(), north, south)
	}
}
