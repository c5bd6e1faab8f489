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

// BenchmarkGossipSubScore measures the application-specific score that
// GossipSub asks for on every RPC it receives and for every peer at every
// heartbeat, as the node serves it: remembered for appScoreTTL. Compare
// with BenchmarkGossipSubScoreBaseline, the same score computed from the
// peer's standing every time.
func BenchmarkGossipSubScore(b *testing.B) { benchmarkScore(b, 0) }

func BenchmarkGossipSubScoreBaseline(b *testing.B) { benchmarkScore(b, -1) }

func benchmarkScore(b *testing.B, ttl time.Duration) {
	m := newMesh(b)
	m.options = func(o *Options) { o.Test.AppScoreTTL = ttl }
	x, y := m.start(), m.start()
	connect(b, x, y)
	eventually(b, 5*time.Second, "verified", func() bool { return verifiedBy(x, y.host.ID()) })
	p := y.host.ID()
	if s := x.Mesh().AppScore(p); s <= 0 {
		b.Fatalf("score of a verified member %v", s)
	}
	b.ResetTimer()
	for b.Loop() {
		x.Mesh().AppScore(p)
	}
}
