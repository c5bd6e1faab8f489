package simulations

import (
	"net"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// blackholeAddr is a unique address in the IPv6 discard prefix (100::/64)
// for a mocknet peer, derived from its ID as mocknet's GenPeer does.
func blackholeAddr(p peer.ID) ma.Multiaddr {
	ip := net.ParseIP("100::")
	suffix := []byte(p)
	if len(suffix) > 8 {
		suffix = suffix[len(suffix)-8:]
	}
	copy(ip[net.IPv6len-len(suffix):], suffix)
	a, err := manet.FromNetAddr(&net.TCPAddr{IP: ip, Port: 4242})
	if err != nil {
		panic(err) // cannot happen: a valid IPv6 TCP address
	}
	return a
}
