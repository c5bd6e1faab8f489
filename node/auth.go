package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/pubsub"
)

// handshakes run the credential handshake (protocol AuthProtocol, see
// handshake.go for the frames) on every connection: each side presents
// its credential, the other verifies it for the authenticated peer and
// admits it to the roster. They own the grace timers of connected peers
// not yet verified: one that is not verified in time is dropped.
//
// What they do not own: the roster's entries (Admit, Remove), the
// connections (the host), trust.
type handshakes struct {
	n *Node

	mu      sync.Mutex
	pending map[peer.ID]*time.Timer // connected peers awaiting the handshake
	closed  bool

	unverified *unverifiedConns // inbound connections of peers that proved nothing
	budgetLog  refusalLog       // refusals of connections over that budget, in aggregate
	refMu      sync.Mutex
	refusedBy  map[peer.ID]refusal // peers whose last answer refused our credential
}

// refusal is what a peer answered when it refused our credential, and when.
type refusal struct {
	reason string
	at     time.Time
}

// maxRefusals bounds how many refusing peers a node remembers.
const maxRefusals = 256

// noteAnswer records a peer's answer to our credential: a refusal is kept
// (for status and the bootstrap backoff) until the peer accepts it.
func (h *handshakes) noteAnswer(p peer.ID, accepted bool, reason string) {
	h.refMu.Lock()
	defer h.refMu.Unlock()
	if accepted {
		delete(h.refusedBy, p)
		return
	}
	if h.refusedBy == nil {
		h.refusedBy = map[peer.ID]refusal{}
	}
	if _, ok := h.refusedBy[p]; ok || len(h.refusedBy) < maxRefusals {
		h.refusedBy[p] = refusal{reason: reason, at: h.n.now()}
	}
}

// refusedBy reports whether p's last answer refused our credential.
func (h *handshakes) refused(p peer.ID) (refusal, bool) {
	h.refMu.Lock()
	defer h.refMu.Unlock()
	r, ok := h.refusedBy[p]
	return r, ok
}

// refusals returns every refusal on record.
func (h *handshakes) refusals() map[peer.ID]refusal {
	h.refMu.Lock()
	defer h.refMu.Unlock()
	return maps.Clone(h.refusedBy)
}

// stop stops every grace timer; no new one starts.
func (h *handshakes) stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for _, t := range h.pending {
		t.Stop()
	}
}

// onConnected runs for every new connection (libp2p calls it synchronously,
// so it must not block): it starts the grace timer for a peer not yet
// verified and presents our credential to the peer.
func (h *handshakes) onConnected(c network.Conn) {
	p := c.RemotePeer()
	if !h.admit(c) {
		return
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	if _, verified := h.n.roster.Connected(p); !verified && h.pending[p] == nil {
		grace := time.Duration(h.n.cfg.AuthGrace)
		h.pending[p] = time.AfterFunc(grace, func() { h.graceExpired(p, grace) })
	}
	h.mu.Unlock()
	h.n.goLoop(func(ctx context.Context) { h.presentTo(ctx, p) }) // a no-op once closed
}

// onDisconnected forgets a peer once its last connection is gone.
func (h *handshakes) onDisconnected(c network.Conn) {
	p := c.RemotePeer()
	h.unverified.release(c)
	if h.n.host.Network().Connectedness(p) == network.Connected {
		return
	}
	h.mu.Lock()
	if t := h.pending[p]; t != nil {
		t.Stop()
		delete(h.pending, p)
	}
	h.mu.Unlock()
	if _, ok := h.n.roster.Remove(p); ok {
		h.n.log.Info("peer disconnected", "event_type", "peer_disconnected", "peer", p.String())
	}
}

// admit applies the budget of unverified inbound connections to c: an
// inbound connection from a peer neither verified nor known from its
// announcement is counted, and closed at once if it is over the budget.
func (h *handshakes) admit(c network.Conn) bool {
	p := c.RemotePeer()
	if c.Stat().Direction != network.DirInbound {
		return true
	}
	if _, _, known := h.n.roster.Member(p); known {
		return true
	}
	over := h.unverified.admit(c)
	if over == "" {
		return true
	}
	h.n.metrics.refusal("unverified budget")
	if counts := h.budgetLog.add(h.n.now(), over); counts != nil {
		h.n.log.Warn("unverified connections refused", "event_type", "connection_refused",
			"reason", "unverified budget", "refused_over_total", counts["total"], "refused_over_per_ip", counts["per ip"],
			"unverified", h.unverified.len(), "max", h.unverified.max, "max_per_ip", h.unverified.perIP,
			"peer", p.String(), "addr", c.RemoteMultiaddr().String()) // the last one refused
	}
	go c.Close() // libp2p calls onConnected synchronously: do not block it
	return false
}

func (h *handshakes) clearPending(p peer.ID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if t := h.pending[p]; t != nil {
		t.Stop()
		delete(h.pending, p)
	}
}

func (h *handshakes) graceExpired(p peer.ID, grace time.Duration) {
	h.mu.Lock()
	delete(h.pending, p)
	closed := h.closed
	h.mu.Unlock()
	if closed {
		return
	}
	if _, ok := h.n.roster.Connected(p); ok || h.n.host.Network().Connectedness(p) != network.Connected {
		return
	}
	h.n.drop(p, "unauthenticated", fmt.Sprintf("no valid credential within the %s grace period", grace))
}

// presentTo presents our credential to p on a new auth stream and logs the
// answer. A peer that does not speak the protocol (a plain libp2p peer) is
// left to the grace timer.
func (h *handshakes) presentTo(ctx context.Context, p peer.ID) {
	ctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	s, err := h.n.host.NewStream(network.WithAllowLimitedConn(ctx, "auth"), p, AuthProtocol)
	if err != nil {
		h.n.log.Debug("cannot present credential", "event_type", "present_failed", "peer", p.String(), "reason", err.Error())
		return
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(handshakeTimeout))
	own := h.n.cred.Load()
	if err := writeFrame(s, present{V: handshakeVersion, Mesh: h.n.cfg.Mesh, Credential: own.Raw, KeyPackage: h.n.mesh.KeyPackage()}); err != nil {
		h.n.log.Debug("present credential", "event_type", "present_failed", "peer", p.String(), "reason", err.Error())
		s.Reset()
		return
	}
	body, err := readFrame(s)
	if err != nil {
		h.n.log.Debug("no handshake result", "event_type", "present_failed", "peer", p.String(), "reason", err.Error())
		s.Reset()
		return
	}
	res, err := decodeResult(body)
	if err != nil {
		h.n.log.Warn("bad handshake result", "event_type", "present_failed", "peer", p.String(), "reason", err.Error())
		s.Reset()
		return
	}
	h.noteAnswer(p, res.Accepted, res.Reason)
	if !res.Accepted {
		h.n.log.Warn("our credential was refused by peer", "event_type", "credential_refused_by_peer",
			"peer", p.String(), "reason", res.Reason)
		return
	}
	h.n.log.Debug("credential accepted by peer", "event_type", "credential_accepted_by_peer", "peer", p.String())
}

// handleAuth verifies a credential a peer presents. The subject must be the
// peer the secure channel authenticated: a credential is worthless to anyone
// but its holder.
func (h *handshakes) handleAuth(s network.Stream) {
	p := s.Conn().RemotePeer()
	_ = s.SetDeadline(time.Now().Add(handshakeTimeout))
	cred, kp, reason, err := h.verifyPresent(s, p)
	if err != nil {
		outcome := "refused"
		if reason == "malformed" || reason == "timeout" {
			outcome = "failed"
		}
		h.n.metrics.handshake(outcome)
		h.n.metrics.refusal(reason)
		h.n.log.Warn("peer refused", "event_type", "handshake_refused", "peer", p.String(), "reason", reason, "detail", oneLine(err))
		// Tell the peer why, let it read the answer (it closes its side),
		// then drop it.
		if writeFrame(s, result{V: handshakeVersion, Accepted: false, Reason: reason}) == nil {
			_ = s.CloseWrite()
			_, _ = io.Copy(io.Discard, io.LimitReader(s, 1))
		}
		s.Reset()
		h.n.roster.Remove(p)
		h.clearPending(p)
		_ = h.n.host.Network().ClosePeer(p)
		return
	}
	renewed := h.n.roster.Admit(Peer{ID: p, DID: cred.Subject, Credential: cred, KeyPackage: kp, VerifiedAt: h.n.now()})
	h.clearPending(p)
	h.unverified.verified(p)
	h.n.metrics.handshake("accepted")
	if err := writeFrame(s, result{V: handshakeVersion, Accepted: true}); err != nil {
		s.Reset()
	} else {
		s.Close()
	}
	event := "peer_verified"
	if renewed {
		event = "credential_renewed"
		if h.n.mesh.Disallowed(p) { // the renewed credential lost a zone it is subscribed to
			h.n.drop(p, "policy", "renewed credential no longer allows a subscribed topic")
			return
		}
	} else {
		h.n.goLoop(func(ctx context.Context) {
			if err := h.n.mesh.SyncTo(ctx, p); err != nil {
				h.n.log.Debug("control sync", "event_type", "sync_failed", "peer", p.String(), "reason", err.Error())
			}
		})
		h.n.states.peerVerified(p)
		if h.n.references.Current() != nil {
			// Attestation is enforced: judge a new peer now, not at its
			// next broadcast.
			h.n.goLoop(func(ctx context.Context) {
				if _, err := h.n.attestor.Challenge(ctx, p); err != nil {
					h.n.log.Debug("challenge", "event_type", "challenge_failed", "peer", p.String(), "reason", err.Error())
				}
			})
		}
	}
	h.n.log.Info("peer verified", "event_type", event, "peer", p.String(), "did", cred.Subject.String(),
		"role", cred.Claims.Role, "trust_score", cred.Claims.TrustScore, "expires", cred.Expires.Format(time.RFC3339))
}

// verifyPresent reads and verifies one present frame. reason is a short,
// stable word for logs, metrics and the peer.
func (h *handshakes) verifyPresent(s network.Stream, p peer.ID) (*did.Credential, *pubsub.KeyPackage, string, error) {
	body, err := readFrame(s)
	if err != nil {
		if errors.Is(err, errFrameTooLarge) {
			return nil, nil, "too large", err
		}
		if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
			return nil, nil, "timeout", err
		}
		return nil, nil, "malformed", err
	}
	msg, err := decodePresent(body)
	if err != nil {
		return nil, nil, "malformed", err
	}
	if msg.Mesh != h.n.cfg.Mesh {
		return nil, nil, "wrong mesh", fmt.Errorf("peer is in mesh %q, we are in %q", truncate(msg.Mesh), h.n.cfg.Mesh)
	}
	holder, err := did.DIDFromPeerID(p)
	if err != nil {
		return nil, nil, "subject mismatch", err
	}
	cred, err := h.n.verifier.VerifyHolder([]byte(msg.Credential), holder, h.n.now())
	if err != nil {
		return nil, nil, reasonOf(err), err
	}
	kp, err := pubsub.ParseKeyPackage(msg.KeyPackage, holder, h.n.now())
	if err != nil {
		return nil, nil, "bad key package", err
	}
	return cred, kp, "", nil
}

// reasons, most specific first: a credential that is both expired and
// revoked is reported as revoked.
var reasons = []struct {
	err    error
	reason string
}{
	{did.ErrTooLarge, "too large"},
	{did.ErrMalformed, "malformed"},
	{did.ErrUntrustedIssuer, "untrusted issuer"},
	{did.ErrBadSignature, "bad signature"},
	{did.ErrRevoked, "revoked"},
	{did.ErrSubjectMismatch, "subject mismatch"},
	{did.ErrExpired, "expired"},
	{did.ErrNotYetValid, "not yet valid"},
	{did.ErrInvalidClaim, "invalid claim"},
}

func reasonOf(err error) string {
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	return "invalid"
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
