package pubsub

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ztmesh/ztmesh/internal/wire"
	"github.com/ztmesh/ztmesh/policy"
)

// Sender keys. Each node has one sender key per topic it publishes on,
// rotated every RotateEvery and at once by RotateKeys. Receivers pull a key
// they lack from its origin over KeyProtocol; the origin answers only a
// verified member that the policy lets subscribe to the topic, sealed to
// that member's key package. A retired key is still served for retiredFor,
// for messages sealed just before a rotation.

const (
	retiredFor    = time.Minute
	maxRecvKeys   = 1 << 16
	maxKeyMessage = 8 << 10
)

var errKeyTopic = errors.New("sender key belongs to another topic")

// keyRequest asks an origin for one of its sender keys.
type keyRequest struct {
	V     int    `json:"v"`
	Topic string `json:"topic"`
	KeyID []byte `json:"key_id"`
}

// keyResponse carries the key sealed to the requester, or why not.
type keyResponse struct {
	V      int    `json:"v"`
	OK     bool   `json:"ok"`
	Reason string `json:"reason,omitempty"`
	Sealed []byte `json:"sealed,omitempty"`
}

// ownKey returns the current sender key for a topic, making one if needed.
func (m *Mesh) ownKey(topic string) (*senderKey, error) {
	m.mu.RLock()
	k := m.own[topic]
	m.mu.RUnlock()
	if k != nil {
		return k, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if k = m.own[topic]; k != nil {
		return k, nil
	}
	k, err := newSenderKey(m.self, topic, m.cfg.Now())
	if err != nil {
		return nil, err
	}
	m.own[topic] = k
	return k, nil
}

// RotateKeys replaces every sender key of this node. Call it when a member
// is removed (revoked, quarantined) or the policy changes: the next message
// needs a new key, which only currently authorized members can pull.
func (m *Mesh) RotateKeys(reason string) {
	m.mu.Lock()
	n := len(m.own)
	now := m.cfg.Now()
	for topic, k := range m.own {
		m.retired[k.id] = retiredKey{key: k, expires: now.Add(retiredFor)}
		delete(m.own, topic)
	}
	m.mu.Unlock()
	if n > 0 {
		m.stats.KeyRotations.Add(uint64(n))
		m.log.Info("sender keys rotated", "event_type", "keys_rotated", "reason", reason, "keys", n)
	}
}

// rotateLoop rotates keys by age and forgets expired state.
func (m *Mesh) rotateLoop(ctx context.Context) {
	t := time.NewTicker(min(m.cfg.RotateEvery/4, 30*time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := m.cfg.Now()
		m.mu.Lock()
		rotated := 0
		for topic, k := range m.own {
			if now.Sub(k.created) >= m.cfg.RotateEvery {
				m.retired[k.id] = retiredKey{key: k, expires: now.Add(retiredFor)}
				delete(m.own, topic)
				rotated++
			}
		}
		for id, r := range m.retired {
			if now.After(r.expires) {
				delete(m.retired, id)
			}
		}
		for id, at := range m.equivocated {
			if now.Sub(at) > 2*m.cfg.RotateEvery+m.cfg.MaxSkew {
				delete(m.equivocated, id)
			}
		}
		for id, st := range m.recv {
			st.mu.Lock()
			idle := now.Sub(st.lastUsed) > 2*m.cfg.RotateEvery+m.cfg.MaxSkew
			st.mu.Unlock()
			if idle {
				delete(m.recv, id)
			}
		}
		m.mu.Unlock()
		m.stats.KeyRotations.Add(uint64(rotated))
	}
}

// ownKeyByID finds one of our keys, current or retired.
func (m *Mesh) ownKeyByID(topic string, id KeyID) *senderKey {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if k := m.own[topic]; k != nil && k.id == id {
		return k
	}
	if r, ok := m.retired[id]; ok && r.key.topic == topic {
		return r.key
	}
	return nil
}

// receiverKey returns the state for (origin, key ID), pulling the key from
// the origin if needed. Concurrent callers share one pull.
func (m *Mesh) receiverKey(ctx context.Context, origin peer.ID, id KeyID, topic string) (*recvState, error) {
	rk := recvKeyID{origin, id}
	m.mu.RLock()
	st := m.recv[rk]
	_, equivocated := m.equivocated[rk]
	m.mu.RUnlock()
	if equivocated {
		return nil, errKeyEquivocation // proven once: no pull again
	}
	if st != nil {
		if st.key.topic != topic {
			return nil, errKeyTopic
		}
		return st, nil
	}
	if origin == m.self {
		k := m.ownKeyByID(topic, id)
		if k == nil {
			return nil, errors.New("own key unknown")
		}
		return m.storeRecv(rk, k), nil
	}

	m.mu.Lock()
	call := m.fetches[rk]
	leader := call == nil
	if leader {
		call = &fetchCall{done: make(chan struct{})}
		m.fetches[rk] = call
	}
	m.mu.Unlock()
	if leader {
		call.key, call.err = m.fetchKey(ctx, origin, id, topic)
		m.mu.Lock()
		delete(m.fetches, rk)
		if errors.Is(call.err, errKeyEquivocation) {
			m.rememberEquivocation(rk)
		}
		m.mu.Unlock()
		close(call.done)
		if errors.Is(call.err, errKeyEquivocation) {
			// Logged once per key: the messages sealed under it are
			// refused from now on without another pull.
			m.log.Error("origin equivocated on a sender key", "event_type", "key_equivocation", "peer", origin.String(),
				"origin", origin.String(), "topic", topic, "key_id", fmt.Sprintf("%x", id[:]), "reason", call.err.Error())
		}
	} else {
		select {
		case <-call.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if call.err != nil {
		return nil, call.err
	}
	if call.key.topic != topic {
		return nil, errKeyTopic
	}
	return m.storeRecv(rk, call.key), nil
}

// rememberEquivocation records, under m.mu, that origin's key under this
// ID did not match the ID. The record is bounded like the keys and
// forgotten with them (rotateLoop).
func (m *Mesh) rememberEquivocation(rk recvKeyID) {
	if len(m.equivocated) >= maxRecvKeys {
		for id := range m.equivocated { // evict an arbitrary entry: the map is bounded
			delete(m.equivocated, id)
			break
		}
	}
	m.equivocated[rk] = m.cfg.Now()
}

func (m *Mesh) storeRecv(rk recvKeyID, k *senderKey) *recvState {
	m.mu.Lock()
	defer m.mu.Unlock()
	if st := m.recv[rk]; st != nil {
		return st
	}
	if len(m.recv) >= maxRecvKeys {
		for id := range m.recv { // evict an arbitrary entry: the map is bounded
			delete(m.recv, id)
			break
		}
	}
	st := &recvState{key: k, lastUsed: m.cfg.Now()}
	m.recv[rk] = st
	return st
}

// fetchKey pulls a sender key from its origin.
func (m *Mesh) fetchKey(ctx context.Context, origin peer.ID, id KeyID, topic string) (*senderKey, error) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.KeyFetchTimeout)
	defer cancel()
	if m.cfg.KeyConnGrace > 0 && m.h.Network().Connectedness(origin) != network.Connected {
		defer m.closeKeyConnLater(origin) // opened for this fetch only
	}
	s, err := m.h.NewStream(ctx, origin, KeyProtocol)
	if err != nil {
		return nil, fmt.Errorf("key request to %s: %w", origin, err)
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	if err := wire.WriteJSON(s, keyRequest{V: 1, Topic: topic, KeyID: id[:]}, maxKeyMessage); err != nil {
		s.Reset()
		return nil, err
	}
	var resp keyResponse
	if err := wire.ReadJSON(s, &resp, maxKeyMessage); err != nil {
		s.Reset()
		return nil, fmt.Errorf("key response from %s: %w", origin, err)
	}
	if !resp.OK {
		return nil, fmt.Errorf("key request refused by %s: %s", origin, truncate(resp.Reason))
	}
	return openSenderKey(m.km.priv, resp.Sealed, topic, origin, m.self, id, m.cfg.Now())
}

// handleKeyRequest serves our sender keys to authorized members.
func (m *Mesh) handleKeyRequest(s network.Stream) {
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(m.cfg.KeyFetchTimeout + 3*time.Second))
	p := s.Conn().RemotePeer()
	var req keyRequest
	if err := wire.ReadJSON(s, &req, maxKeyMessage); err != nil {
		s.Reset()
		return
	}
	resp := m.answerKeyRequest(p, &req)
	if !resp.OK {
		m.log.Info("key request refused", "event_type", "key_request_refused", "peer", p.String(), "topic", truncate(req.Topic), "reason", resp.Reason)
	}
	_ = wire.WriteJSON(s, resp, maxKeyMessage)
}

func (m *Mesh) answerKeyRequest(p peer.ID, req *keyRequest) keyResponse {
	no := func(reason string) keyResponse { return keyResponse{V: 1, Reason: reason} }
	if req.V != 1 || len(req.KeyID) != len(KeyID{}) {
		return no("malformed request")
	}
	t, ok := m.topicOf(req.Topic)
	if !ok || t.IsControl() {
		return no("unknown topic")
	}
	// A requester that dialed us for this key may still be in its
	// handshake with us.
	mem, ok := m.AwaitMember(p, 3*time.Second)
	if !ok {
		return no("not a verified member")
	}
	if mem.Quarantined {
		return no("quarantined")
	}
	if mem.KeyPackage == nil {
		return no("no key package presented")
	}
	if d := m.decide(policy.ActionSubscribe, t, mem.Subject()); !d.Allow {
		return no("denied by policy")
	}
	var id KeyID
	copy(id[:], req.KeyID)
	k := m.ownKeyByID(t.String(), id)
	if k == nil {
		return no("unknown or expired key")
	}
	sealed, err := sealSenderKey(k, m.self, p, mem.KeyPackage)
	if err != nil {
		return no("seal failed")
	}
	return keyResponse{V: 1, OK: true, Sealed: sealed}
}
