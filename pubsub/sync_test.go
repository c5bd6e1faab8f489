package pubsub

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
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

	// c: a verified member of b that speaks only the sync protocol.
	_, ccred, c := n.identity([]string{"south"})
	got := make(chan syncMessage, 4)
	c.SetStreamHandler(SyncProtocol, func(s network.Stream) {
		defer s.Close()
		var msg syncMessage
		if err := wire.ReadJSON(s, &msg, maxSyncMessage); err == nil {
			got <- msg
		}
	})
	// d: connected to b too, but never verified: it must get nothing.
	d, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	leaked := make(chan struct{}, 1)
	d.SetStreamHandler(SyncProtocol, func(s network.Stream) { leaked <- struct{}{}; s.Reset() })

	b.members.set(c.ID(), Member{Credential: ccred, TrustScore: 0.9})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, h := range []peer.AddrInfo{{ID: c.ID(), Addrs: c.Addrs()}, {ID: d.ID(), Addrs: d.Addrs()}} {
		if err := b.h.Connect(ctx, h); err != nil {
			t.Fatal(err)
		}
	}

	bundle, err := policy.SignBundle(n.issuer, map[string]string{"p.rego": "package ztmesh.authz\n\ndefault allow := false\n"}, 3, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.mesh.PublishPolicyBundle(ctx, bundle); err != nil {
		t.Fatal(err)
	}
	select {
	case msg := <-got:
		if string(msg.Bundle) != string(bundle) || len(msg.Revocations) != 0 || len(msg.MemberHashes) != 0 {
			t.Fatalf("pushed %+v", msg)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the bundle never reached the neighbour outside the mesh")
	}
	select {
	case <-leaked:
		t.Fatal("the bundle was pushed to an unverified peer")
	case <-time.After(200 * time.Millisecond):
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
		a.control.ApplyMember(tok)
	}
	for _, tok := range toks[:10] { // b holds the first ten already
		b.control.ApplyMember(tok)
	}
	b.control.mu.Lock()
	b.control.applied = nil
	b.control.mu.Unlock()

	if err := a.mesh.SyncTo(context.Background(), b.h.ID()); err != nil {
		t.Fatal(err)
	}
	eventuallyT(t, 5*time.Second, "b holds every member", func() bool {
		return len(b.control.MemberHashes()) == total
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
	f.Fuzz(func(t *testing.T, data []byte, offered int) {
		var s syncMessage
		if wire.DecodeStrict(data, &s) == nil && s.check() == nil && (s.V != 1 || len(s.MemberHashes) > maxSyncMembers) {
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
