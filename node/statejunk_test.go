package node

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/ztmesh/ztmesh/crdt"
	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/internal/wire"
)

// liarSigner writes entries under one member's DID and signs them with
// another key: each entry's signature fails, at a verification's cost.
type liarSigner struct {
	claimed did.DID
	key     *did.Identity
}

func (l liarSigner) DID() did.DID                           { return l.claimed }
func (l liarSigner) Sign(context string, msg []byte) []byte { return l.key.Sign(context, msg) }

// countLogs counts the log lines whose fields contain all of kv.
func (l *logBuffer) count(kv map[string]string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
outer:
	for _, m := range l.lines {
		for k, v := range kv {
			if s, _ := m[k].(string); s != v {
				continue outer
			}
		}
		n++
	}
	return n
}

// TestAntiEntropyJunkSignatures: a verified member answers reconcile with
// entries whose signatures are junk (issue 15, item 4: on main each one
// was checked and logged, 409,600 lines a round). The honest node refuses
// the stream at the first, logs one line, counts it against the member,
// and its state is untouched.
func TestAntiEntropyJunkSignatures(t *testing.T) {
	m := newMesh(t)
	a, b := m.startIn([]string{"north"}), m.startIn([]string{"north"})
	verifiedMesh(t, a, b)

	// b's junk replica: real entries under b's DID, signed with a stranger's key.
	const junkEntries = 300
	stranger, err := did.GenerateIdentity(nil)
	if err != nil {
		t.Fatal(err)
	}
	store, err := crdt.OpenStore(filepath.Join(t.TempDir(), "junk.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	allow := func(did.DID, string, string) error { return nil }
	junk, err := crdt.NewReplica("north.hazards", crdt.LWWMap, liarSigner{b.DID(), stranger}, crdt.NewClock(time.Now, 0), store, allow)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { junk.Close() })
	for i := range junkEntries {
		if _, err := junk.Put(context.Background(), ownKey(b, fmt.Sprint("junk", i)), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	var served atomic.Int64
	b.host.SetStreamHandler(StateProtocol, func(st network.Stream) {
		defer st.Close()
		var req stateRequest
		if err := wire.ReadJSON(st, &req, maxStateRequest); err != nil {
			st.Reset()
			return
		}
		served.Add(1)
		_ = junk.Missing(req.Digest, 0, func(c []byte) error { return wire.WriteFrame(st, c, crdt.MaxChunkSize) })
	})

	mem, ok := a.Member(b.host.ID())
	if !ok {
		t.Fatal("b is not a member of a")
	}
	before := a.trust.Standing(mem.Credential, a.now())
	ra := openTestState(t, a, "north", "hazards") // reconciles with b at once
	peer := b.host.ID().String()
	refused := map[string]string{"event_type": "state_chunk_refused", "peer": peer}
	skipped := map[string]string{"event_type": "state_entry_refused", "peer": peer}
	eventually(t, 20*time.Second, "a's reconcile with b ends", func() bool {
		return served.Load() > 0 && (a.logs.count(refused) > 0 || a.logs.count(skipped) >= junkEntries)
	})
	lines := a.logs.count(refused) + a.logs.count(skipped)
	after := a.trust.Standing(mem.Credential, a.now())
	t.Logf("%d junk entries served: %d log lines, rejected count %.2f -> %.2f, trust %.3f -> %.3f",
		junkEntries, lines, before.Rejected, after.Rejected, before.Trust, after.Trust)
	if lines != 1 {
		t.Errorf("%d log lines about b's junk, want 1", lines)
	}
	if a.logs.count(refused) != 1 {
		t.Errorf("the stream was not refused at the first bad signature")
	}
	if after.Rejected <= before.Rejected {
		t.Errorf("b's junk not counted against it: rejected %.2f -> %.2f", before.Rejected, after.Rejected)
	}
	if s := ra.Snapshot(); len(s) != 0 {
		t.Errorf("a's state took %d junk entries", len(s))
	}
}
