package node

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	ps "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/internal/fsutil"
	"github.com/ztmesh/ztmesh/policy"
	"github.com/ztmesh/ztmesh/pubsub"
)

// collector gathers a subscription's deliveries in the background.
type collector struct {
	mu   sync.Mutex
	got  []*pubsub.Delivery
	stop context.CancelFunc
}

func collect(t *testing.T, n *testNode, zone, channel string) *collector {
	t.Helper()
	sub, err := n.Mesh().Subscribe(zone, channel)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &collector{stop: func() { cancel(); sub.Cancel() }}
	t.Cleanup(c.stop)
	go func() {
		for {
			d, err := sub.Next(ctx)
			if err != nil {
				return
			}
			c.mu.Lock()
			c.got = append(c.got, d)
			c.mu.Unlock()
		}
	}()
	return c
}

func (c *collector) has(data string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, d := range c.got {
		if string(d.Data) == data {
			return true
		}
	}
	return false
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got)
}

// rawCollect subscribes at the GossipSub level, with no ztmesh validation:
// it sees whatever GossipSub hands the node for that topic, ciphertext included.
func rawCollect(t *testing.T, p *ps.PubSub, topic string) (*ps.Topic, *ps.Subscription) {
	t.Helper()
	tp, err := p.Join(topic)
	if err != nil {
		t.Fatal(err)
	}
	s, err := tp.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Cancel)
	return tp, s
}

// rawGot counts the messages s receives within d that came from other
// nodes (GossipSub also hands a node its own publications).
func rawGot(s *ps.Subscription, self peer.ID, d time.Duration) int {
	n := 0
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for {
		m, err := s.Next(ctx)
		if err != nil {
			return n
		}
		if m.ReceivedFrom != self {
			n++
		}
	}
}

func verifiedMesh(t *testing.T, nodes ...*testNode) {
	t.Helper()
	for i, a := range nodes {
		for _, b := range nodes[i+1:] {
			connect(t, a, b)
		}
	}
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b {
				eventually(t, 5*time.Second, "verified", func() bool { return verifiedBy(a, b.host.ID()) })
			}
		}
	}
}

// publishUntil publishes numbered messages until cond holds (GossipSub
// needs a heartbeat or two to graft a new subscriber into the mesh).
func publishUntil(t *testing.T, from *testNode, zone, channel, prefix string, cond func(last string) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		msg := fmt.Sprintf("%s %d", prefix, i)
		if _, err := from.Mesh().Publish(context.Background(), zone, channel, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		if cond(msg) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no delivery of %q within 10s", prefix)
		}
	}
}

func TestZoneMessagingBetweenNodes(t *testing.T) {
	m := newMesh(t)
	a, b := m.startIn([]string{"north"}), m.startIn([]string{"north", "south"})
	verifiedMesh(t, a, b)
	got := collect(t, b, "north", "maps")
	publishUntil(t, a, "north", "maps", "map", got.has)
	d := got.got[0]
	if d.Origin != a.DID() || d.Zone != "north" || d.Channel != "maps" {
		t.Fatalf("delivery %+v", d)
	}
}

// TestZoneIsolation: a credentialed member of zone south subscribes to zone
// north behind ztmesh's back (raw GossipSub) and receives nothing from north,
// not even ciphertext, while a member of north receives everything; its own
// messages into north are rejected.
func TestZoneIsolation(t *testing.T) {
	m := newMesh(t)
	a, b, c := m.startIn([]string{"north"}), m.startIn([]string{"north"}), m.startIn([]string{"south"})
	verifiedMesh(t, a, b, c)
	north, _ := pubsub.ZoneTopic(DefaultMesh, "north", "maps")
	spyTopic, spy := rawCollect(t, c.Mesh().PubSub(), north.String())
	got := collect(t, b, "north", "maps")
	eventually(t, 5*time.Second, "a sees c's subscription", func() bool {
		for _, p := range a.Mesh().PubSub().ListPeers(north.String()) {
			if p == c.host.ID() {
				return true
			}
		}
		return false
	})
	publishUntil(t, a, "north", "maps", "secret", got.has)
	for i := 0; i < 20; i++ {
		a.Mesh().Publish(context.Background(), "north", "maps", []byte(fmt.Sprintf("more %d", i)))
		time.Sleep(50 * time.Millisecond)
	}
	if n := rawGot(spy, c.host.ID(), 2*time.Second); n != 0 {
		t.Fatalf("member of south received %d messages of north (ciphertext or not)", n)
	}
	if got.count() < 20 {
		t.Fatalf("member of north received only %d messages", got.count())
	}

	// c publishes into north at the GossipSub level: a's and b's validators
	// reject it (c may not publish there).
	before := got.count()
	rejected := func() (n uint64) {
		for _, x := range []*testNode{a, b} {
			n += x.Mesh().Stats().Rejected()["unauthorized"]
		}
		return n
	}
	rejectedBefore := rejected()
	// d, a member of south whose own policy was loosened (misconfigured or
	// compromised), publishes properly sealed messages into north: the
	// policy of a and b is what refuses them.
	d := m.startIn([]string{"south"})
	verifiedMesh(t, a, b, d)
	if err := d.Policy().LoadModules(map[string]string{"open.rego": "package ztmesh.authz\n\nallow := true\n"}, 1, "test"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if _, err := d.Mesh().Publish(context.Background(), "north", "maps", []byte("from south")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = spyTopic
	time.Sleep(time.Second)
	if got.count() != before {
		t.Fatal("b accepted a message from a non-member of north")
	}
	if rejected() == rejectedBefore {
		t.Fatalf("c's messages into north were not rejected as unauthorized: a %v b %v", a.Mesh().Stats().Rejected(), b.Mesh().Stats().Rejected())
	}
}

func TestUncredentialedPeerGetsNoZoneTraffic(t *testing.T) {
	m := newMesh(t)
	a, b := m.startIn([]string{"north"}, func(c *Config) { c.AuthGrace = Duration(30 * time.Second) }),
		m.startIn([]string{"north"}, func(c *Config) { c.AuthGrace = Duration(30 * time.Second) })
	verifiedMesh(t, a, b)
	north, _ := pubsub.ZoneTopic(DefaultMesh, "north", "maps")

	// A stock libp2p host running stock GossipSub, and a full node whose
	// credential comes from an issuer nobody here pins.
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	plain, err := ps.NewGossipSub(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []*testNode{a, b} {
		if err := h.Connect(context.Background(), peer.AddrInfo{ID: x.host.ID(), Addrs: x.host.Addrs()}); err != nil {
			t.Fatal(err)
		}
	}
	tp, spy := rawCollect(t, plain, north.String())

	got := collect(t, b, "north", "maps")
	publishUntil(t, a, "north", "maps", "secret", got.has)
	for i := 0; i < 10; i++ {
		tp.Publish(context.Background(), []byte("junk"))
		a.Mesh().Publish(context.Background(), "north", "maps", []byte("more"))
		time.Sleep(50 * time.Millisecond)
	}
	if n := rawGot(spy, h.ID(), 2*time.Second); n != 0 {
		t.Fatalf("uncredentialed peer received %d zone messages", n)
	}
	if got.has("junk") {
		t.Fatal("junk from the uncredentialed peer delivered")
	}

	// A full ztmesh node whose credential comes from an issuer nobody here
	// pins: refused at the handshake, it sees no zone traffic either.
	rogueMesh := newMesh(t)
	rogue := rogueMesh.startIn([]string{"north"}, func(c *Config) { c.AuthGrace = Duration(30 * time.Second) })
	connect(t, rogue, a)
	connect(t, rogue, b)
	_, rogueSpy := rawCollect(t, rogue.Mesh().PubSub(), north.String())
	for i := 0; i < 10; i++ {
		a.Mesh().Publish(context.Background(), "north", "maps", []byte("for members only"))
		time.Sleep(50 * time.Millisecond)
	}
	if n := rawGot(rogueSpy, rogue.host.ID(), 2*time.Second); n != 0 {
		t.Fatalf("node with an untrusted issuer's credential received %d zone messages", n)
	}
	if verifiedBy(a, rogue.host.ID()) {
		t.Fatal("node with an untrusted issuer's credential verified")
	}
	// Neither GossipSub ever took the plain peer on: its streams were
	// refused, so its junk did not even reach a validator.
	for _, x := range []*testNode{a, b} {
		for _, p := range x.Mesh().PubSub().ListPeers(north.String()) {
			if p == h.ID() {
				t.Fatal("GossipSub lists the uncredentialed peer as a subscriber")
			}
		}
		if n := x.Mesh().Stats().Rejected()["unverified origin"]; n != 0 {
			t.Fatalf("%d messages of the uncredentialed peer reached a validator", n)
		}
	}
}

func TestRevokedNodeCutOffWithinOneSecond(t *testing.T) {
	m := newMesh(t)
	dir := t.TempDir()
	rev := filepath.Join(dir, "revoked.jwt")
	withRev := func(c *Config) { c.Revocations = rev; c.AllowMissingRevocations = true }
	a, b, r := m.startIn([]string{"north"}, withRev), m.startIn([]string{"north"}, withRev), m.startIn([]string{"north"}, withRev)
	verifiedMesh(t, a, b, r)
	gotR := collect(t, r, "north", "maps")
	gotB := collect(t, b, "north", "maps")
	publishUntil(t, a, "north", "maps", "before", func(s string) bool { return gotR.has(s) && gotB.has(s) })

	list, err := did.SignRevocationList(m.issuer, &did.RevocationList{Version: 1, Subjects: []did.DID{r.DID()}}, m.clock.now())
	if err != nil {
		t.Fatal(err)
	}
	if err := fsutil.WriteFileAtomic(rev, []byte(list), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	eventually(t, time.Second, "revoked node disconnected by a and b within 1s", func() bool {
		return !connected(a, r.host.ID()) && !connected(b, r.host.ID())
	})
	t.Logf("revoked node cut off after %s", time.Since(start))
	before := gotR.count()
	publishUntil(t, a, "north", "maps", "after", gotB.has)
	if gotR.count() != before {
		t.Fatal("revoked node read a message sent after its revocation")
	}
	// Its own messages no longer reach anyone.
	r.Mesh().Publish(context.Background(), "north", "maps", []byte("from revoked"))
	time.Sleep(500 * time.Millisecond)
	if gotB.has("from revoked") {
		t.Fatal("message of the revoked node delivered")
	}
	if a.Mesh().Stats().KeyRotations.Load() == 0 {
		t.Fatal("sender keys not rotated on revocation")
	}
}

// TestPolicyBundleReachesTenNodes: a signed policy bundle published on the
// control topic through one node is enforced by all ten nodes of a chain
// within 2 s.
func TestPolicyBundleReachesTenNodes(t *testing.T) {
	m := newMesh(t)
	var nodes []*testNode
	for i := 0; i < 10; i++ {
		n := m.startIn([]string{"north"})
		if i > 0 {
			connect(t, n, nodes[i-1]) // a chain: the bundle must travel 9 hops
			if i > 1 {
				connect(t, n, nodes[i-2])
			}
		}
		nodes = append(nodes, n)
	}
	for i := 1; i < len(nodes); i++ {
		eventually(t, 5*time.Second, "chain verified", func() bool { return verifiedBy(nodes[i], nodes[i-1].host.ID()) })
	}
	control := pubsub.ControlTopic(DefaultMesh).String()
	for i := 1; i < len(nodes); i++ {
		eventually(t, 5*time.Second, "control topic subscribed", func() bool {
			return len(nodes[i].Mesh().PubSub().ListPeers(control)) > 0
		})
	}
	time.Sleep(1500 * time.Millisecond) // control topic mesh grafted

	frozen := map[string]string{"frozen.rego": `package ztmesh.authz

default allow := false

allow if input.action == "subscribe"

reasons contains "publishing is frozen fleet-wide" if input.action == "publish"
`}
	bundle, err := policy.SignBundle(m.issuer, frozen, 7, policy.Scope{Mesh: DefaultMesh, Expires: time.Now().Add(time.Hour)}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := nodes[0].Mesh().PublishPolicyBundle(context.Background(), bundle); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "every node runs bundle version 7", func() bool {
		for _, n := range nodes {
			if n.Policy().Version() != 7 {
				return false
			}
		}
		return true
	})
	t.Logf("policy bundle enforced by 10 nodes after %s", time.Since(start))
	if _, err := nodes[9].Mesh().Publish(context.Background(), "north", "maps", []byte("x")); err == nil {
		t.Fatal("publish allowed under the frozen policy")
	}

	// A node that joins later gets the bundle from its first peer.
	late := m.startIn([]string{"north"})
	connect(t, late, nodes[5])
	eventually(t, 5*time.Second, "late joiner synced the bundle", func() bool { return late.Policy().Version() == 7 })

	// An older or foreign bundle is refused and changes nothing.
	old, _ := policy.SignBundle(m.issuer, frozen, 3, policy.Scope{Mesh: DefaultMesh, Expires: time.Now().Add(time.Hour)}, time.Now())
	if err := nodes[0].Mesh().PublishPolicyBundle(context.Background(), old); err == nil {
		t.Fatal("rolled-back bundle published")
	}
	rogue, _ := did.GenerateIdentity(rand.Reader)
	foreign, _ := policy.SignBundle(rogue, frozen, 99, policy.Scope{Mesh: DefaultMesh, Expires: time.Now().Add(time.Hour)}, time.Now())
	if err := nodes[0].Mesh().PublishPolicyBundle(context.Background(), foreign); err == nil {
		t.Fatal("foreign bundle published")
	}
	if nodes[0].Policy().Version() != 7 {
		t.Fatal("policy changed by a refused bundle")
	}
}

func TestLateJoinerReadsNewMessages(t *testing.T) {
	m := newMesh(t)
	a, b := m.startIn([]string{"north"}), m.startIn([]string{"north"})
	verifiedMesh(t, a, b)
	gotB := collect(t, b, "north", "maps")
	publishUntil(t, a, "north", "maps", "early", gotB.has)

	late := m.startIn([]string{"north"})
	verifiedMesh(t, late, a)
	gotLate := collect(t, late, "north", "maps")
	publishUntil(t, a, "north", "maps", "new", gotLate.has)
	if gotLate.has("early 0") {
		t.Fatal("late joiner got a message from before it subscribed")
	}
}

func TestRevocationOnControlTopic(t *testing.T) {
	m := newMesh(t)
	a, b, r := m.startIn([]string{"north"}), m.startIn([]string{"north"}), m.startIn([]string{"north"})
	verifiedMesh(t, a, b, r)
	control := pubsub.ControlTopic(DefaultMesh).String()
	eventually(t, 5*time.Second, "control mesh", func() bool { return len(b.Mesh().PubSub().ListPeers(control)) == 2 })
	time.Sleep(1500 * time.Millisecond)
	list, _ := did.SignRevocationList(m.issuer, &did.RevocationList{Version: 1, Subjects: []did.DID{r.DID()}}, time.Now())
	start := time.Now()
	if err := a.Mesh().PublishRevocations(context.Background(), []byte(list)); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "b cuts off r within 1s of the publication", func() bool { return !connected(b, r.host.ID()) })
	t.Logf("revocation via control topic enforced after %s", time.Since(start))
}

// TestPolicyFileReloadsWithoutRestart: editing the policy file changes what
// a running node allows; a broken edit leaves the last good policy in force.
func TestPolicyFileReloadsWithoutRestart(t *testing.T) {
	m := newMesh(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "fleet.rego")
	open := "package ztmesh.authz\n\nallow := true\n"
	frozen := "package ztmesh.authz\n\ndefault allow := false\n\nallow if input.action == \"subscribe\"\n\nreasons contains \"publishing frozen by file\" if input.action == \"publish\"\n"
	if err := os.WriteFile(file, []byte(open), 0o644); err != nil {
		t.Fatal(err)
	}
	a := m.startIn([]string{"north"}, func(c *Config) { c.Policy = dir })
	if _, err := a.Mesh().Publish(context.Background(), "north", "maps", []byte("x")); err != nil {
		t.Fatalf("open policy: %v", err)
	}
	time.Sleep(10 * time.Millisecond) // a new modification time
	if err := fsutil.WriteFileAtomic(file, []byte(frozen), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, "the edited policy is in force", func() bool {
		_, err := a.Mesh().Publish(context.Background(), "north", "maps", []byte("x"))
		return err != nil && strings.Contains(err.Error(), "publishing frozen by file")
	})
	if err := fsutil.WriteFileAtomic(file, []byte("package ztmesh.authz\n\nallow := {{{"), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, "the broken edit is refused", func() bool {
		return a.logs.find(map[string]string{"event_type": "policy_refused"}) != nil
	})
	if _, err := a.Mesh().Publish(context.Background(), "north", "maps", []byte("x")); err == nil || !strings.Contains(err.Error(), "frozen") {
		t.Fatalf("after a broken edit the last good policy should stay: %v", err)
	}
}

// TestZoneMessagesAcrossHops: on a chain a - b - c (a and c not
// connected), c reads a's messages: it learns a from a's announcement
// relayed by b, checks a's credential and policy itself, and pulls a's
// sender key by dialing a. State written by a reaches c the same way.
func TestZoneMessagesAcrossHops(t *testing.T) {
	m := newMesh(t)
	a, b, c := m.startIn([]string{"north"}), m.startIn([]string{"north"}), m.startIn([]string{"north"})
	verifiedMesh(t, a, b)
	verifiedMesh(t, b, c)
	if connected(a, c.host.ID()) {
		t.Fatal("a and c should not be connected yet")
	}
	eventually(t, 10*time.Second, "c knows a from its announcement", func() bool {
		_, ok := c.roster.announced(a.host.ID())
		return ok
	})
	gotB := collect(t, b, "north", "maps")
	gotC := collect(t, c, "north", "maps")
	publishUntil(t, a, "north", "maps", "two hops", func(s string) bool { return gotB.has(s) && gotC.has(s) })
	for _, d := range gotC.got {
		if d.Origin != a.DID() {
			t.Fatalf("c got a message from %s", d.Origin)
		}
	}
	ra, rc := openTestState(t, a, "north", "hazards"), openTestState(t, c, "north", "hazards")
	openTestState(t, b, "north", "hazards")
	if _, err := ra.Put(context.Background(), ownKey(a, "far"), []byte("across b")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "a's state write reaches c", func() bool {
		v, ok := rc.Get(ownKey(a, "far"))
		return ok && string(v) == "across b"
	})
}
