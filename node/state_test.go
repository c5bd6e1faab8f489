package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ztmesh/ztmesh/crdt"
	"github.com/ztmesh/ztmesh/internal/wire"
	"github.com/ztmesh/ztmesh/pubsub"
)

func openTestState(t *testing.T, n *testNode, zone, name string) *crdt.Replica {
	t.Helper()
	r, err := n.State(zone, name, crdt.LWWMap)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// waitStateMesh waits until every node sees every other subscribed to the
// state's channel: before that a delta can go to nobody (anti-entropy would
// repair it, but only every 30 s).
func waitStateMesh(t *testing.T, zone, name string, nodes ...*testNode) {
	t.Helper()
	topic, _ := pubsub.ZoneTopic(DefaultMesh, zone, stateKey{zone, name}.channel())
	for _, n := range nodes {
		eventually(t, 5*time.Second, "state channel subscriptions", func() bool {
			return len(n.Mesh().PubSub().ListPeers(topic.String())) >= len(nodes)-1
		})
	}
	time.Sleep(1200 * time.Millisecond) // a GossipSub heartbeat grafts the mesh
}

// ownKey is a key the default policy lets n write: under its own DID.
func ownKey(n *testNode, k string) string { return n.DID().String() + "/" + k }

func converged(rs ...*crdt.Replica) bool {
	first := rs[0].Snapshot()
	for _, r := range rs[1:] {
		s := r.Snapshot()
		if len(s) != len(first) {
			return false
		}
		for k, v := range first {
			if string(s[k]) != string(v) {
				return false
			}
		}
	}
	return true
}

func TestStateConvergesPartitionsAndRestarts(t *testing.T) {
	m := newMesh(t)
	a, b, c := m.startIn([]string{"north"}), m.startIn([]string{"north"}), m.startIn([]string{"north"})
	verifiedMesh(t, a, b, c)
	ra, rb, rc := openTestState(t, a, "north", "hazards"), openTestState(t, b, "north", "hazards"), openTestState(t, c, "north", "hazards")
	waitStateMesh(t, "north", "hazards", a, b, c)
	ctx := context.Background()

	// Writes on each node converge everywhere.
	for i, x := range []struct {
		n *testNode
		r *crdt.Replica
	}{{a, ra}, {b, rb}, {c, rc}} {
		if _, err := x.r.Put(ctx, ownKey(x.n, "h"), []byte(fmt.Sprint("hazard ", i))); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "three replicas converge", func() bool {
		return converged(ra, rb, rc) && len(ra.Snapshot()) == 3
	})

	// Partition c away (no bootstrap here, so nothing reconnects it): both
	// sides keep writing.
	c.host.Network().ClosePeer(a.host.ID())
	c.host.Network().ClosePeer(b.host.ID())
	eventually(t, 5*time.Second, "c partitioned", func() bool { return !connected(a, c.host.ID()) && !connected(b, c.host.ID()) })
	rc.Put(ctx, ownKey(c, "during"), []byte("written alone"))
	ra.Put(ctx, ownKey(a, "during"), []byte("written by a"))
	rb.Delete(ctx, ownKey(b, "h"))
	time.Sleep(500 * time.Millisecond)
	if _, ok := ra.Get(ownKey(c, "during")); ok {
		t.Fatal("a saw c's write across the partition")
	}

	// Heal: the handshake triggers anti-entropy and all three converge.
	connect(t, c, a)
	connect(t, c, b)
	eventually(t, 10*time.Second, "replicas converge after the partition heals", func() bool {
		_, bDeleted := rc.Get(ownKey(b, "h"))
		_, cWrite := ra.Get(ownKey(c, "during"))
		return converged(ra, rb, rc) && cWrite && !bDeleted
	})

	// Restart c: it keeps what it acknowledged and catches up on what it missed.
	rc.Put(ctx, ownKey(c, "before-restart"), []byte("acknowledged"))
	c2 := m.restart(c)
	ra.Put(ctx, ownKey(a, "while-c-down"), []byte("missed"))
	rc2 := openTestState(t, c2, "north", "hazards")
	if v, ok := rc2.Get(ownKey(c, "before-restart")); !ok || string(v) != "acknowledged" {
		t.Fatalf("acknowledged write lost over a restart: %q %v", v, ok)
	}
	connect(t, c2, a)
	connect(t, c2, b)
	defer func() {
		if t.Failed() {
			c2.logs.mu.Lock()
			for _, l := range c2.logs.lines {
				if et, _ := l["event_type"].(string); et != "" && et != "policy_decision" {
					t.Logf("c2: %v %v %v", l["event_type"], l["reason"], l["detail"])
				}
			}
			c2.logs.mu.Unlock()
			t.Logf("ra %v\nrc2 %v", keys(ra.Snapshot()), keys(rc2.Snapshot()))
		}
	}()
	eventually(t, 10*time.Second, "restarted replica catches up", func() bool {
		_, ok := rc2.Get(ownKey(a, "while-c-down"))
		return ok && converged(ra, rb, rc2)
	})
}

func TestStateWritesAuthorizedEverywhere(t *testing.T) {
	m := newMesh(t)
	a, b, d := m.startIn([]string{"north"}), m.startIn([]string{"north"}), m.startIn([]string{"north"})
	verifiedMesh(t, a, b, d)
	ra, rb, rd := openTestState(t, a, "north", "tasks"), openTestState(t, b, "north", "tasks"), openTestState(t, d, "north", "tasks")
	waitStateMesh(t, "north", "tasks", a, b, d)
	ctx := context.Background()

	// The default policy refuses d a key under a's DID, at d itself...
	if _, err := rd.Put(ctx, ownKey(a, "task"), []byte("hijacked")); err == nil {
		t.Fatal("d wrote a key under a's DID")
	}
	// ...and, when d's own policy is loosened, at every node that merges it.
	if err := d.Policy().LoadModules(map[string]string{"open.rego": "package ztmesh.authz\n\nallow := true\n"}, 1, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := rd.Put(ctx, ownKey(a, "task"), []byte("hijacked")); err != nil {
		t.Fatal(err)
	}
	if _, err := rd.Put(ctx, ownKey(d, "task"), []byte("legit")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "d's legitimate write arrives", func() bool {
		_, okA := ra.Get(ownKey(d, "task"))
		_, okB := rb.Get(ownKey(d, "task"))
		return okA && okB
	})
	// Anti-entropy (d answering with its whole state) must not let it in either.
	d.states.peerVerified(a.host.ID())
	time.Sleep(time.Second)
	for _, r := range []*crdt.Replica{ra, rb} {
		if v, ok := r.Get(ownKey(a, "task")); ok {
			t.Fatalf("unauthorized write merged: %q", v)
		}
	}
	if a.logs.find(map[string]string{"event_type": "state_delta_refused"}) == nil {
		t.Fatal("no state_delta_refused log at a")
	}
}

func TestStateOutsideZone(t *testing.T) {
	m := newMesh(t)
	a, e := m.startIn([]string{"north"}), m.startIn([]string{"south"})
	verifiedMesh(t, a, e)
	ra := openTestState(t, a, "north", "hazards")
	ra.Put(context.Background(), ownKey(a, "h"), []byte("secret"))
	if _, err := e.State("north", "hazards", crdt.LWWMap); !errors.Is(err, pubsub.ErrDenied) {
		t.Fatalf("non-member opened the zone's state: %v", err)
	}
	// Asking a for the state over anti-entropy is refused too.
	st, err := e.host.NewStream(context.Background(), a.host.ID(), StateProtocol)
	if err != nil {
		t.Fatal(err)
	}
	writeReq(t, st, "north", "hazards")
	eventually(t, 5*time.Second, "a refuses e's state request", func() bool {
		return a.logs.find(map[string]string{"event_type": "state_request_refused"}) != nil
	})
}

func writeReq(t *testing.T, st interface {
	Write([]byte) (int, error)
	Close() error
}, zone, name string) {
	t.Helper()
	if err := wire.WriteJSON(st, stateRequest{V: 1, Zone: zone, Name: name, Kind: string(crdt.LWWMap), Digest: []byte{}}, maxStateRequest); err != nil {
		t.Fatal(err)
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k[len(k)-12:])
	}
	return out
}

// TestStateWritesNeedEffectiveTrust: a node judges another's state writes
// by its effective trust in the writer, not by the credential's score. b's
// credential says 0.9, but a has rejected enough of its messages to trust
// it less than the policy's 0.5, then to quarantine it: a refuses b's
// writes, even when they reach it through c, which still trusts b.
func TestStateWritesNeedEffectiveTrust(t *testing.T) {
	m := newMesh(t)
	a, b, c := m.startIn([]string{"north"}), m.startIn([]string{"north"}), m.startIn([]string{"north"})
	verifiedMesh(t, a, b, c)
	ra, rb, rc := openTestState(t, a, "north", "hazards"), openTestState(t, b, "north", "hazards"), openTestState(t, c, "north", "hazards")
	waitStateMesh(t, "north", "hazards", a, b, c)
	ctx := context.Background()
	if _, err := rb.Put(ctx, ownKey(b, "trusted"), []byte("ok")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "b's write while trusted reaches a", func() bool {
		_, ok := ra.Get(ownKey(b, "trusted"))
		return ok
	})

	topic, _ := pubsub.ZoneTopic(DefaultMesh, "north", stateKey{"north", "hazards"}.channel())
	authorize := a.states.authorizer(topic)
	a.states.mu.Lock()
	oa := a.states.open[stateKey{"north", "hazards"}]
	a.states.mu.Unlock()
	for _, tc := range []struct {
		name     string
		rejected int    // more of b's messages a rejects
		refusal  string // why a refuses b's write
	}{
		{"trust below the policy's minimum", 6, "trust score"}, // 0.9 × e^-0.6 = 0.49
		{"quarantined", 6, "quarantined"},                      // 0.9 × e^-1.2 = 0.27
	} {
		t.Run(tc.name, func(t *testing.T) {
			for range tc.rejected {
				a.onReject(b.host.ID(), "test")
			}
			if err := authorize(b.DID(), "north.hazards", ownKey(b, "x")); err == nil || !strings.Contains(err.Error(), tc.refusal) {
				t.Fatalf("a authorizes b's write: %v", err)
			}
			if err := authorize(c.DID(), "north.hazards", ownKey(c, "x")); err != nil {
				t.Fatalf("a refuses c's write: %v", err)
			}
			// b's write reaches c, which trusts b; a pulls it from c by
			// anti-entropy and refuses that entry.
			key := ownKey(b, tc.name)
			if _, err := rb.Put(ctx, key, []byte("distrusted")); err != nil {
				t.Fatal(err)
			}
			eventually(t, 10*time.Second, "c merges b's write", func() bool { _, ok := rc.Get(key); return ok })
			a.states.reconcile(ctx, c.host.ID(), oa)
			if _, ok := ra.Get(key); ok {
				t.Fatal("a merged the write of a writer it does not trust enough")
			}
			if a.logs.find(map[string]string{"event_type": "state_entry_refused", "reason": tc.refusal}) == nil {
				t.Fatalf("no state_entry_refused log at a naming %q", tc.refusal)
			}
		})
	}
}
