package pubsub

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	ps "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/ztmesh/ztmesh/did"
)

func TestPublishSubscribeSealed(t *testing.T) {
	n := newNet(t, 0, []string{"north"}, []string{"north"})
	a, b := n.nodes[0], n.nodes[1]
	sub, err := b.mesh.Subscribe("north", "maps")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Cancel()
	waitPeers(t, a, "north", "maps", b)
	time.Sleep(1200 * time.Millisecond) // one GossipSub heartbeat to graft the mesh
	for i := 0; i < 5; i++ {
		if _, err := a.mesh.Publish(context.Background(), "north", "maps", []byte(fmt.Sprintf("map %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	// Validation is concurrent, so delivery order is not publication order.
	got := map[string]bool{}
	for i := 0; i < 5; i++ {
		d := recvWithin(sub, 5*time.Second)
		if d == nil {
			t.Fatalf("only %d of 5 messages delivered", i)
		}
		if d.Origin != a.id.DID() || d.Zone != "north" || d.Channel != "maps" {
			t.Fatalf("delivery %+v", d)
		}
		got[string(d.Data)] = true
	}
	for i := 0; i < 5; i++ {
		if !got[fmt.Sprintf("map %d", i)] {
			t.Fatalf("map %d missing: %v", i, got)
		}
	}
}

func TestOwnPolicyRefusesPublishAndSubscribeOutsideZones(t *testing.T) {
	n := newNet(t, 0, []string{"south"})
	a := n.nodes[0]
	if _, err := a.mesh.Publish(context.Background(), "north", "maps", []byte("x")); !errors.Is(err, ErrDenied) {
		t.Fatalf("publish outside zone: %v", err)
	}
	if _, err := a.mesh.Subscribe("north", "maps"); !errors.Is(err, ErrDenied) {
		t.Fatalf("subscribe outside zone: %v", err)
	}
}

// rawInjector is a libp2p host speaking GossipSub's wire protocol by hand:
// it writes arbitrary RPCs, as a compromised member could. (GossipSub
// streams exist only with verified members, so the target counts it as one:
// what it forwards must still pass the validator.)
type rawInjector struct {
	h  host.Host
	ps *ps.PubSub
}

func newInjector(t *testing.T, target *tnode) *rawInjector {
	id, err := did.GenerateIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(libp2p.Identity(id.LibP2PKey()), libp2p.NoListenAddrs)
	if err != nil {
		t.Fatal(err)
	}
	iss, _ := did.GenerateIdentity(rand.Reader)
	tok, err := did.Issue(iss, id.DID(), did.Claims{Role: "vehicle", TrustScore: 0.9, Zones: []string{"north"}, SoftwareVersion: "1.4.0"}, did.IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cred, err := did.Inspect([]byte(tok))
	if err != nil {
		t.Fatal(err)
	}
	target.members.set(h.ID(), Member{Credential: cred, TrustScore: 0.9})
	t.Cleanup(func() { h.Close() })
	// It also runs stock GossipSub, so the target counts it as a GossipSub
	// peer (and scores it) like any forwarder.
	gsCtx, stopGS := context.WithCancel(context.Background())
	gs, err := ps.NewGossipSub(gsCtx, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.Connect(ctx, peer.AddrInfo{ID: target.h.ID(), Addrs: target.h.Addrs()}); err != nil {
		t.Fatal(err)
	}
	// Subscribe to something and wait until the target has seen it: its
	// GossipSub then tracks (and scores) us, and our own GossipSub stream is
	// in place, so the raw stream opened later replaces it instead of
	// racing with it.
	tp, err := gs.Join("ztmesh/fleet/control")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tp.Subscribe(); err != nil {
		t.Fatal(err)
	}
	eventuallyT(t, 5*time.Second, "target tracks the injector", func() bool {
		for _, p := range target.mesh.ps.ListPeers("ztmesh/fleet/control") {
			if p == h.ID() {
				return true
			}
		}
		return false
	})
	// Stop our GossipSub now, so it cannot reopen a stream that would
	// replace the raw one; the target keeps tracking us as a peer.
	stopGS()
	time.Sleep(100 * time.Millisecond)
	return &rawInjector{h: h, ps: gs}
}

func (r *rawInjector) inject(t *testing.T, target *tnode, msgs ...*pb.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := r.h.NewStream(ctx, target.h.ID(), ps.GossipSubID_v11)
	if err != nil {
		t.Fatal(err)
	}
	rpc := &pb.RPC{Publish: msgs}
	data, err := proto.Marshal(rpc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(append(binary.AppendUvarint(nil, uint64(len(data))), data...)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // let it be read before the stream closes
	s.Close()
}

// capture subscribes to a topic at the GossipSub level next to the mesh, to
// get the raw signed messages as they arrive.
func capture(t *testing.T, n *tnode, zone, channel string) *ps.Subscription {
	topic, _ := ZoneTopic("fleet", zone, channel)
	n.mesh.mu.RLock()
	j := n.mesh.joined[topic.String()]
	n.mesh.mu.RUnlock()
	s, err := j.t.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Cancel)
	return s
}

// TestReplayAfterSeenCacheForgets replays a captured message once
// GossipSub's seen-cache has forgotten it. The cache is swept once a minute
// whatever its TTL, so this test takes a minute: it is skipped with -short.
func TestReplayAfterSeenCacheForgets(t *testing.T) {
	if testing.Short() {
		t.Skip("waits a minute for GossipSub's seen-cache sweep")
	}
	created := time.Now()
	n := newNet(t, 500*time.Millisecond, []string{"north"}, []string{"north"})
	a, b := n.nodes[0], n.nodes[1]
	sub, err := b.mesh.Subscribe("north", "maps")
	if err != nil {
		t.Fatal(err)
	}
	raw := capture(t, b, "north", "maps")
	waitPeers(t, a, "north", "maps", b)
	time.Sleep(1200 * time.Millisecond)
	if _, err := a.mesh.Publish(context.Background(), "north", "maps", []byte("once")); err != nil {
		t.Fatal(err)
	}
	if d := recvWithin(sub, 5*time.Second); d == nil || string(d.Data) != "once" {
		t.Fatalf("first delivery: %+v", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	orig, err := raw.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The seen-cache (TTL 500 ms) forgets at its first sweep, a minute after
	// the node started.
	time.Sleep(time.Until(created.Add(62 * time.Second)))

	inj := newInjector(t, b)
	inj.inject(t, b, orig.Message)
	if d := recvWithin(sub, 2*time.Second); d != nil {
		t.Fatalf("replayed message delivered again: %+v", d)
	}
	if got := b.mesh.Stats().Rejected()["replay"]; got != 1 {
		t.Fatalf("replay rejections = %d, want 1 (all: %v)", got, b.mesh.Stats().Rejected())
	}
	// The same message replayed to its own origin is not delivered either.
	// (GossipSub drops a message that claims our origin but arrives from the
	// network; our validator would also refuse it, as a recorded its own
	// sequence number when it published.)
	subA, err := a.mesh.Subscribe("north", "maps")
	if err != nil {
		t.Fatal(err)
	}
	newInjector(t, a).inject(t, a, orig.Message)
	if d := recvWithin(subA, time.Second); d != nil {
		t.Fatalf("own message replayed to the origin delivered: %+v", d)
	}
}

func TestForgedMessagesRejected(t *testing.T) {
	n := newNet(t, 0, []string{"north"}, []string{"north"}, []string{"south"})
	a, b, c := n.nodes[0], n.nodes[1], n.nodes[2]
	sub, err := b.mesh.Subscribe("north", "maps")
	if err != nil {
		t.Fatal(err)
	}
	raw := capture(t, b, "north", "maps")
	waitPeers(t, a, "north", "maps", b)
	time.Sleep(1200 * time.Millisecond)
	if _, err := a.mesh.Publish(context.Background(), "north", "maps", []byte("genuine")); err != nil {
		t.Fatal(err)
	}
	if d := recvWithin(sub, 5*time.Second); d == nil {
		t.Fatal("genuine message not delivered")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	genuine, err := raw.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	topicN, _ := ZoneTopic("fleet", "north", "maps")
	topicO, _ := ZoneTopic("fleet", "north", "other")

	// signed builds a message signed by node x (a real origin signature)
	// with the given data, on topic.
	seq := uint64(1000)
	signed := func(x *tnode, topic string, data []byte) *pb.Message {
		seq++
		m := &pb.Message{From: []byte(x.h.ID()), Data: data, Seqno: binary.BigEndian.AppendUint64(nil, seq), Topic: &topic}
		if err := signMessage(x, m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	kA, err := a.mesh.ownKey(topicN.String())
	if err != nil {
		t.Fatal(err)
	}
	tampered, _ := sealEnvelope(kA, topicN.String(), a.h.ID(), a.mesh.seq.Add(1), time.Now(), []byte("tampered"))
	tampered[len(tampered)-3] ^= 1
	wrongTopic, _ := sealEnvelope(kA, topicO.String(), a.h.ID(), a.mesh.seq.Add(1), time.Now(), []byte("moved"))
	stale, _ := sealEnvelope(kA, topicN.String(), a.h.ID(), a.mesh.seq.Add(1), time.Now().Add(-10*time.Minute), []byte("old"))
	kC := testKey(t, topicN.String())
	c.mesh.mu.Lock()
	c.mesh.own[topicN.String()] = kC // c is no member of north: it makes up a key
	c.mesh.mu.Unlock()
	unauthorized, _ := sealEnvelope(kC, topicN.String(), c.h.ID(), 1, time.Now(), []byte("from south"))

	badSig := proto.Clone(genuine.Message).(*pb.Message)
	badSig.Signature = bytes.Clone(genuine.Signature)
	badSig.Signature[0] ^= 1
	badSig.Seqno = binary.BigEndian.AppendUint64(nil, 99)

	cases := []struct {
		name   string
		msg    *pb.Message
		reason string // expected in b's rejection stats ("" = dropped by GossipSub's signature check)
	}{
		{"bad origin signature", badSig, ""},
		{"tampered ciphertext", signed(a, topicN.String(), tampered), "bad ciphertext"},
		{"ciphertext moved from another topic", signed(a, topicN.String(), wrongTopic), "bad ciphertext"},
		{"stale timestamp", signed(a, topicN.String(), stale), "stale"},
		{"origin not allowed to publish in zone", signed(c, topicN.String(), unauthorized), "unauthorized"},
		{"garbage envelope", signed(a, topicN.String(), []byte("garbage")), "malformed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// A fresh forwarder for each case: scoring graylists one that
			// forwards invalid messages, after which it is not heard at all.
			inj := newInjector(t, b)
			before := b.mesh.Stats().Rejected()[tc.reason]
			inj.inject(t, b, tc.msg)
			if d := recvWithin(sub, time.Second); d != nil {
				t.Fatalf("forged message delivered: %+v", d)
			}
			if tc.reason != "" {
				if got := b.mesh.Stats().Rejected()[tc.reason]; got != before+1 {
					t.Fatalf("rejections for %q: %d -> %d (all %v)", tc.reason, before, got, b.mesh.Stats().Rejected())
				}
			}
		})
	}
	// A forwarder cannot alter what the origin signed: for those verdicts
	// it is not blamed (Ignore), however many it forwards (issue 15).
	inj := newInjector(t, b)
	inj.inject(t, b, signed(a, topicN.String(), tampered), signed(a, topicN.String(), stale), signed(a, topicN.String(), []byte("x")))
	eventuallyT(t, 5*time.Second, "the three judged", func() bool {
		s, ok := b.mesh.Scores()[inj.h.ID()]
		return ok && s < 0 || b.mesh.Stats().Rejected()["malformed"] >= 2
	})
	p0 := b.mesh.scores.Load()
	eventuallyT(t, 5*time.Second, "fresh scores", func() bool { return b.mesh.scores.Load() != p0 })
	if s := b.mesh.Scores()[inj.h.ID()]; s < 0 {
		t.Fatalf("forwarder of origin-signed invalid messages penalized: score %v", s)
	}
	// Peer scoring punishes a forwarder of messages whose origin signature
	// fails (GossipSub's own check) below the graylist threshold: b then
	// ignores it altogether.
	forger := newInjector(t, b)
	var forged []*pb.Message
	for i := range 4 {
		f := proto.Clone(badSig).(*pb.Message)
		f.Seqno = binary.BigEndian.AppendUint64(nil, uint64(200+i))
		forged = append(forged, f)
	}
	forger.inject(t, b, forged...)
	deadline := time.Now().Add(5 * time.Second)
	for {
		s, ok := b.mesh.Scores()[forger.h.ID()]
		if ok && s < graylistThreshold {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("forwarder of 4 forged messages not graylisted: score %v (known %v), all %v", s, ok, b.mesh.Scores())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if s := b.mesh.Scores()[a.h.ID()]; s < 0 {
		t.Fatalf("honest member a has score %v", s)
	}
}

// signMessage signs a GossipSub message the way GossipSub does, with x's key.
func signMessage(x *tnode, m *pb.Message) error {
	const prefix = "libp2p-pubsub:"
	m.Signature, m.Key = nil, nil
	b, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	sig, err := x.id.LibP2PKey().Sign(append([]byte(prefix), b...))
	if err != nil {
		return err
	}
	m.Signature = sig
	return nil
}
