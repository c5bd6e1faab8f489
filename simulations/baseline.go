package simulations

import (
	"context"
	"errors"
	"sync"

	"github.com/libp2p/go-libp2p"
	ps "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
)

// Baseline is the same topology as a Cluster with plain go-libp2p-pubsub:
// GossipSub with default settings, no credentials, no policy, no sealing.
// Every ztmesh figure in a report is set against it.
type Baseline struct {
	Net    mocknet.Mocknet
	Hosts  []host.Host
	Subs   []*ps.PubSub
	Specs  []NodeSpec
	mu     sync.Mutex
	topics map[topicKey]*ps.Topic
	tcp    bool
}

type topicKey struct {
	node  int
	topic string
}

// NewBaseline starts one plain GossipSub host per spec on a mocknet with
// link, wired by Topology(specs, degree, cross, seed).
func NewBaseline(ctx context.Context, specs []NodeSpec, link Link, degree, cross int, seed uint64, opts ...ps.Option) (*Baseline, error) {
	b := &Baseline{Net: mocknet.New(), Specs: specs, topics: map[topicKey]*ps.Topic{}, tcp: link.TCP}
	b.Net.SetLinkDefaults(mocknet.LinkOptions{Latency: link.Latency, Bandwidth: link.Bandwidth})
	for range specs {
		var h host.Host
		var err error
		if link.TCP {
			h, err = libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
		} else {
			h, err = b.Net.GenPeer()
		}
		if err != nil {
			b.Close()
			return nil, err
		}
		g, err := ps.NewGossipSub(ctx, h, opts...)
		if err != nil {
			b.Close()
			return nil, err
		}
		b.Hosts = append(b.Hosts, h)
		b.Subs = append(b.Subs, g)
	}
	// b, not b.Net: on TCP there is nothing to link.
	err := connectPairs(ctx, b, b.Hosts, Topology(specs, degree, cross, seed))
	if err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// Topic returns node i's handle on topic name, joining it the first time.
func (b *Baseline) Topic(i int, name string) (*ps.Topic, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := topicKey{i, name}
	if t, ok := b.topics[k]; ok {
		return t, nil
	}
	t, err := b.Subs[i].Join(name)
	if err != nil {
		return nil, err
	}
	b.topics[k] = t
	return t, nil
}

// LinkPeers links two hosts on mocknet; on TCP they need no link.
func (b *Baseline) LinkPeers(x, y peer.ID) (mocknet.Link, error) {
	if b.tcp {
		return nil, nil
	}
	return b.Net.LinkPeers(x, y)
}

// Close stops every host.
func (b *Baseline) Close() error {
	if b.tcp {
		var errs []error
		for _, h := range b.Hosts {
			errs = append(errs, h.Close())
		}
		return errors.Join(errs...)
	}
	return b.Net.Close()
}
