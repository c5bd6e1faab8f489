package pubsub

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	ps "github.com/libp2p/go-libp2p-pubsub"
)

// Connections opened only to fetch a sender key.
//
// A receiver pulls each origin's sender key from the origin itself
// (fetchKey), dialing it if they are not connected. Left open, those
// connections turn every zone into a full mesh as its members publish:
// in a simulated fleet of 1,000 nodes in zones of 100, 199 publishers
// raised the peers per node from 9 to 31, and GossipSub's per-peer work
// (streams, gossip, scoring) with them. Messages do not need them: they
// travel the topic meshes. So a connection the fetch opened is closed
// again after keyConnGrace, unless by then it carries more than GossipSub
// and identify, is protected by the connection manager, or the peer is in
// one of this node's topic meshes (GossipSub grafted it: closing it would
// cut a delivery path).

// keyConnChecks is how many times a key-fetch connection still in use is
// looked at again, keyConnGrace apart, before it is left open for good.
const keyConnChecks = 3

// meshTracer follows which peers are in this node's topic meshes. It sees
// GossipSub's events synchronously, so it only updates a map.
type meshTracer struct {
	mu   sync.Mutex
	mesh map[peer.ID]map[string]struct{} // peer -> topics it is grafted in
}

var _ ps.RawTracer = (*meshTracer)(nil)

func newMeshTracer() *meshTracer {
	return &meshTracer{mesh: map[peer.ID]map[string]struct{}{}}
}

// inMesh reports whether p is in a topic mesh of this node.
func (t *meshTracer) inMesh(p peer.ID) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.mesh[p]) > 0
}

func (t *meshTracer) Graft(p peer.ID, topic string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mesh[p] == nil {
		t.mesh[p] = map[string]struct{}{}
	}
	t.mesh[p][topic] = struct{}{}
}

func (t *meshTracer) Prune(p peer.ID, topic string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.mesh[p], topic)
	if len(t.mesh[p]) == 0 {
		delete(t.mesh, p)
	}
}

// OnClosedOutboundStream: GossipSub drops a peer from every mesh, without
// a Prune event, when its stream to the peer closes.
func (t *meshTracer) OnClosedOutboundStream(p peer.ID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.mesh, p)
}

func (*meshTracer) OnNewOutboundStream(peer.ID, protocol.ID)         {}
func (*meshTracer) Join(string)                                      {}
func (*meshTracer) Leave(string)                                     {}
func (*meshTracer) ValidateMessage(*ps.Message)                      {}
func (*meshTracer) DeliverMessage(*ps.Message)                       {}
func (*meshTracer) RejectMessage(*ps.Message, string)                {}
func (*meshTracer) DuplicateMessage(*ps.Message)                     {}
func (*meshTracer) ThrottlePeer(peer.ID)                             {}
func (*meshTracer) RecvRPC(*ps.RPC)                                  {}
func (*meshTracer) SendRPC(*ps.RPC, peer.ID)                         {}
func (*meshTracer) SendRPCCompleted(*ps.RPC, peer.ID, time.Duration) {}
func (*meshTracer) DropRPC(*ps.RPC, peer.ID)                         {}
func (*meshTracer) UndeliverableMessage(*ps.Message)                 {}

// closeKeyConnLater closes the connection to origin that a key fetch
// opened, once it is no longer needed (see above).
func (m *Mesh) closeKeyConnLater(origin peer.ID) {
	m.goLoop(func(ctx context.Context) {
		for range keyConnChecks {
			select {
			case <-ctx.Done():
				return
			case <-time.After(m.cfg.KeyConnGrace):
			}
			switch m.keyConnState(origin) {
			case keyConnGone, keyConnWanted:
				return
			case keyConnIdle:
				m.log.Debug("closing a connection opened to fetch a sender key", "event_type", "key_conn_closed", "peer", origin.String())
				m.keyConnsClosed.Add(1)
				_ = m.h.Network().ClosePeer(origin)
				return
			}
		}
	})
}

type keyConnUse int

const (
	keyConnIdle   keyConnUse = iota // only GossipSub and identify streams: close
	keyConnBusy                     // another protocol's stream is open: look again later
	keyConnWanted                   // in a mesh or protected: keep
	keyConnGone                     // already closed
)

func (m *Mesh) keyConnState(p peer.ID) keyConnUse {
	conns := m.h.Network().ConnsToPeer(p)
	if len(conns) == 0 {
		return keyConnGone
	}
	if m.tracer.inMesh(p) || m.h.ConnManager().IsProtected(p, "") {
		return keyConnWanted
	}
	for _, c := range conns {
		for _, s := range c.GetStreams() {
			if !passiveStream(s.Protocol()) {
				return keyConnBusy
			}
		}
	}
	return keyConnIdle
}

// passiveStream reports whether a stream of protocol id stays open for the
// connection's life without being a reason to keep it: GossipSub's and
// identify's. A stream whose protocol is not negotiated yet ("") counts
// as in use.
func passiveStream(id protocol.ID) bool {
	s := string(id)
	return strings.HasPrefix(s, "/meshsub/") || strings.HasPrefix(s, "/ipfs/id/")
}

// KeyConnsClosed is how many connections opened to fetch a sender key
// this mesh has closed again.
func (m *Mesh) KeyConnsClosed() int64 { return m.keyConnsClosed.Load() }
