package node

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"log/slog"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ztmesh/ztmesh/did"
)

// mesh is a test fleet: one issuer and a helper to start real nodes on
// loopback with credentials from it.
type mesh struct {
	t       testing.TB
	issuer  *did.Identity
	clock   *clock
	seenTTL time.Duration
	options func(*Options) // adjusts the Options of the next nodes started
}

// clock is a settable clock shared by a test's nodes. Zero offset is real time.
type clock struct{ offset atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) advance(d time.Duration) { c.offset.Add(int64(d)) }

func newMesh(t testing.TB) *mesh {
	t.Helper()
	iss, err := did.GenerateIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &mesh{t: t, issuer: iss, clock: &clock{}}
}

func claims(zones ...string) did.Claims {
	return did.Claims{Role: "vehicle", TrustScore: 0.9, Zones: zones, SoftwareVersion: "1.4.0"}
}

// credFor issues a credential for zone z1 to id from issuer.
func (m *mesh) credFor(issuer, id *did.Identity, opts did.IssueOptions) string {
	m.t.Helper()
	return m.credZones(issuer, id, opts, "z1")
}

func (m *mesh) credZones(issuer, id *did.Identity, opts did.IssueOptions, zones ...string) string {
	m.t.Helper()
	tok, err := did.Issue(issuer, id.DID(), claims(zones...), opts)
	if err != nil {
		m.t.Fatal(err)
	}
	return tok
}

// testNode is a started node with its captured logs.
type testNode struct {
	*Node
	id   *did.Identity
	dir  string
	logs *logBuffer
}

type nodeOpt func(*Config)

// start creates and starts a node with a fresh identity and a credential
// from the mesh's issuer, listening on 127.0.0.1.
func (m *mesh) start(opts ...nodeOpt) *testNode {
	m.t.Helper()
	id, err := did.GenerateIdentity(rand.Reader)
	if err != nil {
		m.t.Fatal(err)
	}
	return m.startWith(id, m.credFor(m.issuer, id, did.IssueOptions{Now: m.clock.now()}), opts...)
}

// startIn starts a node whose credential lists zones.
func (m *mesh) startIn(zones []string, opts ...nodeOpt) *testNode {
	m.t.Helper()
	id, err := did.GenerateIdentity(rand.Reader)
	if err != nil {
		m.t.Fatal(err)
	}
	return m.startWith(id, m.credZones(m.issuer, id, did.IssueOptions{Now: m.clock.now()}, zones...), opts...)
}

func (m *mesh) startWith(id *did.Identity, cred string, opts ...nodeOpt) *testNode {
	m.t.Helper()
	dir := m.t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, did.CredentialFile), []byte(cred), 0o600); err != nil {
		m.t.Fatal(err)
	}
	return m.startIn2(id, dir, opts...)
}

// restart closes a node and starts a new one on the same data dir and identity.
func (m *mesh) restart(n *testNode, opts ...nodeOpt) *testNode {
	m.t.Helper()
	if err := n.Close(); err != nil {
		m.t.Fatal(err)
	}
	return m.startIn2(n.id, n.dir, opts...)
}

func (m *mesh) startIn2(id *did.Identity, dir string, opts ...nodeOpt) *testNode {
	m.t.Helper()
	off := false
	cfg := Config{
		Dir:          dir,
		Listen:       []string{"/ip4/127.0.0.1/tcp/0"},
		TrustIssuers: []string{m.issuer.DID().String()},
		MDNS:         &off,
		AuthGrace:    Duration(2 * time.Second),
	}
	for _, o := range opts {
		o(&cfg)
	}
	logs := &logBuffer{}
	o := Options{Identity: id, Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), Now: m.clock.now, Test: TestHooks{SeenTTL: m.seenTTL}}
	if m.options != nil {
		m.options(&o)
	}
	n, err := New(cfg, o)
	if err != nil {
		m.t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		m.t.Fatal(err)
	}
	m.t.Cleanup(func() { n.Close() })
	return &testNode{Node: n, id: id, dir: dir, logs: logs}
}

// connect dials b from a.
func connect(t testing.TB, a, b *testNode) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.host.Connect(ctx, peer.AddrInfo{ID: b.host.ID(), Addrs: b.host.Addrs()}); err != nil {
		t.Fatal(err)
	}
}

// eventually polls cond every 10 ms until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func verifiedBy(a *testNode, p peer.ID) bool {
	_, ok := a.roster.Connected(p)
	return ok
}

func connected(a *testNode, p peer.ID) bool {
	return a.host.Network().Connectedness(p) == network.Connected
}

// logBuffer collects JSON log lines for assertions.
type logBuffer struct {
	mu    sync.Mutex
	lines []map[string]any
}

func (l *logBuffer) Write(p []byte) (int, error) {
	var m map[string]any
	if err := json.Unmarshal(p, &m); err == nil {
		l.mu.Lock()
		l.lines = append(l.lines, m)
		l.mu.Unlock()
	}
	return len(p), nil
}

// find returns the first log line whose fields contain all of kv.
func (l *logBuffer) find(kv map[string]string) map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
outer:
	for _, m := range l.lines {
		for k, v := range kv {
			s, _ := m[k].(string)
			if !strings.Contains(s, v) {
				continue outer
			}
		}
		return m
	}
	return nil
}
