package node

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
)

// BenchmarkConnectToVerified measures from dialing a peer to both sides
// holding each other's verified credential, on TCP over loopback. Compare
// with BenchmarkConnectBaseline, the same dial between plain go-libp2p hosts
// with the same transport, security and muxer (connection usable, nothing
// verified). The p50-ns metric is the median.
func BenchmarkConnectToVerified(b *testing.B) {
	m := newMesh(b)
	x, y := m.start(), m.start()
	measureConnect(b, x.host, y.host, func() bool {
		return verifiedBy(x, y.host.ID()) && verifiedBy(y, x.host.ID())
	}, func() bool {
		return !verifiedBy(x, y.host.ID()) && !verifiedBy(y, x.host.ID())
	})
}

func BenchmarkConnectBaseline(b *testing.B) {
	newHost := func() host.Host {
		h, err := libp2p.New(
			libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
			libp2p.Transport(tcp.NewTCPTransport),
			libp2p.Security(libp2ptls.ID, libp2ptls.New),
			libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { h.Close() })
		return h
	}
	x, y := newHost(), newHost()
	measureConnect(b, x, y, func() bool { return y.Network().Connectedness(x.ID()) == network.Connected },
		func() bool { return true })
}

// measureConnect times x dialing y until ready holds, then disconnects and
// waits until both sides are disconnected and clean holds, untimed.
func measureConnect(b *testing.B, x, y host.Host, ready, clean func() bool) {
	ai := peer.AddrInfo{ID: y.ID(), Addrs: y.Addrs()}
	var samples []time.Duration
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		if err := x.Connect(context.Background(), ai); err != nil {
			b.Fatal(err)
		}
		for !ready() {
			time.Sleep(20 * time.Microsecond)
		}
		samples = append(samples, time.Since(start))
		b.StopTimer()
		x.Network().ClosePeer(y.ID())
		for x.Network().Connectedness(y.ID()) == network.Connected || y.Network().Connectedness(x.ID()) == network.Connected || !clean() {
			time.Sleep(100 * time.Microsecond)
		}
		b.StartTimer()
	}
	slices.Sort(samples)
	b.ReportMetric(float64(samples[len(samples)/2].Nanoseconds()), "p50-ns")
}
