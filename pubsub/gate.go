package pubsub

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// gateWait is how long a GossipSub stream waits for the handshake of the
// peer at its other end (nodes drop peers that take longer than their auth
// grace, 10 s by default).
const gateWait = 15 * time.Second

// gatedHost is the host GossipSub sees: its streams, both ways, exist only
// with verified members. GossipSub's peer filter is not enough on its own:
// a peer whose subscription arrives before GossipSub has opened its own
// stream to it has no known protocol yet, and GossipSub then treats it as a
// floodsub peer and publishes to it without asking the filter (gossipsub.go
// rpcs, v0.19.0). Under load, uncredentialed peers received sealed zone
// messages (ciphertext, topic and origin) that way. Behind this host an
// unverified peer never becomes a GossipSub peer at all.
type gatedHost struct {
	host.Host
	m *Mesh
}

// SetStreamHandler hands GossipSub an inbound stream only once its peer is
// a verified member; others are reset.
func (g gatedHost) SetStreamHandler(pid protocol.ID, handler network.StreamHandler) {
	g.Host.SetStreamHandler(pid, func(s network.Stream) {
		if _, ok := g.m.AwaitMember(s.Conn().RemotePeer(), gateWait); !ok {
			s.Reset()
			return
		}
		handler(s)
	})
}

// NewStream opens a GossipSub stream only to a verified member, waiting for
// its handshake.
func (g gatedHost) NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error) {
	if _, ok := g.m.AwaitMember(p, gateWait); !ok {
		return nil, fmt.Errorf("pubsub: %s is not a verified member", p)
	}
	return g.Host.NewStream(ctx, p, pids...)
}
