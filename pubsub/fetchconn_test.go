package pubsub

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// TestKeyFetchConnectionClosed: a connection a key fetch opened is closed
// after the grace period unless GossipSub grafted the peer by then; a
// connection that was there before the fetch is never touched.
func TestKeyFetchConnectionClosed(t *testing.T) {
	n := newNet(t, 0)
	grace := 300 * time.Millisecond
	n.config = func(c *Config) { c.KeyConnGrace = grace }
	// a and fetcher have enough peers of their own to fill their topic
	// meshes (control and north's member topic: GossipSub's D is 6), so
	// neither grafts the other when the fetch connects them.
	a := n.add([]string{"north"}, 0)
	fetcher := n.add([]string{"north"}, 0)
	var peers []*tnode
	for i := range 12 {
		p := n.add([]string{"north"}, 0)
		n.link(a, p)
		if i < 6 {
			n.link(fetcher, p)
		}
		peers = append(peers, p)
	}
	linked := peers[11] // connected to a before it fetches
	// subscriber has a alone: its meshes are empty, so its heartbeat
	// grafts a; its grace is long enough for that.
	n.config = func(c *Config) { c.KeyConnGrace = 3 * time.Second }
	subscriber := n.add([]string{"north"}, 0)
	for _, p := range []*tnode{fetcher, subscriber} {
		n.know(a, p, nil)
		n.know(p, a, nil)
		p.h.Peerstore().AddAddrs(a.h.ID(), a.h.Addrs(), peerstore.TempAddrTTL)
	}
	time.Sleep(2500 * time.Millisecond) // heartbeats build the meshes

	topic, _ := ZoneTopic("fleet", "north", "maps")
	k, err := a.mesh.ownKey(topic.String())
	if err != nil {
		t.Fatal(err)
	}
	connected := func(p *tnode) bool { return p.h.Network().Connectedness(a.h.ID()) == network.Connected }
	fetch := func(p *tnode) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := p.mesh.receiverKey(ctx, a.h.ID(), k.id, topic.String()); err != nil {
			t.Fatalf("key fetch: %v", err)
		}
		if !connected(p) {
			t.Fatal("not connected after the fetch")
		}
	}
	fetch(fetcher)
	fetch(linked)
	fetch(subscriber)
	eventuallyT(t, 10*grace, "the fetcher's connection closed", func() bool { return !connected(fetcher) })
	if got := fetcher.mesh.KeyConnsClosed(); got != 1 {
		t.Errorf("fetcher closed %d key connections, want 1", got)
	}
	fetcher.mesh.mu.RLock()
	st := fetcher.mesh.recv[recvKeyID{a.h.ID(), k.id}]
	fetcher.mesh.mu.RUnlock()
	if st == nil {
		t.Error("the fetched key was not kept") // a's next message needs no connection
	}

	time.Sleep(4 * time.Second) // past the subscriber's grace
	if !connected(linked) || linked.mesh.KeyConnsClosed() != 0 {
		t.Error("a connection made before the fetch was closed")
	}
	if !subscriber.mesh.tracer.inMesh(a.h.ID()) {
		t.Fatal("a not grafted in the subscriber's mesh")
	}
	if !connected(subscriber) || subscriber.mesh.KeyConnsClosed() != 0 {
		t.Error("the connection to a mesh peer was closed")
	}
}

// TestPassiveStream: only GossipSub's and identify's streams may be open
// on a key-fetch connection that is closed.
func TestPassiveStream(t *testing.T) {
	for id, want := range map[string]bool{
		"/meshsub/1.2.0": true, "/meshsub/1.1.0": true, "/ipfs/id/1.0.0": true, "/ipfs/id/push/1.0.0": true,
		string(KeyProtocol): false, string(SyncProtocol): false, "/ztmesh/handshake/1.0.0": false, "": false,
	} {
		if got := passiveStream(protocol.ID(id)); got != want {
			t.Errorf("passiveStream(%q) = %v, want %v", id, got, want)
		}
	}
}
