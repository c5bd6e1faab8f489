package node

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"

	ma "github.com/multiformats/go-multiaddr"
)

// checkListenFree refuses listen addresses whose port another process
// holds. go-libp2p's TCP transport binds with SO_REUSEPORT, so a second
// daemon on a taken port starts silently and the kernel splits incoming
// connections between the two (dials to the first failed with "peer id
// mismatch"). A plain bind without SO_REUSEPORT fails on a port that any
// socket holds, reuse or not, and says which.
func checkListenFree(addrs []ma.Multiaddr) error {
	var errs []error
	for _, m := range addrs {
		network, hostport, ok := bindTarget(m)
		if !ok {
			continue
		}
		var err error
		switch network {
		case "tcp":
			var ln net.Listener
			if ln, err = net.Listen("tcp", hostport); err == nil {
				ln.Close()
			}
		case "udp":
			var pc net.PacketConn
			if pc, err = net.ListenPacket("udp", hostport); err == nil {
				pc.Close()
			}
		}
		if errors.Is(err, syscall.EADDRINUSE) {
			errs = append(errs, fmt.Errorf("listen %s: the port is taken (another ztmeshd or another program listens on %s %s)", m, network, hostport))
		}
	}
	return errors.Join(errs...)
}

// bindTarget returns the socket a listen address binds: "tcp" or "udp" and
// host:port. Port 0 (any free port) and addresses without IP and port are
// not checked.
func bindTarget(m ma.Multiaddr) (network, hostport string, ok bool) {
	ip, err := m.ValueForProtocol(ma.P_IP4)
	if err != nil {
		if ip, err = m.ValueForProtocol(ma.P_IP6); err != nil {
			return "", "", false
		}
	}
	for _, p := range []struct {
		code int
		net  string
	}{{ma.P_TCP, "tcp"}, {ma.P_UDP, "udp"}} {
		port, err := m.ValueForProtocol(p.code)
		if err != nil {
			continue
		}
		if n, err := strconv.Atoi(port); err != nil || n == 0 {
			return "", "", false
		}
		return p.net, net.JoinHostPort(ip, port), true
	}
	return "", "", false
}
