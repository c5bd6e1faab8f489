package pubsub

import (
	"context"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ztmesh/ztmesh/internal/wire"
)

// maxSyncMessage caps a sync message: a few revocation lists and a bundle.
const maxSyncMessage = 8 << 20

// syncMessage hands a peer the control content in force here.
type syncMessage struct {
	V           int      `json:"v"`
	Revocations [][]byte `json:"revocations"`
	Bundle      []byte   `json:"bundle,omitempty"`
	Reference   []byte   `json:"reference,omitempty"`
	Members     [][]byte `json:"members,omitempty"`
}

// SyncTo sends our revocation lists and policy bundle to a newly verified
// peer, so a node that joins late applies what it missed.
func (m *Mesh) SyncTo(ctx context.Context, p peer.ID) error {
	st := m.cfg.Control.ControlState()
	if len(st.Revocations) == 0 && len(st.Bundle) == 0 && len(st.Reference) == 0 && len(st.Members) == 0 {
		return nil
	}
	return m.sendSync(ctx, p, syncMessage{V: 1, Revocations: st.Revocations, Bundle: st.Bundle, Reference: st.Reference, Members: st.Members})
}

// pushConcurrency bounds the streams a direct push opens at once.
const pushConcurrency = 16

// directPush returns the sync message that carries an operator's control
// publication straight to every verified neighbour, and whether typ is one.
//
// GossipSub publishes only to the topic mesh (flood publishing stays off:
// it would skip the peer filter), and a neighbour that connected since the
// last heartbeat is in no mesh yet. For the rare pushes that cut nodes off
// or change the rules, waiting for gossip to repair that (if the message is
// still in its three-heartbeat window) is too weak; the origin therefore
// also hands them to each verified neighbour over the sync protocol. A
// neighbour verified after this snapshot gets them in its on-connect sync.
// Member announcements and evidence are periodic and numerous, and go by
// GossipSub alone.
func directPush(typ string, token []byte) (syncMessage, bool) {
	switch typ {
	case controlRevocations:
		return syncMessage{V: 1, Revocations: [][]byte{token}}, true
	case controlPolicy:
		return syncMessage{V: 1, Bundle: token}, true
	case controlReference:
		return syncMessage{V: 1, Reference: token}, true
	}
	return syncMessage{}, false
}

// pushToPeers sends msg to every connected verified member, a few at a time.
func (m *Mesh) pushToPeers(ctx context.Context, msg syncMessage) {
	sem := make(chan struct{}, pushConcurrency)
	var wg sync.WaitGroup
	for _, p := range m.h.Network().Peers() {
		if mem, ok := m.cfg.Members.Member(p); !ok || mem.Quarantined {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := m.sendSync(ctx, p, msg); err != nil {
				m.log.Debug("direct push failed", "event_type", "push_failed", "peer", p.String(), "reason", err.Error())
			}
		}()
	}
	wg.Wait()
}

func (m *Mesh) sendSync(ctx context.Context, p peer.ID, msg syncMessage) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := m.h.NewStream(ctx, p, SyncProtocol)
	if err != nil {
		return err
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	return wire.WriteJSON(s, msg, maxSyncMessage)
}

// handleSync applies what a peer sent. Everything in it is issuer-signed
// and verified by the apply functions; older content is ignored.
func (m *Mesh) handleSync(s network.Stream) {
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	// Only verified members may make us read (up to 8 MiB).
	if _, ok := m.AwaitMember(s.Conn().RemotePeer(), 5*time.Second); !ok {
		s.Reset()
		return
	}
	var msg syncMessage
	if err := wire.ReadJSON(s, &msg, maxSyncMessage); err != nil || msg.V != 1 {
		s.Reset()
		return
	}
	p := s.Conn().RemotePeer().String()
	for _, r := range msg.Revocations {
		if changed, err := m.cfg.Control.ApplyRevocations(r); err != nil && !isRollback(err) {
			m.log.Warn("synced revocation list refused", "event_type", "sync_refused", "peer", p, "reason", err.Error())
		} else if changed {
			m.log.Info("revocation list synced from peer", "event_type", "sync_applied", "peer", p)
		}
	}
	for _, mt := range msg.Members {
		if _, err := m.cfg.Control.ApplyMember(mt); err != nil && !isRollback(err) {
			m.log.Debug("synced member announcement refused", "event_type", "sync_refused", "peer", p, "reason", err.Error())
		}
	}
	if len(msg.Reference) > 0 {
		if changed, err := m.cfg.Control.ApplyReference(msg.Reference); err != nil && !isRollback(err) {
			m.log.Warn("synced reference values refused", "event_type", "sync_refused", "peer", p, "reason", err.Error())
		} else if changed {
			m.log.Info("reference values synced from peer", "event_type", "sync_applied", "peer", p)
		}
	}
	if len(msg.Bundle) > 0 {
		if changed, err := m.cfg.Control.ApplyPolicyBundle(msg.Bundle); err != nil && !isRollback(err) {
			m.log.Warn("synced policy bundle refused", "event_type", "sync_refused", "peer", p, "reason", err.Error())
		} else if changed {
			m.log.Info("policy bundle synced from peer", "event_type", "sync_applied", "peer", p)
		}
	}
}
