package node

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/sec"
	"github.com/libp2p/go-libp2p/core/transport"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	tptu "github.com/libp2p/go-libp2p/p2p/net/upgrader"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

// flooder is the uncredentialed connection flood: connections to a node
// from fresh identities, each upgraded (Noise, yamux) like a libp2p
// peer's, held open and never presenting a credential.
type flooder struct {
	target peer.ID
	addr   ma.Multiaddr

	attempts, opened atomic.Int64
	mu               sync.Mutex
	conns            []transport.CapableConn
}

func newFlooder(t testing.TB, target *testNode) *flooder {
	f := &flooder{target: target.host.ID(), addr: target.host.Addrs()[0]}
	t.Cleanup(func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, c := range f.conns {
			c.Close()
		}
	})
	return f
}

// flood makes n connection attempts, at most concurrent at once.
func (f *flooder) flood(ctx context.Context, n, concurrent int) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, concurrent)
	for range n {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			f.attempts.Add(1)
			if c, err := f.dial(ctx); err == nil {
				f.opened.Add(1)
				f.mu.Lock()
				f.conns = append(f.conns, c)
				f.mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

func (f *flooder) dial(ctx context.Context) (transport.CapableConn, error) {
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return nil, err
	}
	muxers := []tptu.StreamMuxer{{ID: yamux.ID, Muxer: yamux.DefaultTransport}}
	st, err := noise.New(noise.ID, key, muxers)
	if err != nil {
		return nil, err
	}
	upg, err := tptu.New([]sec.SecureTransport{st}, muxers, nil, &network.NullResourceManager{}, nil)
	if err != nil {
		return nil, err
	}
	tpt, err := tcp.NewTCPTransport(upg, nil, nil)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return tpt.Dial(ctx, f.addr, f.target)
}

// held counts the flood's connections still open.
func (f *flooder) held() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.conns {
		if !c.IsClosed() {
			n++
		}
	}
	return n
}

// unverifiedInbound counts a node's inbound connections from peers it has
// not verified.
func unverifiedInbound(n *testNode) int {
	k := 0
	for _, c := range n.host.Network().Conns() {
		if _, ok := n.roster.Connected(c.RemotePeer()); !ok && c.Stat().Direction == network.DirInbound {
			k++
		}
	}
	return k
}

// An uncredentialed flood (here 700 connections from as many identities,
// more than the node's 512 inbound slots) holds its connections for the
// whole grace period; members must still get slots and complete their
// handshake, while the flood goes on.
func TestUncredentialedFloodLeavesMembersSlots(t *testing.T) {
	m := newMesh(t)
	longGrace := func(c *Config) { c.AuthGrace = Duration(5 * time.Minute) }
	target, hub := m.start(longGrace), m.start()
	verifiedMesh(t, target, hub)
	members := make([]*testNode, 10)
	for i := range members {
		members[i] = m.start()
		connect(t, members[i], hub)
	}
	for _, mem := range members {
		eventually(t, 30*time.Second, "the target knows every member from its announcement", func() bool {
			_, ok := target.roster.announced(mem.host.ID())
			return ok
		})
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := newFlooder(t, target)
	f.flood(ctx, 700, 32)
	t.Logf("flood: %d attempts, %d opened, %d held; the target holds %d unverified inbound connections",
		f.attempts.Load(), f.opened.Load(), f.held(), unverifiedInbound(target))

	// A second wave while the members connect.
	var wave sync.WaitGroup
	wave.Add(1)
	go func() { defer wave.Done(); f.flood(ctx, 700, 16) }()
	for _, mem := range members {
		eventually(t, 30*time.Second, "every member completes its handshake with the target", func() bool {
			if !connected(mem, target.host.ID()) {
				cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
				_ = mem.host.Connect(cctx, peer.AddrInfo{ID: target.host.ID(), Addrs: target.host.Addrs()})
				ccancel()
			}
			return verifiedBy(target, mem.host.ID()) && verifiedBy(mem, target.host.ID())
		})
	}
	wave.Wait()
	t.Logf("after both waves: %d attempts, %d opened, %d held; the target holds %d unverified inbound connections",
		f.attempts.Load(), f.opened.Load(), f.held(), unverifiedInbound(target))
}
