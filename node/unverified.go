package node

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	manet "github.com/multiformats/go-multiaddr/net"
)

// unverifiedConns is the budget of inbound connections from peers that
// have proven nothing: not verified in a handshake and not members this
// node knows from their announcements. Without it, uncredentialed
// connections held through the grace period took the inbound slots the
// members share (700 of them held 510 of 512, and members' handshakes
// failed). It counts such connections, in all and per remote IP
// (loopback included), and refuses the newest over either cap: the caller
// closes it at once. A connection leaves the budget when its peer is
// verified or when it closes; a member's total is the resource manager's,
// as before.
//
// A member known from its announcement is not counted: the secure channel
// authenticated its peer ID, which nobody else can claim. A new member
// nobody has announced yet competes with the flood for the budget (the
// per-IP cap keeps a flood from few addresses to a few slots).
//
// What it does not own: the connections (the host), the grace timers
// (handshakes), logging (the caller logs refusals in aggregate).
type unverifiedConns struct {
	max, perIP int

	mu    sync.Mutex
	conns map[network.Conn]unverifiedConn // counted connections
	byIP  map[string]int
}

type unverifiedConn struct {
	peer peer.ID
	ip   string // "" if the address has none (counted in the total only)
}

func newUnverifiedConns(max, perIP int) *unverifiedConns {
	return &unverifiedConns{max: max, perIP: perIP, conns: map[network.Conn]unverifiedConn{}, byIP: map[string]int{}}
}

// admit counts c, or says which cap it is over ("" if admitted).
func (u *unverifiedConns) admit(c network.Conn) (over string) {
	ip := ""
	if a, err := manet.ToIP(c.RemoteMultiaddr()); err == nil {
		ip = a.String()
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if _, ok := u.conns[c]; ok {
		return ""
	}
	switch {
	case len(u.conns) >= u.max:
		return "total"
	case ip != "" && u.byIP[ip] >= u.perIP:
		return "per ip"
	}
	u.conns[c] = unverifiedConn{peer: c.RemotePeer(), ip: ip}
	if ip != "" {
		u.byIP[ip]++
	}
	return ""
}

// release forgets c (closed).
func (u *unverifiedConns) release(c network.Conn) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.forget(c)
}

// verified takes p's connections out of the budget.
func (u *unverifiedConns) verified(p peer.ID) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for c, e := range u.conns {
		if e.peer == p {
			u.forget(c)
		}
	}
}

func (u *unverifiedConns) forget(c network.Conn) {
	e, ok := u.conns[c]
	if !ok {
		return
	}
	delete(u.conns, c)
	if e.ip != "" {
		if u.byIP[e.ip]--; u.byIP[e.ip] <= 0 {
			delete(u.byIP, e.ip)
		}
	}
}

// len is how many connections are counted.
func (u *unverifiedConns) len() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.conns)
}

// refusalLog aggregates refusals of a flood into one log line per
// interval: the first refusal is logged at once, the next ones counted
// and logged with their number when the interval has passed.
type refusalLog struct {
	mu      sync.Mutex
	last    time.Time
	pending map[string]int // refusals not yet logged, by cap
}

const refusalLogInterval = 10 * time.Second

// add counts a refusal; it returns the counts to log now, or nil.
func (l *refusalLog) add(now time.Time, over string) map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pending == nil {
		l.pending = map[string]int{}
	}
	l.pending[over]++
	if !l.last.IsZero() && now.Sub(l.last) < refusalLogInterval {
		return nil
	}
	out := l.pending
	l.pending, l.last = nil, now
	return out
}
