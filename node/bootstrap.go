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
// connection drops, backing off exponentially (with jitter) while it fails
// or while the peer refuses our credential (revoked, expired, quarantined:
// reconnecting at once would only be refused again). The backoff resets
// once the peer accepts us.
func (n *Node) keepConnected(ctx context.Context, ai peer.AddrInfo) {
	n.host.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.PermanentAddrTTL)
	backoff := bootstrapMinBackoff
	waited := false // the backoff after a refusal has been waited
	for {
		wait := time.Second
		if n.host.Network().Connectedness(ai.ID) != network.Connected {
			if r, refused := n.handshakes.refused(ai.ID); refused && !waited {
				wait = backoff + rand.N(backoff/2)
				n.log.Warn("bootstrap peer refused this node; reconnecting later", "event_type", "bootstrap_refused",
					"peer", ai.ID.String(), "reason", r.reason, "refused_at", r.at.UTC().Format(time.RFC3339), "retry_in", wait.String())
				backoff = min(2*backoff, bootstrapMaxBackoff)
				waited = true
			} else {
				waited = false
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				err := n.host.Connect(cctx, ai)
				cancel()
				if err != nil {
					wait = backoff + rand.N(backoff/2)
					n.log.Warn("bootstrap peer unreachable", "event_type", "bootstrap_failed", "peer", ai.ID.String(),
						"reason", err.Error(), "retry_in", wait.String())
					backoff = min(2*backoff, bootstrapMaxBackoff)
				} else {
					n.log.Info("connected to bootstrap peer", "event_type", "bootstrap_connected", "peer", ai.ID.String())
					if _, refused := n.handshakes.refused(ai.ID); !refused {
						backoff = bootstrapMinBackoff
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// announceLoop announces this node once GossipSub has a peer on the control
// topic, again 5 s later (members that connect in between learn it only
// from the second), then every announceInterval, jittered by up to a fifth
// so that nodes started together do not announce together. Announce is
// also called on renewal. A part of the mesh that connects later learns
// the member from the syncs of the nodes it connects to, and the parts
// beyond those at its next announcement.
func (n *Node) announceLoop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var next time.Time // zero: announce as soon as there is a peer
	sent := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if time.Now().Before(next) || n.roster.connected.Len() == 0 || n.mesh.AnnouncePeers() == 0 {
			continue
		}
		if err := n.Announce(ctx); err != nil {
			n.log.Debug("member announcement not published", "event_type", "announce_failed", "reason", err.Error())
			continue
		}
		sent++
		wait := 5 * time.Second
		if sent >= 2 {
			wait = announceInterval - rand.N(announceInterval/5)
		}
		next = time.Now().Add(wait)
	}
}

// Announce publishes this node's member announcement on the member topics
// of its zones.
func (n *Node) Announce(ctx context.Context) error {
	tok, err := n.roster.Announcement()
	if err != nil {
		return err
	}
	return n.mesh.PublishMember(ctx, tok)
}
