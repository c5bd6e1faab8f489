package node

import (
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// budgetConn is the part of a connection the budget reads.
type budgetConn struct {
	network.Conn
	p    peer.ID
	addr ma.Multiaddr
}

func (c *budgetConn) RemotePeer() peer.ID           { return c.p }
func (c *budgetConn) RemoteMultiaddr() ma.Multiaddr { return c.addr }
func connFrom(p, ip string) *budgetConn {
	return &budgetConn{p: peer.ID(p), addr: ma.StringCast("/ip4/" + ip + "/tcp/4001")}
}

func TestUnverifiedBudget(t *testing.T) {
	u := newUnverifiedConns(4, 2)
	// Two from one address fill its share; the third is refused.
	a1, a2, a3 := connFrom("a1", "10.0.0.1"), connFrom("a2", "10.0.0.1"), connFrom("a3", "10.0.0.1")
	for _, c := range []*budgetConn{a1, a2} {
		if over := u.admit(c); over != "" {
			t.Fatalf("within budget: over %s", over)
		}
	}
	if over := u.admit(a3); over != "per ip" {
		t.Fatalf("third from one IP: over %q, want per ip", over)
	}
	// Others fill the total; the newest over it is refused.
	b, c := connFrom("b", "10.0.0.2"), connFrom("c", "10.0.0.3")
	u.admit(b)
	u.admit(c)
	if over := u.admit(connFrom("d", "10.0.0.4")); over != "total" {
		t.Fatalf("over the total: %q", over)
	}
	// A verified peer's connection and a closed one leave the budget.
	u.verified("a1")
	u.release(b)
	if n := u.len(); n != 2 {
		t.Fatalf("%d counted, want 2", n)
	}
	if over := u.admit(a3); over != "" {
		t.Fatalf("after a1 was verified: over %q", over)
	}
	u.release(b) // twice: no effect
	if n := u.len(); n != 3 {
		t.Fatalf("%d counted, want 3", n)
	}
}

func TestRefusalLogAggregates(t *testing.T) {
	var l refusalLog
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	if got := l.add(now, "total"); got["total"] != 1 {
		t.Fatalf("first refusal not logged at once: %v", got)
	}
	for i := range 1000 {
		if got := l.add(now.Add(time.Duration(i)*time.Millisecond), "per ip"); got != nil {
			t.Fatalf("refusal %d logged within the interval: %v", i, got)
		}
	}
	got := l.add(now.Add(refusalLogInterval), "total")
	if fmt.Sprint(got) != "map[per ip:1000 total:1]" {
		t.Fatalf("after the interval: %v", got)
	}
}
