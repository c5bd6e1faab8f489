package pubsub

import (
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/policy"
)

// The harness runs real GossipSub on real libp2p hosts over loopback, with
// real credentials and the real default policy. The one thing it does not
// run is the node's handshake: each test node registers the others as
// verified members directly, with their real credentials and key packages.

type testMembers struct {
	mu  sync.RWMutex
	m   map[peer.ID]Member
	ver uint64 // bumped by every set
}

func (t *testMembers) StandingVersion(peer.ID) uint64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.ver
}

func (t *testMembers) Member(p peer.ID) (Member, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	m, ok := t.m[p]
	return m, ok
}

func (t *testMembers) set(p peer.ID, m Member) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.m[p] = m
	t.ver++
}

type testControl struct {
	ver *did.Verifier
	pol *policy.Engine

	// Member announcements are opaque tokens here, hashed whole.
	mu      sync.Mutex
	members map[MemberHash][]byte
	applied [][]byte // every token ApplyMember was given

	quarantines map[string]bool

	evidence     map[peer.ID]int // applied, per origin
	evidenceSeen map[string]bool
}

func testMemberHash(tok []byte) MemberHash { return HashMember(string(tok), nil) }

func (c *testControl) ApplyRevocations(tok []byte) (bool, error) {
	_, changed, err := c.ver.Revocations().Update(tok)
	return changed, err
}

func (c *testControl) ApplyPolicyBundle(tok []byte) (bool, error) {
	_, err := c.pol.ApplyBundle(tok, c.ver.Trusts)
	return err == nil, err
}

func (c *testControl) ApplyReference([]byte) (bool, error) {
	return false, errors.New("not in this harness")
}

// ApplyEvidence takes any evidence as new once and counts it per origin
// (the node package tests the judgment).
func (c *testControl) ApplyEvidence(origin peer.ID, tok []byte) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.evidence == nil {
		c.evidence, c.evidenceSeen = map[peer.ID]int{}, map[string]bool{}
	}
	if c.evidenceSeen[string(tok)] {
		return false, ErrStale
	}
	c.evidenceSeen[string(tok)] = true
	c.evidence[origin]++
	return true, nil
}

// evidenceFrom is how many evidence messages of origin were applied.
func (c *testControl) evidenceFrom(origin peer.ID) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.evidence[origin]
}
func (c *testControl) ApplyMember(_ string, tok []byte) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.applied = append(c.applied, tok)
	h := testMemberHash(tok)
	if _, ok := c.members[h]; ok {
		return false, nil
	}
	if c.members == nil {
		c.members = map[MemberHash][]byte{}
	}
	c.members[h] = tok
	return true, nil
}

// ApplyQuarantine takes any announcement as new once (the node package
// tests the judgment).
func (c *testControl) ApplyQuarantine(tok []byte) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.quarantines[string(tok)] {
		return false, ErrStale
	}
	if c.quarantines == nil {
		c.quarantines = map[string]bool{}
	}
	c.quarantines[string(tok)] = true
	return true, nil
}
func (c *testControl) ControlState() ControlState { return ControlState{} }
func (c *testControl) MemberHashes(peer.ID) []MemberHash {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []MemberHash
	for h := range c.members {
		out = append(out, h)
	}
	return out
}

func (c *testControl) MemberTokens(want []MemberHash) [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out [][]byte
	for _, h := range want {
		if tok, ok := c.members[h]; ok {
			out = append(out, tok)
		}
	}
	return out
}

type tnode struct {
	h       host.Host
	id      *did.Identity
	cred    *did.Credential
	mesh    *Mesh
	members *testMembers
	control *testControl
}

type tnet struct {
	t      *testing.T
	issuer *did.Identity
	ver    *did.Verifier
	nodes  []*tnode
	config func(*Config) // adjusts the Config of the next nodes added
}

func newNet(t *testing.T, seenTTL time.Duration, zones ...[]string) *tnet {
	t.Helper()
	iss, _ := did.GenerateIdentity(rand.Reader)
	ver, err := did.NewVerifier([]did.DID{iss.DID()})
	if err != nil {
		t.Fatal(err)
	}
	n := &tnet{t: t, issuer: iss, ver: ver}
	for _, z := range zones {
		n.add(z, seenTTL)
	}
	for i, a := range n.nodes {
		for _, b := range n.nodes[i+1:] {
			n.link(a, b)
		}
	}
	return n
}

// identity makes a member's identity, its verified credential for zones,
// and a loopback host with its key.
func (n *tnet) identity(zones []string) (*did.Identity, *did.Credential, host.Host) {
	t := n.t
	t.Helper()
	id, _ := did.GenerateIdentity(rand.Reader)
	tok, err := did.Issue(n.issuer, id.DID(), did.Claims{Role: "vehicle", TrustScore: 0.9, Zones: zones, SoftwareVersion: "1.4.0"}, did.IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cred, err := n.ver.VerifyHolder([]byte(tok), id.DID(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(libp2p.Identity(id.LibP2PKey()), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return id, cred, h
}

func (n *tnet) add(zones []string, seenTTL time.Duration) *tnode {
	t := n.t
	id, cred, h := n.identity(zones)
	pol, err := policy.New()
	if err != nil {
		t.Fatal(err)
	}
	members := &testMembers{m: map[peer.ID]Member{}}
	ctl := &testControl{ver: n.ver, pol: pol}
	cfg := Config{
		Mesh: "fleet", Identity: id, Credential: func() *did.Credential { return cred }, Policy: pol,
		Members: members, Control: ctl, Directory: ctl, SeenTTL: seenTTL, Suite: SuiteX25519,
	}
	if n.config != nil {
		n.config(&cfg)
	}
	mesh, err := New(context.Background(), h, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mesh.Close() }) // before h closes (cleanups run last first)
	tn := &tnode{h: h, id: id, cred: cred, mesh: mesh, members: members, control: ctl}
	n.nodes = append(n.nodes, tn)
	return tn
}

// link connects two nodes and makes each a verified member of the other.
func (n *tnet) link(a, b *tnode) {
	n.t.Helper()
	n.know(a, b, nil)
	n.know(b, a, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.h.Connect(ctx, peer.AddrInfo{ID: b.h.ID(), Addrs: b.h.Addrs()}); err != nil {
		n.t.Fatal(err)
	}
}

// know makes b a verified member of a, without connecting them (as if a
// had its announcement); edit, if set, adjusts a's view of b.
func (n *tnet) know(a, b *tnode, edit func(*Member)) {
	n.t.Helper()
	kp, err := ParseKeyPackage(b.mesh.KeyPackage(), b.id.DID(), time.Now())
	if err != nil {
		n.t.Fatal(err)
	}
	m := Member{Credential: b.cred, KeyPackage: kp, TrustScore: b.cred.Claims.TrustScore}
	if edit != nil {
		edit(&m)
	}
	a.members.set(b.h.ID(), m)
}

// waitMesh waits until a sees each of peers subscribed to zone/channel and
// allowed there (so a's GossipSub will pick them).
func waitPeers(t *testing.T, a *tnode, zone, channel string, peers ...*tnode) {
	t.Helper()
	topic, _ := ZoneTopic("fleet", zone, channel)
	eventuallyT(t, 5*time.Second, "subscriptions seen", func() bool {
		got := map[peer.ID]bool{}
		for _, p := range a.mesh.ps.ListPeers(topic.String()) {
			got[p] = true
		}
		for _, p := range peers {
			if !got[p.h.ID()] {
				return false
			}
		}
		return true
	})
}

func eventuallyT(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// recvWithin returns the next delivery within d, or nil.
func recvWithin(s *Subscription, d time.Duration) *Delivery {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	m, err := s.Next(ctx)
	if err != nil {
		return nil
	}
	return m
}
