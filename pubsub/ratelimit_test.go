package pubsub

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

func TestRateLimitNormalized(t *testing.T) {
	def := RateLimit{PerSecond: DefaultRatePerSecond, Burst: DefaultRateBurst}
	for _, tc := range []struct {
		name string
		in   RateLimit
		want RateLimit
	}{
		{"unset takes the default", RateLimit{}, def},
		{"burst defaults to two seconds' worth", RateLimit{PerSecond: 50}, RateLimit{PerSecond: 50, Burst: 100}},
		{"a burst alone keeps the default rate", RateLimit{Burst: 10}, RateLimit{PerSecond: DefaultRatePerSecond, Burst: 10}},
		{"a slow rate still allows one message", RateLimit{PerSecond: 0.1}, RateLimit{PerSecond: 0.1, Burst: 1}},
		{"negative rate: no limit", RateLimit{PerSecond: -1, Burst: 7}, RateLimit{PerSecond: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.in.normalized(def); got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestLimiterTokenBucket(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	r := RateLimit{PerSecond: 10, Burst: 20}
	var l limiter
	take := func(origin peer.ID, topic string, n int, at time.Time) (ok int) {
		for range n {
			if l.allow(origin, topic, r, at) {
				ok++
			}
		}
		return ok
	}
	if got := take("a", "x", 30, t0); got != 20 {
		t.Fatalf("a burst of 30 at once: %d allowed, want the burst of 20", got)
	}
	if got := take("b", "x", 5, t0); got != 5 {
		t.Fatalf("another origin is limited by a's burst: %d of 5", got)
	}
	if got := take("a", "y", 5, t0); got != 5 {
		t.Fatalf("another topic is limited by a's burst on x: %d of 5", got)
	}
	if got := take("a", "x", 10, t0.Add(500*time.Millisecond)); got != 5 {
		t.Fatalf("half a second later: %d allowed, want 5", got)
	}
	if got := take("a", "x", 10, t0.Add(400*time.Millisecond)); got != 0 {
		t.Fatalf("a clock that went back refilled %d tokens", got)
	}
	if got := take("a", "x", 100, t0.Add(time.Hour)); got != 20 {
		t.Fatalf("after an hour: %d allowed, want the burst of 20 (tokens do not pile up)", got)
	}
	if got := take("a", "x", 5, t0.Add(time.Hour)); got != 0 || !l.allow("a", "x", RateLimit{PerSecond: -1}, t0.Add(time.Hour)) {
		t.Fatal("no limit refused a message")
	}
	// Buckets that are full again are forgotten after a minute.
	l.allow("c", "x", r, t0.Add(time.Hour+2*time.Minute))
	l.mu.Lock()
	n := len(l.buckets)
	l.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d buckets kept, want only c's", n)
	}
}

// TestRateLimitDropsFlood: a member publishing far over its limit has the
// excess dropped (and counted) at the receiver; another member publishing
// at the same time is not affected; nobody is blamed in GossipSub's score.
func TestRateLimitDropsFlood(t *testing.T) {
	n := newNet(t, 0)
	var mu sync.Mutex
	rejects := map[peer.ID]int{}
	n.config = func(c *Config) {
		c.OnReject = func(p peer.ID, _ string) { mu.Lock(); rejects[p]++; mu.Unlock() }
	}
	a, b, c := n.add([]string{"north"}, 0), n.add([]string{"north"}, 0), n.add([]string{"north"}, 0)
	n.link(a, b)
	n.link(c, b)
	n.link(a, c)
	n.know(b, a, func(m *Member) { m.RateLimit = RateLimit{PerSecond: 10, Burst: 20} })
	sub, err := b.mesh.Subscribe("north", "maps")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Cancel()
	for _, x := range []*tnode{a, c} {
		if _, err := x.mesh.Subscribe("north", "maps"); err != nil { // to relay
			t.Fatal(err)
		}
		waitPeers(t, x, "north", "maps", b)
	}
	time.Sleep(1200 * time.Millisecond) // a heartbeat grafts the mesh

	// The bucket refills from a's first message: the allowance counts
	// from before it.
	start := time.Now()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 100 {
			a.mesh.Publish(context.Background(), "north", "maps", []byte(fmt.Sprint("flood ", i)))
			time.Sleep(2 * time.Millisecond)
		}
	}()
	for i := range 5 {
		if _, err := c.mesh.Publish(context.Background(), "north", "maps", []byte(fmt.Sprint("honest ", i))); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	wg.Wait()
	elapsed := time.Since(start) + 100*time.Millisecond

	fromA, fromC := 0, 0
	for {
		d := recvWithin(sub, time.Second)
		if d == nil {
			break
		}
		if d.Origin == a.id.DID() {
			fromA++
		} else {
			fromC++
		}
	}
	limited := b.mesh.Stats().RateLimited()[a.h.ID()]
	t.Logf("b delivered %d of a's 100 messages, dropped %d over the limit; delivered %d of c's 5", fromA, limited, fromC)
	if max := 20 + int(10*elapsed.Seconds()) + 1; fromA > max {
		t.Fatalf("b delivered %d of a's messages, the limit allows %d", fromA, max)
	}
	if fromA < 20 {
		t.Fatalf("b delivered only %d of a's messages, below the burst", fromA)
	}
	if limited < 50 {
		t.Fatalf("only %d of a's messages counted as over the limit", limited)
	}
	if fromC != 5 || b.mesh.Stats().RateLimited()[c.h.ID()] != 0 {
		t.Fatalf("c, within its limit, got %d of 5 messages through", fromC)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(rejects) != 0 {
		t.Fatalf("messages over the limit were held against forwarders: %v", rejects)
	}
}

// TestLocalVerdictNotBlamedOnForwarder: b has quarantined a, c has not. c
// forwards a's messages to b, which drops them without holding them
// against c: c could not know.
func TestLocalVerdictNotBlamedOnForwarder(t *testing.T) {
	n := newNet(t, 0)
	var mu sync.Mutex
	rejects := map[peer.ID]int{}
	n.config = func(c *Config) {
		c.OnReject = func(p peer.ID, _ string) { mu.Lock(); rejects[p]++; mu.Unlock() }
	}
	a, b, c := n.add([]string{"north"}, 0), n.add([]string{"north"}, 0), n.add([]string{"north"}, 0)
	n.link(a, c)
	n.link(c, b) // a and b are not connected: a's messages reach b through c
	n.know(b, a, func(m *Member) { m.Quarantined = true })
	sub, err := b.mesh.Subscribe("north", "maps")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Cancel()
	if _, err := c.mesh.Subscribe("north", "maps"); err != nil {
		t.Fatal(err)
	}
	waitPeers(t, a, "north", "maps", c)
	waitPeers(t, c, "north", "maps", b)
	time.Sleep(1200 * time.Millisecond)
	for i := range 5 {
		if _, err := a.mesh.Publish(context.Background(), "north", "maps", []byte(fmt.Sprint("from a ", i))); err != nil {
			t.Fatal(err)
		}
	}
	if d := recvWithin(sub, 2*time.Second); d != nil {
		t.Fatalf("b delivered a message of the origin it quarantined: %q", d.Data)
	}
	if b.mesh.Stats().Rejected()["quarantined origin"] == 0 {
		t.Fatal("the messages never reached b's validator: the test proves nothing")
	}
	mu.Lock()
	defer mu.Unlock()
	if rejects[c.h.ID()] != 0 {
		t.Fatalf("b held %d messages of a against c, which forwarded them in good faith", rejects[c.h.ID()])
	}
}
