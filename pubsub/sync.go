package pubsub

import (
	"context"
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
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := m.h.NewStream(ctx, p, SyncProtocol)
	if err != nil {
		return err
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	return wire.WriteJSON(s, syncMessage{V: 1, Revocations: st.Revocations, Bundle: st.Bundle, Reference: st.Reference, Members: st.Members}, maxSyncMessage)
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
