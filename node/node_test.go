package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"

	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/internal/fsutil"
	"github.com/ztmesh/ztmesh/pubsub"
)

func TestNodesVerifyEachOther(t *testing.T) {
	m := newMesh(t)
	a, b, c := m.start(), m.start(), m.start()
	connect(t, a, b)
	connect(t, b, c)
	connect(t, c, a)
	nodes := []*testNode{a, b, c}
	for _, x := range nodes {
		for _, y := range nodes {
			if x != y {
				eventually(t, 5*time.Second, x.DID().String()+" verifies "+y.DID().String(),
					func() bool { return verifiedBy(x, y.host.ID()) })
			}
		}
	}
	p, _ := a.roster.Connected(b.host.ID())
	if p.DID != b.DID() || p.Credential.Claims.Role != "vehicle" {
		t.Fatalf("registry entry %+v", p)
	}
	peers := a.Peers()
	if len(peers) != 2 || !peers[0].Verified || !peers[1].Verified {
		t.Fatalf("peers: %+v", peers)
	}
	if ev := a.logs.find(map[string]string{"event_type": "peer_verified", "did": b.DID().String()}); ev == nil {
		t.Fatal("no peer_verified log line for b")
	}
}

// attacker is a plain libp2p host that speaks the ztmesh handshake with
// whatever it is given: the way a hostile peer would.
func attacker(t testing.TB, id *did.Identity) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.Identity(id.LibP2PKey()), libp2p.NoListenAddrs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// presentRaw connects h to target and presents frame; it returns the result.
func presentRaw(t testing.TB, h host.Host, target *testNode, frame []byte) (*result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Connect(ctx, peer.AddrInfo{ID: target.host.ID(), Addrs: target.host.Addrs()}); err != nil {
		return nil, err
	}
	s, err := h.NewStream(ctx, target.host.ID(), AuthProtocol)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	if _, err := s.Write(frame); err != nil {
		return nil, err
	}
	body, err := readFrame(s)
	if err != nil {
		return nil, err
	}
	return decodeResult(body)
}

func frameOf(t testing.TB, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := writeFrame(&buf, v); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestHandshakeRefusals(t *testing.T) {
	m := newMesh(t)
	revFile := filepath.Join(t.TempDir(), "revoked.jwt")
	target := m.start(func(c *Config) { c.Revocations = revFile; c.AllowMissingRevocations = true })
	rogue, _ := did.GenerateIdentity(rand.Reader)
	now := m.clock.now()

	revokedID, _ := did.GenerateIdentity(rand.Reader)
	revokedCred := m.credFor(m.issuer, revokedID, did.IssueOptions{Now: now, ID: "urn:uuid:revoked-credential"})
	list, err := did.SignRevocationList(m.issuer, &did.RevocationList{Version: 1, Credentials: []string{"urn:uuid:revoked-credential"}}, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(revFile, []byte(list), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := target.Reload(); err != nil {
		t.Fatal(err)
	}

	other, _ := did.GenerateIdentity(rand.Reader)
	tests := []struct {
		name   string
		id     *did.Identity // the attacker's key
		frame  func(id *did.Identity) []byte
		reason string
	}{
		{"expired credential", nil, func(id *did.Identity) []byte {
			return frameOf(t, present{V: 1, Mesh: DefaultMesh, KeyPackage: kpFor(t, id), Credential: m.credFor(m.issuer, id, did.IssueOptions{Now: now.Add(-13 * time.Hour)})})
		}, "expired"},
		{"not yet valid", nil, func(id *did.Identity) []byte {
			return frameOf(t, present{V: 1, Mesh: DefaultMesh, KeyPackage: kpFor(t, id), Credential: m.credFor(m.issuer, id, did.IssueOptions{Now: now.Add(time.Hour)})})
		}, "not yet valid"},
		{"foreign issuer", nil, func(id *did.Identity) []byte {
			return frameOf(t, present{V: 1, Mesh: DefaultMesh, KeyPackage: kpFor(t, id), Credential: m.credFor(rogue, id, did.IssueOptions{Now: now})})
		}, "untrusted issuer"},
		{"revoked credential", revokedID, func(id *did.Identity) []byte {
			return frameOf(t, present{V: 1, Mesh: DefaultMesh, KeyPackage: kpFor(t, id), Credential: revokedCred})
		}, "revoked"},
		{"stolen credential of another node", nil, func(id *did.Identity) []byte {
			return frameOf(t, present{V: 1, Mesh: DefaultMesh, KeyPackage: kpFor(t, id), Credential: m.credFor(m.issuer, other, did.IssueOptions{Now: now})})
		}, "subject mismatch"},
		{"wrong mesh", nil, func(id *did.Identity) []byte {
			return frameOf(t, present{V: 1, Mesh: "other", KeyPackage: kpFor(t, id), Credential: m.credFor(m.issuer, id, did.IssueOptions{Now: now})})
		}, "wrong mesh"},
		{"garbage credential", nil, func(id *did.Identity) []byte {
			return frameOf(t, present{V: 1, Mesh: DefaultMesh, KeyPackage: kpFor(t, id), Credential: "garbage"})
		}, "malformed"},
		{"unknown field", nil, func(id *did.Identity) []byte {
			return frameOf(t, map[string]any{"v": 1, "mesh": DefaultMesh, "credential": "x", "key_package": kpFor(t, id), "admin": true})
		}, "malformed"},
		{"key package of another node", nil, func(id *did.Identity) []byte {
			return frameOf(t, present{V: 1, Mesh: DefaultMesh, KeyPackage: kpFor(t, other), Credential: m.credFor(m.issuer, id, did.IssueOptions{Now: now})})
		}, "bad key package"},
		{"oversized frame", nil, func(id *did.Identity) []byte {
			return []byte{0xff, 0xff, 0xff, 0xff}
		}, "too large"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := tc.id
			if id == nil {
				id, _ = did.GenerateIdentity(rand.Reader)
			}
			h := attacker(t, id)
			res, err := presentRaw(t, h, target, tc.frame(id))
			if err != nil {
				t.Fatalf("no handshake result: %v", err)
			}
			if res.Accepted || res.Reason != tc.reason {
				t.Fatalf("result %+v, want refused with %q", res, tc.reason)
			}
			eventually(t, 3*time.Second, "target drops the attacker", func() bool { return !connected(target, h.ID()) })
			if verifiedBy(target, h.ID()) {
				t.Fatal("attacker is in the registry")
			}
			if target.logs.find(map[string]string{"event_type": "handshake_refused", "peer": h.ID().String(), "reason": tc.reason}) == nil {
				t.Fatalf("no handshake_refused log with reason %q", tc.reason)
			}
		})
	}
}

func TestPlainLibp2pHostGetsNothing(t *testing.T) {
	m := newMesh(t)
	n := m.start(func(c *Config) { c.AuthGrace = Duration(time.Second) })
	// A stock go-libp2p host: default transports, security and muxers, no ztmesh code.
	h, err := libp2p.New(libp2p.NoListenAddrs)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Connect(ctx, peer.AddrInfo{ID: n.host.ID(), Addrs: n.host.Addrs()}); err != nil {
		t.Fatal(err)
	}
	// Identify completes: the plain host learns the node's protocols.
	eventually(t, 5*time.Second, "identify", func() bool {
		protos, _ := h.Peerstore().GetProtocols(n.host.ID())
		return slices.Contains(protos, AuthProtocol) && slices.Contains(protos, ping.ID)
	})
	// Ping works.
	res := <-ping.Ping(ctx, h, n.host.ID())
	if res.Error != nil {
		t.Fatalf("ping: %v", res.Error)
	}
	if verifiedBy(n, h.ID()) {
		t.Fatal("plain host verified")
	}
	// It is listed as connected but unverified, then dropped after the grace period.
	var listed bool
	for _, p := range n.Peers() {
		if p.PeerID == h.ID().String() {
			listed = !p.Verified
		}
	}
	if !listed {
		t.Fatal("plain host not listed as unverified peer")
	}
	eventually(t, 5*time.Second, "plain host dropped after grace", func() bool {
		return h.Network().Connectedness(n.host.ID()) != network.Connected
	})
	if n.logs.find(map[string]string{"event_type": "peer_dropped", "peer": h.ID().String(), "reason": "unauthenticated"}) == nil {
		t.Fatal("no peer_dropped/unauthenticated log line")
	}
}

func TestRevocationCutsOffPeerWithinOneSecond(t *testing.T) {
	m := newMesh(t)
	revFile := filepath.Join(t.TempDir(), "revoked.jwt")
	a := m.start(func(c *Config) { c.Revocations = revFile; c.AllowMissingRevocations = true })
	b := m.start()
	connect(t, b, a)
	eventually(t, 5*time.Second, "a verifies b", func() bool { return verifiedBy(a, b.host.ID()) })

	list, err := did.SignRevocationList(m.issuer, &did.RevocationList{Version: 1, Subjects: []did.DID{b.DID()}}, m.clock.now())
	if err != nil {
		t.Fatal(err)
	}
	if err := fsutil.WriteFileAtomic(revFile, []byte(list), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	eventually(t, time.Second, "revoked peer disconnected within 1s", func() bool { return !connected(a, b.host.ID()) })
	t.Logf("revoked peer disconnected %s after the list was written", time.Since(start))
	if verifiedBy(a, b.host.ID()) {
		t.Fatal("revoked peer still verified")
	}
	if a.logs.find(map[string]string{"event_type": "peer_dropped", "reason": "revoked"}) == nil {
		t.Fatal("no revoked drop logged")
	}
	// The gater now refuses b in both directions.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.host.Connect(ctx, peer.AddrInfo{ID: a.host.ID(), Addrs: a.host.Addrs()}); err == nil {
		eventually(t, 2*time.Second, "inbound revoked peer refused", func() bool { return !connected(a, b.host.ID()) })
	}
	a.host.Network().ClosePeer(b.host.ID())
	if err := a.host.Connect(ctx, peer.AddrInfo{ID: b.host.ID(), Addrs: b.host.Addrs()}); err == nil {
		t.Fatal("dial to revoked peer allowed")
	}
	if a.logs.find(map[string]string{"event_type": "connection_refused", "reason": "revoked"}) == nil {
		t.Fatal("no connection_refused log")
	}
}

func TestRenewalKeepsConnection(t *testing.T) {
	m := newMesh(t)
	a, b := m.start(), m.start()
	connect(t, b, a)
	eventually(t, 5*time.Second, "a verifies b", func() bool { return verifiedBy(a, b.host.ID()) })
	before := a.host.Network().ConnsToPeer(b.host.ID())

	renewed, err := did.Issue(m.issuer, b.DID(), claims("z1", "z2"), did.IssueOptions{Now: m.clock.now(), TTL: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	c, err := b.InstallCredential([]byte(renewed))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "a sees the renewed credential", func() bool {
		p, ok := a.roster.Connected(b.host.ID())
		return ok && p.Credential.ID == c.ID
	})
	after := a.host.Network().ConnsToPeer(b.host.ID())
	if len(before) == 0 || len(after) != len(before) || after[0].ID() != before[0].ID() {
		t.Fatalf("connections changed: %v -> %v", before, after)
	}
	// Stored for the next start.
	data, _ := os.ReadFile(filepath.Join(b.dir, did.CredentialFile))
	if !bytes.Contains(data, []byte(renewed)) {
		t.Fatal("renewed credential not written to the data dir")
	}
	// A credential for someone else is refused and changes nothing.
	if _, err := b.InstallCredential([]byte(m.credFor(m.issuer, a.id, did.IssueOptions{}))); !errors.Is(err, did.ErrSubjectMismatch) {
		t.Fatalf("installing another node's credential: %v", err)
	}
	if b.Credential().ID != c.ID {
		t.Fatal("refused install replaced the credential")
	}
}

func TestExpiredPeerIsDropped(t *testing.T) {
	m := newMesh(t)
	a, b := m.start(), m.start()
	connect(t, b, a)
	eventually(t, 5*time.Second, "a verifies b", func() bool { return verifiedBy(a, b.host.ID()) })
	m.clock.advance(did.DefaultTTL + did.DefaultClockSkew + time.Second)
	eventually(t, 3*time.Second, "expired peer dropped", func() bool { return !connected(a, b.host.ID()) })
	if a.logs.find(map[string]string{"event_type": "peer_dropped", "reason": "expired"}) == nil {
		t.Fatal("no expired drop logged")
	}
}

func TestNewRefusesBadOwnCredential(t *testing.T) {
	m := newMesh(t)
	id, _ := did.GenerateIdentity(rand.Reader)
	rogue, _ := did.GenerateIdentity(rand.Reader)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, did.CredentialFile), []byte(m.credFor(rogue, id, did.IssueOptions{})), 0o600)
	_, err := New(Config{Dir: dir, TrustIssuers: []string{m.issuer.DID().String()}}, Options{Identity: id})
	if !errors.Is(err, did.ErrUntrustedIssuer) {
		t.Fatalf("got %v", err)
	}
	_, err = New(Config{Dir: t.TempDir(), TrustIssuers: []string{m.issuer.DID().String()}}, Options{Identity: id})
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("ztmesh cred install")) {
		t.Fatalf("missing credential: %v", err)
	}
}

// kpFor makes a signed key package for id, as a node would present it.
func kpFor(t testing.TB, id *did.Identity) []byte {
	t.Helper()
	kp, err := pubsub.NewKeyPackage(id, pubsub.SuiteX25519, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return kp
}
