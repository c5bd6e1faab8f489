package node

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
)

const (
	bootstrapMinBackoff = time.Second
	bootstrapMaxBackoff = time.Minute
)

// keepConnected connects to a bootstrap peer and reconnects whenever the
// connection drops, backing off exponentially (with jitter) while it fails.
func (n *Node) keepConnected(ctx context.Context, ai peer.AddrInfo) {
	n.host.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.PermanentAddrTTL)
	backoff := bootstrapMinBackoff
	for {
		wait := time.Second
		if n.host.Network().Connectedness(ai.ID) != network.Connected {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := n.host.Connect(cctx, ai)
			cancel()
			if err != nil {
				n.log.Debug("bootstrap peer unreachable", "event_type", "bootstrap_failed", "peer", ai.ID.String(),
					"reason", err.Error(), "retry_in", backoff.String())
				wait = backoff + rand.N(backoff/2)
				backoff = min(2*backoff, bootstrapMaxBackoff)
			} else {
				n.log.Info("connected to bootstrap peer", "event_type", "bootstrap_connected", "peer", ai.ID.String())
				backoff = bootstrapMinBackoff
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}
