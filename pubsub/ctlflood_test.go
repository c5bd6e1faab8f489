package pubsub

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestControlFloodDropped: member F publishes 100 evidence messages of
// 28 KiB as fast as they are judged (issue 15, item 5: one member sent
// 3,986 in 20 s, all verified and relayed by every node). Its neighbour R
// applies no more than F's allowance, counts the excess against F, and
// relays no more than that to V; nobody blames R; an honest member's
// evidence published meanwhile still arrives.
//
//	F — R — V
//	    |
//	    H
func TestControlFloodDropped(t *testing.T) {
	n := newNet(t, 0)
	zone := []string{"north"}
	f, _ := n.addWatched(zone, 0)
	r, vr := n.addWatched(zone, 0)
	v, vv := n.addWatched(zone, 0)
	h, _ := n.addWatched(zone, 0)
	n.knowAll()
	n.connectOnly(f, r)
	n.connectOnly(r, v)
	n.connectOnly(h, r)
	waitGrafted(t, r, f, v, h)
	waitGrafted(t, v, r)
	waitGrafted(t, f, r)

	judged := func(x *tnode, origin peer.ID) int {
		st := x.mesh.Stats().Rejected()
		return x.control.evidenceFrom(origin) + int(st[ReasonControlRateLimited])
	}
	const flood = 100
	token := make([]byte, 28<<10)
	for i := range flood {
		_, _ = rand.Read(token[8:])
		binary.BigEndian.PutUint64(token, uint64(i))
		if err := f.mesh.PublishEvidence(context.Background(), token); err != nil {
			t.Fatal(err)
		}
		// One at a time, as fast as R judges them: GossipSub's queues
		// would otherwise drop most before any validator saw them.
		eventuallyT(t, 10*time.Second, "R judged the evidence", func() bool { return judged(r, f.h.ID()) >= i+1 })
	}
	// An honest member's evidence during the flood still arrives.
	if err := h.mesh.PublishEvidence(context.Background(), []byte("honest evidence")); err != nil {
		t.Fatal(err)
	}
	eventuallyT(t, 10*time.Second, "honest evidence reaches V", func() bool { return v.control.evidenceFrom(h.h.ID()) == 1 })

	// The allowance: a burst, and what refills during the test at a few
	// per attest interval (one minute by default).
	allowance := evidenceBurst + 2
	if got := r.control.evidenceFrom(f.h.ID()); got > allowance {
		t.Errorf("R applied %d of %d evidence messages of the flooder, allowance %d", got, flood, allowance)
	}
	if got := v.control.evidenceFrom(f.h.ID()); got > allowance {
		t.Errorf("V applied %d of %d evidence messages of the flooder, relayed by R; allowance %d", got, flood, allowance)
	}
	if _, mis := vr.get(f.h.ID()); mis < flood-allowance {
		t.Errorf("R counted %d dropped messages against the flooder, want at least %d", mis, flood-allowance)
	}
	notFramed(t, "V", v, vv, r, nextScores(t, v))
	if rej, mis := vv.get(f.h.ID()); rej > 0 || mis > 0 {
		t.Errorf("V, which got only what R relayed, blamed the flooder %d+%d times: relays' bunching would be framing", rej, mis)
	}
}

// TestControlLimitIgnoresReplays: messages seen from an origin before do
// not spend its allowance, so nobody can replay an honest member's
// evidence to use it up.
func TestControlLimitIgnoresReplays(t *testing.T) {
	var w ctlWindows
	seq := func(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }
	if !w.fresh("a", seq(10)) || w.fresh("a", seq(10)) {
		t.Fatal("a sequence number is new once")
	}
	if !w.fresh("b", seq(10)) {
		t.Fatal("origins share a window")
	}
	if !w.fresh("a", seq(9)) || !w.fresh("a", seq(20000)) || w.fresh("a", seq(9)) {
		t.Fatal("out of order, then far ahead")
	}
	if w.fresh("a", []byte{1, 2, 3}) {
		t.Fatal("a sequence number that is not 8 bytes is new")
	}
}
