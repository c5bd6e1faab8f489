package node

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ztmesh/ztmesh/attest"
	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/node/api"
	"github.com/ztmesh/ztmesh/policy"
)

// meshBundle signs a bundle for the test mesh's default mesh, valid for an
// hour of the mesh's clock; allow is the Rego rule body's value.
func (m *mesh) meshBundle(version uint64, allow string, scope policy.Scope) []byte {
	m.t.Helper()
	if scope == (policy.Scope{}) {
		scope = policy.Scope{Mesh: DefaultMesh, Expires: m.clock.now().Add(time.Hour)}
	}
	tok, err := policy.SignBundle(m.issuer, map[string]string{"p.rego": "package ztmesh.authz\n\nallow := " + allow + "\n"},
		version, scope, m.clock.now())
	if err != nil {
		m.t.Fatal(err)
	}
	return tok
}

// TestRestartKeepsControlState: a node restarted after it accepted a
// revocation list and a policy bundle from the mesh still refuses the
// revoked node when that node is the first to connect, still runs the
// bundle, and refuses the superseded bundle as a rollback.
func TestRestartKeepsControlState(t *testing.T) {
	m := newMesh(t)
	b, c := m.startIn([]string{"north"}), m.startIn([]string{"north"})
	list, err := did.SignRevocationList(m.issuer, &did.RevocationList{Version: 1, Subjects: []did.DID{c.DID()}}, m.clock.now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.control.ApplyRevocations([]byte(list)); err != nil {
		t.Fatal(err)
	}
	v1 := m.meshBundle(1, "true", policy.Scope{})
	if _, err := b.control.ApplyPolicyBundle(v1); err != nil {
		t.Fatal(err)
	}
	if _, err := b.control.ApplyPolicyBundle(m.meshBundle(2, "false", policy.Scope{})); err != nil {
		t.Fatal(err)
	}

	b = m.restart(b)
	if v := b.Policy().Version(); v != 2 {
		t.Fatalf("after restart: policy version %d (%s), want bundle version 2", v, b.Policy().Source())
	}
	// c, the revoked node, connects first.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.host.Connect(ctx, peer.AddrInfo{ID: b.host.ID(), Addrs: b.host.Addrs()})
	eventually(t, 10*time.Second, "b refuses revoked c", func() bool {
		return b.logs.find(map[string]string{"event_type": "connection_refused", "reason": "revoked"}) != nil ||
			b.logs.find(map[string]string{"event_type": "peer_dropped", "reason": "revoked"}) != nil
	})
	if verifiedBy(b, c.host.ID()) {
		t.Fatal("restarted b verified revoked c")
	}
	if _, err := b.control.ApplyPolicyBundle(v1); !errors.Is(err, policy.ErrRollback) {
		t.Fatalf("superseded bundle v1 after restart: err %v, want a rollback", err)
	}
	if v := b.Policy().Version(); v != 2 {
		t.Fatalf("policy version %d after the rollback attempt", v)
	}
}

// TestExpiredBundleKeepsItsFloor: a persisted bundle that has expired by
// the restart is not put in force, but its version is still the floor.
func TestExpiredBundleKeepsItsFloor(t *testing.T) {
	m := newMesh(t)
	b := m.startIn([]string{"north"})
	v5 := m.meshBundle(5, "false", policy.Scope{})
	if _, err := b.control.ApplyPolicyBundle(v5); err != nil {
		t.Fatal(err)
	}
	m.clock.advance(2 * time.Hour)
	b = m.restart(b)
	if v := b.Policy().Version(); v != 0 {
		t.Fatalf("expired bundle put in force after restart: version %d", v)
	}
	if b.logs.find(map[string]string{"event_type": "policy_refused", "reason": "expired"}) == nil {
		t.Error("no log saying why the persisted bundle is not in force")
	}
	if _, err := b.control.ApplyPolicyBundle(m.meshBundle(4, "true", policy.Scope{})); !errors.Is(err, policy.ErrRollback) {
		t.Fatalf("bundle below the expired one's version: err %v, want a rollback", err)
	}
	if _, err := b.control.ApplyPolicyBundle(m.meshBundle(6, "false", policy.Scope{})); err != nil {
		t.Fatalf("newer bundle: %v", err)
	}
}

// TestMeshBundleRefusals: bundles from the mesh for another mesh, expired,
// or in the first format (no mesh, no expiry) are refused and change
// nothing; a second bundle under a version already held is equivocation,
// logged at ERROR with both digests and counted once.
func TestMeshBundleRefusals(t *testing.T) {
	m := newMesh(t)
	b := m.startIn([]string{"north"})
	now := m.clock.now()
	legacy, err := policy.SignBundle(m.issuer, map[string]string{"p.rego": "package ztmesh.authz\n\nallow := true\n"}, 9, policy.Scope{}, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		bundle []byte
		want   error
		reason string
	}{
		{"another mesh", m.meshBundle(9, "true", policy.Scope{Mesh: "other", Expires: now.Add(time.Hour)}), policy.ErrOtherMesh, "other_mesh"},
		{"expired", m.meshBundle(9, "true", policy.Scope{Mesh: DefaultMesh, Expires: now.Add(-time.Second)}), policy.ErrExpired, "expired"},
		{"first format", legacy, policy.ErrOtherMesh, "other_mesh"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := b.control.ApplyPolicyBundle(tc.bundle); !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if b.logs.find(map[string]string{"event_type": "policy_refused", "reason": tc.reason}) == nil {
				t.Errorf("no policy_refused log with reason %s", tc.reason)
			}
			if v := b.Policy().Version(); v != 0 {
				t.Fatalf("policy version %d after a refused bundle", v)
			}
		})
	}

	held := m.meshBundle(3, "false", policy.Scope{})
	if _, err := b.control.ApplyPolicyBundle(held); err != nil {
		t.Fatal(err)
	}
	twin := m.meshBundle(3, "true", policy.Scope{})
	for range 3 {
		if _, err := b.control.ApplyPolicyBundle(twin); !errors.Is(err, errEquivocation) {
			t.Fatalf("second bundle with version 3: err %v, want equivocation", err)
		}
	}
	line := b.logs.find(map[string]string{"event_type": "control_equivocation", "held_sha256": digest(held), "refused_sha256": digest(twin)})
	if line == nil || line["level"] != "ERROR" {
		t.Fatalf("equivocation not logged at ERROR with both digests: %v", line)
	}
	if got := counterValue(t, b, "ztmesh_control_equivocations_total", "policy_bundle"); got != 1 {
		t.Fatalf("ztmesh_control_equivocations_total{kind=policy_bundle} = %v, want 1 (one distinct pair)", got)
	}
}

// TestCorruptControlStateStopsNode: a control state file that does not
// verify stops New with an error naming the file and the recovery.
func TestCorruptControlStateStopsNode(t *testing.T) {
	m := newMesh(t)
	b := m.startIn([]string{"north"})
	if _, err := b.control.ApplyPolicyBundle(m.meshBundle(2, "false", policy.Scope{})); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(b.dir, controlDirName, controlBundleFile)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 1
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	off := false
	_, err = New(Config{Dir: b.dir, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, TrustIssuers: []string{m.issuer.DID().String()}, MDNS: &off},
		Options{Identity: b.id, Logger: slog.New(slog.DiscardHandler), Now: m.clock.now})
	if !errors.Is(err, errControlState) {
		t.Fatalf("New with a corrupt bundle file: err %v, want errControlState", err)
	}
	for _, want := range []string{file, "ztmesh control reset --dir"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// counterValue reads a counter with one label value from a node's registry.
func counterValue(t *testing.T, n *testNode, name, label string) float64 {
	t.Helper()
	fams, err := n.metrics.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == label {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestRefusedNodeKnowsAndBacksOff: a node whose credential its bootstrap
// peer refuses (here: revoked) records what the peer said and when, logs
// it at WARN, and reconnects with a growing backoff instead of once a
// second.
func TestRefusedNodeKnowsAndBacksOff(t *testing.T) {
	m := newMesh(t)
	b := m.startIn([]string{"north"})
	id, err := did.GenerateIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cred := m.credZones(m.issuer, id, did.IssueOptions{Now: m.clock.now(), ID: "urn:uuid:refused-node"}, "north")
	list, err := did.SignRevocationList(m.issuer, &did.RevocationList{Version: 1, Credentials: []string{"urn:uuid:refused-node"}}, m.clock.now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.control.ApplyRevocations([]byte(list)); err != nil {
		t.Fatal(err)
	}
	addr := b.host.Addrs()[0].String() + "/p2p/" + b.host.ID().String()
	c := m.startWith(id, cred, func(cfg *Config) { cfg.Bootstrap = []string{addr} })

	var waits []time.Duration
	eventually(t, 30*time.Second, "two backoffs after refusals", func() bool {
		waits = waits[:0]
		c.logs.mu.Lock()
		defer c.logs.mu.Unlock()
		for _, l := range c.logs.lines {
			if l["event_type"] == "bootstrap_refused" && l["reason"] == "revoked" && l["level"] == "WARN" {
				d, err := time.ParseDuration(l["retry_in"].(string))
				if err != nil {
					t.Fatal(err)
				}
				waits = append(waits, d)
			}
		}
		return len(waits) >= 2
	})
	if waits[1] <= waits[0] {
		t.Fatalf("backoff does not grow after refusals: %v", waits)
	}
	r, ok := c.handshakes.refused(b.host.ID())
	if !ok || r.reason != "revoked" || r.at.IsZero() {
		t.Fatalf("refusal on record: %+v %v", r, ok)
	}
	rec := httptestStatus(t, c)
	if len(rec.RefusedBy) != 1 || rec.RefusedBy[0].Reason != "revoked" || rec.RefusedBy[0].Peer != b.host.ID().String() {
		t.Fatalf("status refused_by: %+v", rec.RefusedBy)
	}
}

// httptestStatus calls the node's status handler.
func httptestStatus(t *testing.T, n *testNode) api.Status {
	t.Helper()
	w := httptest.NewRecorder()
	(&apiServer{n: n.Node}).status(w, httptest.NewRequest("GET", "/v1/status", nil))
	var st api.Status
	if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestMeshReferenceRefusals: reference values from the mesh for another
// mesh, expired, or of the first format are refused; two different values
// under one version are equivocation; values that expired by a restart
// keep their version as the floor.
func TestMeshReferenceRefusals(t *testing.T) {
	m := newMesh(t)
	b := m.startIn([]string{"north"})
	now := m.clock.now()
	sign := func(version uint64, binary, mesh string, expires time.Time) []byte {
		tok, err := attest.SignReference(m.issuer, &attest.Reference{Version: version, AllowedBinaries: []string{binary}, Mesh: mesh, Expires: expires}, now)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	bin := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name string
		ref  []byte
		want error
	}{
		{"another mesh", sign(9, bin, "other", now.Add(time.Hour)), attest.ErrOtherMesh},
		{"expired", sign(9, bin, DefaultMesh, now.Add(-time.Second)), attest.ErrExpired},
		{"first format", sign(9, bin, "", time.Time{}), attest.ErrOtherMesh},
	} {
		if _, err := b.control.ApplyReference(tc.ref); !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.want)
		}
	}
	if b.references.Current() != nil {
		t.Fatal("refused reference values put in force")
	}
	held := sign(2, bin, DefaultMesh, now.Add(time.Hour))
	if _, err := b.control.ApplyReference(held); err != nil {
		t.Fatal(err)
	}
	if _, err := b.control.ApplyReference(sign(2, strings.Repeat("cd", 32), DefaultMesh, now.Add(time.Hour))); !errors.Is(err, errEquivocation) {
		t.Fatalf("second reference values with version 2: err %v, want equivocation", err)
	}
	if got := counterValue(t, b, "ztmesh_control_equivocations_total", "reference"); got != 1 {
		t.Fatalf("equivocations{kind=reference} = %v", got)
	}
	m.clock.advance(2 * time.Hour)
	b = m.restart(b)
	if b.references.Current() != nil {
		t.Fatal("expired reference values put in force after restart")
	}
	if _, err := b.control.ApplyReference(sign(1, bin, DefaultMesh, m.clock.now().Add(time.Hour))); !errors.Is(err, attest.ErrRollback) {
		t.Fatalf("reference values below the expired ones' version: err %v, want a rollback", err)
	}
}

// TestRevocationListMesh: a list signed for another mesh is refused; a list
// of the first format (no mesh) still applies; a second list under the
// version held from its issuer is equivocation.
func TestRevocationListMesh(t *testing.T) {
	m := newMesh(t)
	b := m.startIn([]string{"north"})
	victim, err := did.GenerateIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(version uint64, mesh string, subjects ...did.DID) []byte {
		tok, err := did.SignRevocationList(m.issuer, &did.RevocationList{Version: version, Subjects: subjects, Mesh: mesh}, m.clock.now())
		if err != nil {
			t.Fatal(err)
		}
		return []byte(tok)
	}
	if _, err := b.control.ApplyRevocations(sign(1, "other", victim.DID())); !errors.Is(err, errOtherMesh) {
		t.Fatalf("list for another mesh: err %v", err)
	}
	if b.verifier.Revocations().SubjectRevoked(victim.DID()) {
		t.Fatal("list for another mesh applied")
	}
	if _, err := b.control.ApplyRevocations(sign(1, "", victim.DID())); err != nil {
		t.Fatalf("first-format list: %v", err)
	}
	if !b.verifier.Revocations().SubjectRevoked(victim.DID()) {
		t.Fatal("first-format list not applied")
	}
	if _, err := b.control.ApplyRevocations(sign(1, DefaultMesh)); !errors.Is(err, errEquivocation) {
		t.Fatalf("second list with version 1: err %v, want equivocation", err)
	}
	if got := counterValue(t, b, "ztmesh_control_equivocations_total", "revocations"); got != 1 {
		t.Fatalf("equivocations{kind=revocations} = %v", got)
	}
	if _, err := b.control.ApplyRevocations(sign(2, DefaultMesh, victim.DID())); err != nil {
		t.Fatalf("list for this mesh: %v", err)
	}
}
