package node

import (
	"log/slog"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/ztmesh/ztmesh/did"
)

// gater refuses connections to and from peers whose DID is revoked, at dial
// time and, for inbound connections, as soon as the secure channel has
// authenticated the remote key. Peers revoked only by credential ID may
// reconnect: the handshake refuses that credential, and accepts a new one.
type gater struct {
	revocations *did.Revocations
	log         *slog.Logger
	metrics     *metrics
}

var _ interface {
	InterceptPeerDial(peer.ID) bool
	InterceptAddrDial(peer.ID, ma.Multiaddr) bool
	InterceptAccept(network.ConnMultiaddrs) bool
	InterceptSecured(network.Direction, peer.ID, network.ConnMultiaddrs) bool
	InterceptUpgraded(network.Conn) (bool, control.DisconnectReason)
} = (*gater)(nil)

func (g *gater) allowed(p peer.ID, when string) bool {
	d, err := did.DIDFromPeerID(p)
	if err != nil {
		// Not an Ed25519 peer: it can connect (it is a standard libp2p peer)
		// but can never be verified; the grace period drops it.
		return true
	}
	if g.revocations.SubjectRevoked(d) {
		g.metrics.refusal("revoked")
		g.log.Warn("connection refused", "event_type", "connection_refused", "peer", p.String(),
			"did", d.String(), "reason", "revoked", "stage", when)
		return false
	}
	return true
}

func (g *gater) InterceptPeerDial(p peer.ID) bool                                { return g.allowed(p, "dial") }
func (g *gater) InterceptAddrDial(peer.ID, ma.Multiaddr) bool                    { return true }
func (g *gater) InterceptAccept(network.ConnMultiaddrs) bool                     { return true }
func (g *gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }
func (g *gater) InterceptSecured(dir network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	if dir == network.DirOutbound {
		return true // checked at InterceptPeerDial
	}
	return g.allowed(p, "accept")
}
