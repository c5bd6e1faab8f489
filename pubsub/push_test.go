package pubsub

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ztmesh/ztmesh/did"
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
	cid, _ := did.GenerateIdentity(rand.Reader)
	tok, err := did.Issue(n.issuer, cid.DID(), did.Claims{Role: "vehicle", TrustScore: 0.9, Zones: []string{"south"}, SoftwareVersion: "1.4.0"}, did.IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ccred, err := n.ver.VerifyHolder([]byte(tok), cid.DID(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c, err := libp2p.New(libp2p.Identity(cid.LibP2PKey()), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
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
		if string(msg.Bundle) != string(bundle) || len(msg.Revocations) != 0 || len(msg.Members) != 0 {
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
