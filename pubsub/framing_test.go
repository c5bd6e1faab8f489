package pubsub

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ztmesh/ztmesh/internal/wire"
)

// Framing honest relays (issue 15, item 1). A malicious origin controls
// what only an origin can: the key it hands each requester, the time in its
// envelopes. Whatever it does, the honest relays that forward its messages
// must not be blamed, and the blame must land on the origin.

// verdicts records what a node's mesh told its OnReject and OnMisbehave
// hooks.
type verdicts struct {
	mu        sync.Mutex
	rejected  map[peer.ID]int // forwarders, by OnReject
	misbehave map[peer.ID]int // members, by OnMisbehave
	reasons   map[string]int  // OnMisbehave reasons
}

func (v *verdicts) hooks(cfg *Config) {
	cfg.OnReject = func(p peer.ID, _ string) {
		v.mu.Lock()
		v.rejected[p]++
		v.mu.Unlock()
	}
	cfg.OnMisbehave = func(p peer.ID, reason string) {
		v.mu.Lock()
		v.misbehave[p]++
		v.reasons[reason]++
		v.mu.Unlock()
	}
}

func (v *verdicts) get(p peer.ID) (rejected, misbehaved int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.rejected[p], v.misbehave[p]
}

// addWatched adds a node whose clock runs offset from real time and whose
// verdicts are recorded.
func (n *tnet) addWatched(zones []string, offset time.Duration) (*tnode, *verdicts) {
	v := &verdicts{rejected: map[peer.ID]int{}, misbehave: map[peer.ID]int{}, reasons: map[string]int{}}
	n.config = func(cfg *Config) {
		v.hooks(cfg)
		cfg.Now = func() time.Time { return time.Now().Add(offset) }
	}
	defer func() { n.config = nil }()
	return n.add(zones, 0), v
}

// knowAll makes every node a verified member of every other, as their
// announcements would, without connecting them.
func (n *tnet) knowAll() {
	for _, a := range n.nodes {
		for _, b := range n.nodes {
			if a != b {
				n.know(a, b, nil)
			}
		}
	}
}

// connectOnly connects a to b (both already know each other).
func (n *tnet) connectOnly(a, b *tnode) {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.h.Connect(ctx, peer.AddrInfo{ID: b.h.ID(), Addrs: b.h.Addrs()}); err != nil {
		n.t.Fatal(err)
	}
	// A key pull dials the origin by the addresses of its announcement.
	for _, x := range n.nodes {
		for _, y := range n.nodes {
			if x != y {
				x.h.Peerstore().AddAddrs(y.h.ID(), y.h.Addrs(), time.Hour)
			}
		}
	}
}

// waitGrafted waits until a has grafted each of peers into a topic mesh.
func waitGrafted(t *testing.T, a *tnode, peers ...*tnode) {
	t.Helper()
	eventuallyT(t, 15*time.Second, "topic mesh grafted", func() bool {
		for _, p := range peers {
			if !a.mesh.tracer.inMesh(p.h.ID()) {
				return false
			}
		}
		return true
	})
}

// equivocate replaces o's key server with one that answers the requesters
// in honest with o's true key and everyone else with a random key under the
// same key ID, sealed properly to the requester: an origin that hands
// different members different keys for one key ID.
func equivocate(o *tnode, honest ...*tnode) {
	trueFor := map[peer.ID]bool{}
	for _, h := range honest {
		trueFor[h.h.ID()] = true
	}
	o.h.SetStreamHandler(KeyProtocol, func(s network.Stream) {
		defer s.Close()
		p := s.Conn().RemotePeer()
		var req keyRequest
		if err := wire.ReadJSON(s, &req, maxKeyMessage); err != nil {
			s.Reset()
			return
		}
		resp := o.mesh.answerKeyRequest(p, &req)
		if resp.OK && !trueFor[p] {
			var id KeyID
			copy(id[:], req.KeyID)
			raw := make([]byte, senderKeySize)
			_, _ = rand.Read(raw)
			k, err := senderKeyFrom(id, req.Topic, raw, time.Now())
			mem, _ := o.members.Member(p)
			if err == nil {
				resp.Sealed, err = sealSenderKey(k, o.h.ID(), p, mem.KeyPackage)
			}
			if err != nil {
				resp = keyResponse{V: 1, Reason: err.Error()}
			}
		}
		_ = wire.WriteJSON(s, resp, maxKeyMessage)
	})
}

// honestDelivery has from publish count messages and checks that every
// subscription delivers all of them.
func honestDelivery(t *testing.T, from *tnode, count int, subs map[string]*Subscription) {
	t.Helper()
	for i := range count {
		if _, err := from.mesh.Publish(context.Background(), "north", "maps", fmt.Appendf(nil, "honest %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for name, sub := range subs {
		got := map[string]bool{}
		for len(got) < count {
			d := recvWithin(sub, 10*time.Second)
			if d == nil {
				t.Fatalf("%s: %d of %d honest messages delivered", name, len(got), count)
			}
			if d.Origin == from.id.DID() {
				got[string(d.Data)] = true
			}
		}
	}
}

// nextScores waits for two fresh snapshots of a's GossipSub scores (they
// are refreshed every second), so that what a's GossipSub did before the
// call shows in them, and returns the last.
func nextScores(t *testing.T, a *tnode) map[peer.ID]float64 {
	t.Helper()
	var last map[peer.ID]float64
	for range 2 {
		p0 := a.mesh.scores.Load()
		eventuallyT(t, 10*time.Second, "fresh score snapshot", func() bool { return a.mesh.scores.Load() != p0 })
		last = a.mesh.Scores()
	}
	return last
}

// notFramed checks that receiver r holds nothing against the honest relay:
// no rejection counted, a GossipSub score that is not negative.
func notFramed(t *testing.T, name string, r *tnode, v *verdicts, relay *tnode, scores map[peer.ID]float64) {
	t.Helper()
	if rej, mis := v.get(relay.h.ID()); rej > 0 || mis > 0 {
		t.Errorf("%s blamed the honest relay: %d rejections, %d misbehaviours", name, rej, mis)
	}
	if s, ok := scores[relay.h.ID()]; !ok || s < 0 {
		t.Errorf("%s's GossipSub score of the honest relay is %.1f (tracked %v): framed", name, s, ok)
	}
	if gl, s := r.mesh.Graylisted(relay.h.ID()); gl {
		t.Errorf("%s graylisted the honest relay (score %.1f)", name, s)
	}
}

// TestKeyEquivocationDoesNotFrameRelays: origin O hands relays R1 and R2
// its true key and receivers W (behind R1) and V (behind R2) a random key
// under the same key ID, then publishes 8 messages. On the code before
// issue 15, W and V rejected R1 and R2 for bad ciphertext until GossipSub
// graylisted them.
//
//	O — R1 — R2 — V
//	     |
//	     W
//
// With "origin also adjacent", O is connected to V too and its fanout
// hands V a copy straight away: a Reject of that copy penalized R2 as well,
// GossipSub counting an invalid delivery against every forwarder of the
// same message.
func TestKeyEquivocationDoesNotFrameRelays(t *testing.T) {
	for _, adjacent := range []bool{false, true} {
		name := "through relays only"
		if adjacent {
			name = "origin also adjacent"
		}
		t.Run(name, func(t *testing.T) { keyEquivocation(t, adjacent) })
	}
}

func keyEquivocation(t *testing.T, adjacent bool) {
	n := newNet(t, 0)
	zone := []string{"north"}
	o, _ := n.addWatched(zone, 0)
	r1, _ := n.addWatched(zone, 0)
	r2, vr2 := n.addWatched(zone, 0)
	v, vv := n.addWatched(zone, 0)
	w, vw := n.addWatched(zone, 0)
	n.knowAll()
	subs := map[string]*Subscription{}
	for name, x := range map[string]*tnode{"R1": r1, "R2": r2, "V": v, "W": w} {
		sub, err := x.mesh.Subscribe("north", "maps")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(sub.Cancel)
		subs[name] = sub
	}
	n.connectOnly(o, r1)
	n.connectOnly(r1, r2)
	n.connectOnly(r1, w)
	n.connectOnly(r2, v)
	if adjacent {
		n.connectOnly(o, v)
	}
	waitGrafted(t, r1, r2, w)
	waitGrafted(t, r2, r1, v)
	waitGrafted(t, v, r2)
	waitGrafted(t, w, r1)
	equivocate(o, r1, r2)

	// O only publishes (not subscribed): its messages reach R1 by fanout
	// and everyone else through the relays.
	const burst = 8
	for i := range burst {
		if _, err := o.mesh.Publish(context.Background(), "north", "maps", fmt.Appendf(nil, "evil %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	// The relays, which hold the true key, deliver O's messages.
	for _, name := range []string{"R1", "R2"} {
		for i := range burst {
			if d := recvWithin(subs[name], 10*time.Second); d == nil {
				t.Fatalf("%s: %d of %d of the origin's messages delivered", name, i, burst)
			}
		}
	}
	// V and W refuse every one of them.
	refused := func(x *tnode) uint64 {
		var sum uint64
		for _, c := range x.mesh.Stats().Rejected() {
			sum += c
		}
		return sum
	}
	eventuallyT(t, 20*time.Second, "V and W judged the origin's burst", func() bool {
		return refused(v) >= burst && refused(w) >= burst || scoreBelowZero(v, r2) || scoreBelowZero(w, r1)
	})
	vs, ws := nextScores(t, v), nextScores(t, w)
	notFramed(t, "V", v, vv, r2, vs)
	notFramed(t, "W", w, vw, r1, ws)
	notFramed(t, "R2", r2, vr2, r1, nextScores(t, r2))

	// The origin carries the blame: V and W pin the equivocation on it.
	// (OnMisbehave for forwarded copies, OnReject for those the origin
	// sent itself.)
	for name, x := range map[string]*verdicts{"V": vv, "W": vw} {
		if rej, mis := x.get(o.h.ID()); rej+mis == 0 {
			t.Errorf("%s did not count the equivocation against the origin (reasons %v)", name, x.reasons)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	// Honest traffic through the same relays still arrives everywhere.
	honestDelivery(t, r1, 10, map[string]*Subscription{"R2": subs["R2"], "V": subs["V"], "W": subs["W"]})
}

// scoreBelowZero reports whether a's latest GossipSub score of p is negative.
func scoreBelowZero(a, p *tnode) bool {
	s, ok := a.mesh.Scores()[p.h.ID()]
	return ok && s < 0
}

// TestTimeEdgeDoesNotFrameRelays: origin O publishes with a clock at the
// edge of the skew window, so that its messages are fresh for relays R1
// and R2 (clocks on time) and stale for receivers whose clocks are a minute
// off, within the tolerance: V (a minute ahead) sees them too old, F (a
// minute behind) sees them from too far in the future. On the code before
// issue 15 both rejected R2, which forwarded them.
//
//	O — R1 — R2 — V
//	               \
//	                F
func TestTimeEdgeDoesNotFrameRelays(t *testing.T) {
	for _, tc := range []struct {
		name     string
		offset   time.Duration // the origin's clock
		blameful bool          // whether the origin is to blame
	}{
		// 1m30s old: V (a minute ahead) sees 2m30s, F sees 30s. Any relay
		// can delay a message: nobody is blamed.
		{"past edge", -90 * time.Second, false},
		// 1m30s ahead: F (a minute behind) sees 2m30s ahead. No relay can
		// make a message from the future: the origin is blamed.
		{"future edge", 90 * time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNet(t, 0)
			zone := []string{"north"}
			o, _ := n.addWatched(zone, tc.offset)
			r1, _ := n.addWatched(zone, 0)
			r2, vr2 := n.addWatched(zone, 0)
			v, vv := n.addWatched(zone, time.Minute)
			f, vf := n.addWatched(zone, -time.Minute)
			n.knowAll()
			subs := map[string]*Subscription{}
			for name, x := range map[string]*tnode{"R1": r1, "R2": r2, "V": v, "F": f} {
				sub, err := x.mesh.Subscribe("north", "maps")
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(sub.Cancel)
				subs[name] = sub
			}
			n.connectOnly(o, r1)
			n.connectOnly(r1, r2)
			n.connectOnly(r2, v)
			n.connectOnly(r2, f)
			waitGrafted(t, r1, r2)
			waitGrafted(t, r2, r1, v, f)
			waitGrafted(t, v, r2)
			waitGrafted(t, f, r2)

			const burst = 8
			for i := range burst {
				if _, err := o.mesh.Publish(context.Background(), "north", "maps", fmt.Appendf(nil, "edge %d", i)); err != nil {
					t.Fatal(err)
				}
			}
			for i := range burst {
				if d := recvWithin(subs["R2"], 10*time.Second); d == nil {
					t.Fatalf("R2: %d of %d of the origin's messages delivered", i, burst)
				}
			}
			// The receiver whose clock puts the messages outside the window.
			late, lv := v, vv
			if tc.offset > 0 {
				late, lv = f, vf
			}
			eventuallyT(t, 20*time.Second, "the late receiver judged the burst", func() bool {
				return late.mesh.Stats().Rejected()[ReasonStale] >= burst || scoreBelowZero(late, r2)
			})
			notFramed(t, "late receiver", late, lv, r2, nextScores(t, late))
			notFramed(t, "R2", r2, vr2, r1, nextScores(t, r2))
			_, mis := lv.get(o.h.ID())
			switch {
			case tc.blameful && mis == 0:
				t.Errorf("messages from the future not counted against the origin")
			case !tc.blameful && mis > 0:
				t.Errorf("old messages counted %d times against the origin: any relay can delay a message", mis)
			}
			if t.Failed() {
				t.FailNow()
			}
			honestDelivery(t, r1, 10, map[string]*Subscription{"R2": subs["R2"], "V": subs["V"], "F": subs["F"]})
		})
	}
}
