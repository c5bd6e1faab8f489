package node

import (
	"context"
	"crypto/rand"
	"path/filepath"
	"testing"
	"time"

	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/internal/fsutil"
)

// longKeys keeps sender keys from rotating by age while a test moves the
// clock, so that every rotation it sees has another cause.
func longKeys(c *Config) { c.KeyRotation = Duration(48 * time.Hour) }

// shortLived starts a node in z1 whose credential lasts one hour.
func (m *mesh) shortLived(opts ...nodeOpt) *testNode {
	m.t.Helper()
	id, err := did.GenerateIdentity(rand.Reader)
	if err != nil {
		m.t.Fatal(err)
	}
	return m.startWith(id, m.credZones(m.issuer, id, did.IssueOptions{Now: m.clock.now(), TTL: time.Hour}, "z1"), opts...)
}

// holdSenderKey makes n hold a sender key for z1, which a rotation replaces.
func holdSenderKey(t *testing.T, n *testNode) {
	t.Helper()
	if _, err := n.Mesh().Publish(context.Background(), "z1", "maps", []byte("before")); err != nil {
		t.Fatal(err)
	}
}

// viaDirectory connects a-b and b-c (b first learns c), and waits until a
// knows c from its announcement only: a and c are never connected.
func viaDirectory(t *testing.T, a, b, c *testNode) {
	t.Helper()
	connect(t, c, b)
	eventually(t, 5*time.Second, "b verifies c", func() bool { return verifiedBy(b, c.host.ID()) })
	connect(t, a, b)
	eventually(t, 10*time.Second, "a knows c from its announcement", func() bool {
		_, _, ok := a.roster.Member(c.host.ID())
		return ok
	})
	if connected(a, c.host.ID()) {
		t.Fatal("a and c connected; the test needs c known to a only from the directory")
	}
}

// rotatedFor waits until n logs a sender key rotation for reason.
func rotatedFor(t *testing.T, n *testNode, reason string) {
	t.Helper()
	eventually(t, 10*time.Second, "sender keys rotated for "+reason, func() bool {
		return n.logs.find(map[string]string{"event_type": "keys_rotated", "reason": reason}) != nil
	})
}

// TestExpiredMemberRotatesKeys: a member whose credential expires may have
// pulled this node's sender keys while it was a member; the node replaces
// them, whether the member was connected or known from its announcement
// only.
func TestExpiredMemberRotatesKeys(t *testing.T) {
	t.Run("connected", func(t *testing.T) {
		m := newMesh(t)
		a, b := m.start(longKeys), m.shortLived(longKeys)
		connect(t, b, a)
		eventually(t, 5*time.Second, "a verifies b", func() bool { return verifiedBy(a, b.host.ID()) })
		holdSenderKey(t, a)
		m.clock.advance(time.Hour + did.DefaultClockSkew + time.Second)
		eventually(t, 5*time.Second, "expired peer dropped", func() bool { return !connected(a, b.host.ID()) })
		rotatedFor(t, a, "credential expired")
	})
	t.Run("directory only", func(t *testing.T) {
		m := newMesh(t)
		a, b, c := m.start(longKeys), m.start(longKeys), m.shortLived(longKeys)
		viaDirectory(t, a, b, c)
		holdSenderKey(t, a)
		m.clock.advance(time.Hour + did.DefaultClockSkew + time.Second)
		rotatedFor(t, a, "credential expired")
		if _, _, ok := a.roster.Member(c.host.ID()); ok {
			t.Fatal("expired member still known")
		}
	})
}

// TestRevokingDirectoryMemberRotatesKeys: a member revoked while this node
// knows it only from its announcement (not connected) may hold this node's
// sender keys all the same; the node replaces them.
func TestRevokingDirectoryMemberRotatesKeys(t *testing.T) {
	m := newMesh(t)
	rev := filepath.Join(t.TempDir(), "revoked.jwt")
	writeList := func(version uint64, revoked ...did.DID) {
		t.Helper()
		list, err := did.SignRevocationList(m.issuer, &did.RevocationList{Version: version, Subjects: revoked}, m.clock.now())
		if err != nil {
			t.Fatal(err)
		}
		if err := fsutil.WriteFileAtomic(rev, []byte(list), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeList(1)
	a, b, c := m.start(longKeys, func(c *Config) { c.Revocations = rev }), m.start(longKeys), m.start(longKeys)
	viaDirectory(t, a, b, c)
	holdSenderKey(t, a)
	writeList(2, c.DID())
	rotatedFor(t, a, "revocation")
	if _, _, ok := a.roster.Member(c.host.ID()); ok {
		t.Fatal("revoked member still known")
	}
}
