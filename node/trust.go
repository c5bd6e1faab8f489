package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/ztmesh/ztmesh/attest"
	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/internal/wire"
	"github.com/ztmesh/ztmesh/node/internal/trust"
	"github.com/ztmesh/ztmesh/pubsub"
)

// Continuous verification. Every node broadcasts signed evidence about
// itself on the control topic (at start, then every AttestInterval); every
// node verifies every peer's evidence against the attestation reference
// values in force and keeps, per peer, an effective trust score
// (attest.EffectiveTrust: the credential's score, lowered by failed or
// stale attestation, by messages our validators rejected and by messages
// dropped over the peer's rate limit). That score is the peer's trust_score
// in policy inputs (publishing, state writes) and GossipSub's
// application-specific score. A peer whose evidence fails, or whose score
// falls below QuarantineBelow, is quarantined at once: no zone traffic to
// or from it, no sender keys, and our keys are rotated. A quarantine for
// failed or stale evidence is announced on the control topic with the
// evidence (quarantine.go), so that other nodes can check it themselves.
// A peer is released when it broadcasts newer evidence that passes and its
// score is back above ReleaseAbove.
//
// Until reference values are in force, attestation does not lower anyone's
// trust; after they arrive, a peer without evidence is pending, not
// penalized, for evidenceMaxAge (two broadcast intervals and the clock
// skew) from the later of their arrival and the first time this node saw
// the peer: long enough to attest, short enough that one that does not is
// soon scored as unattested.

const (
	// QuarantineBelow and ReleaseAbove are the trust thresholds (hysteresis,
	// so a peer near the line does not flap); the trust book applies them.
	QuarantineBelow = trust.QuarantineBelow
	ReleaseAbove    = trust.ReleaseAbove
)

// newTrustBook makes n's trust book: evidence is fresh for two broadcast
// intervals and the clock skew, the reference values are n's, and every
// change of a standing makes GossipSub forget the score it reuses.
func newTrustBook(n *Node) *trust.Book {
	return trust.New(trust.Config{
		EvidenceMaxAge: 2*time.Duration(n.cfg.AttestInterval) + did.DefaultClockSkew,
		Reference: func() *attest.Reference {
			if n.references == nil {
				return nil // not yet made: node.New
			}
			return n.references.Current()
		},
		OnChange: func(d did.DID) {
			if p, err := d.PeerID(); err == nil {
				n.standings.changed(p)
			}
		},
		OnChangeAll: n.standings.changedAll,
	})
}

// appScoreTTL is how long GossipSub reuses a peer's standing as its
// application-specific score: it asks on every RPC and every heartbeat, and
// at thousands of peers the answers were the largest cost of an idle mesh.
// Every change of a standing makes a new standing version (the roster and
// the trust book report them through their one hook), which the reuse
// keys on; only the passage of time (decaying penalties, evidence growing
// stale, a credential expiring) waits for up to this long. It is
// GossipSub's own scoring step: its counters decay once per interval.
const appScoreTTL = time.Second

// standing returns a verified peer's effective trust, attestation and
// quarantine state.
func (n *Node) standing(cred *did.Credential) (trust float64, attested bool, quarantine string) {
	st := n.trust.Standing(cred, n.now())
	return st.Trust, st.Attested, st.Quarantine
}

// trustView is a peer's effective trust with its inputs, for the local API.
type trustView struct {
	trust       float64
	attested    bool
	pending     bool // no evidence yet, not penalized yet
	rejected    float64
	rateLimited float64
	quarantine  string
}

func (n *Node) trustDetail(cred *did.Credential) trustView {
	st := n.trust.Standing(cred, n.now())
	return trustView{trust: st.Trust, attested: st.Attested, pending: st.Pending,
		rejected: st.Rejected, rateLimited: st.RateLimited, quarantine: st.Quarantine}
}

// reassess recomputes a peer's standing and acts on a quarantine or a
// release: log, metrics, key rotation, announcement.
func (n *Node) reassess(cred *did.Credential, why string) {
	tr := n.trust.Reassess(cred, why, n.graylisted(cred), n.now())
	switch {
	case tr.Quarantined:
		n.log.Warn("peer quarantined", "event_type", "peer_quarantined", "did", cred.Subject.String(),
			"reason", tr.Reason, "risk_score", 1-tr.Trust, "effective_trust", tr.Trust)
		n.metrics.quarantine("quarantined")
		n.mesh.RotateKeys("quarantine")
		if tr.Announce != "" {
			n.announceQuarantine(cred.Subject, tr.EvidenceAt, tr.Announce)
		}
	case tr.Released:
		n.log.Info("peer released from quarantine", "event_type", "peer_released", "did", cred.Subject.String(),
			"risk_score", 1-tr.Trust, "effective_trust", tr.Trust)
		n.metrics.quarantine("released")
	}
}

// graylisted reports whether our GossipSub ignores the holder of cred for
// the invalid messages it sent. Once graylisted, a peer's messages never
// reach our validators, so without this a junk publisher stopped costing
// trust after three rejections, and was rarely quarantined (found by the
// attack simulation).
func (n *Node) graylisted(cred *did.Credential) trust.Graylist {
	p, err := cred.Subject.PeerID()
	if err != nil {
		return trust.Graylist{}
	}
	listed, score := n.mesh.Graylisted(p)
	return trust.Graylist{Listed: listed, Score: score}
}

// reassessAll re-scores every verified peer (stale evidence fades).
func (n *Node) reassessAll(why string) {
	for _, p := range n.roster.connected.List() {
		n.reassess(p.Credential, why)
	}
}

// onReject counts a rejected zone message against the peer that forwarded it.
func (n *Node) onReject(forwarder peer.ID, reason string) {
	p, ok := n.roster.connected.Get(forwarder)
	if !ok {
		return
	}
	n.trust.Rejected(p.DID, n.now())
	n.reassess(p.Credential, "trust fell below "+fmt.Sprint(QuarantineBelow)+" after rejected messages ("+reason+")")
}

// countRateLimits turns the zone messages the mesh dropped over each
// origin's rate limit since the last call into rate-limit violations, in
// seconds' worth of the origin's allowance (attest.TrustInputs.RateLimited),
// and re-scores the origins. It runs every second.
func (n *Node) countRateLimits() {
	if n.s.rateLimit.Off() {
		return
	}
	for origin, dropped := range n.trust.RateLimitDrops(n.mesh.Stats().RateLimited()) {
		mem, ok := n.Member(origin)
		if !ok {
			continue // no longer a member: nothing left to score
		}
		now := n.now()
		n.trust.RateLimited(mem.Credential.Subject, float64(dropped)/n.s.rateLimit.PerSecond, now)
		st := n.trust.Standing(mem.Credential, now)
		n.log.Warn("peer over its rate limit", "event_type", "rate_limited", "peer", origin.String(), "did", mem.Credential.Subject.String(),
			"reason", fmt.Sprintf("%d zone messages dropped over the limit of %g a second", dropped, n.s.rateLimit.PerSecond),
			"risk_score", 1-st.Trust, "effective_trust", st.Trust)
		n.reassess(mem.Credential, "trust fell below "+fmt.Sprint(QuarantineBelow)+" after rate-limit violations")
	}
}

// applyEvidence is pubsub.Control's ApplyEvidence: a node's evidence,
// verified against the reference values in force.
func (n *Node) applyEvidence(origin peer.ID, token []byte) (bool, error) {
	ev, err := attest.ParseEvidence(token, n.now(), n.trust.EvidenceMaxAge())
	if errors.Is(err, attest.ErrStale) {
		return false, fmt.Errorf("%w: %w", pubsub.ErrStale, err)
	}
	if err != nil {
		return false, err
	}
	author, err := did.DIDFromPeerID(origin)
	if err != nil || author != ev.Subject {
		return false, fmt.Errorf("evidence about %s published by %s", ev.Subject, origin)
	}
	return n.judgeEvidence(ev, false)
}

// judgeEvidence verifies evidence and records the result for its subject.
func (n *Node) judgeEvidence(ev *attest.Evidence, again bool) (bool, error) {
	if ev.Subject == n.id.DID() {
		return true, nil // our own, as published
	}
	res := attest.Verify(ev, n.references.Current(), nil)
	if err := n.trust.Evidence(ev, res, again, n.now()); errors.Is(err, trust.ErrNotNewer) {
		return false, fmt.Errorf("%w: evidence of %s not newer than the one held", pubsub.ErrStale, ev.Subject)
	} else if err != nil {
		return false, err
	}
	if !res.OK {
		n.log.Warn("attestation failed", "event_type", "attestation_failed", "did", ev.Subject.String(), "reason", strings.Join(res.Problems, "; "),
			"reference_version", res.ReferenceVersion, "risk_score", 1.0)
	} else {
		n.log.Info("attestation passed", "event_type", "attestation_passed", "did", ev.Subject.String(), "hardware", res.Hardware, "risk_score", 0.0)
	}
	n.metrics.attestation(res.OK)
	if p, ok := n.peerByDID(ev.Subject); ok {
		n.reassess(p.Credential, "attestation")
	}
	return true, nil
}

func (n *Node) peerByDID(d did.DID) (Peer, bool) {
	for _, p := range n.roster.connected.List() {
		if p.DID == d {
			return p, true
		}
	}
	return Peer{}, false
}

// AttestProtocol is the attestation challenge: a peer sends a nonce, the
// node answers with fresh evidence bound to it.
const AttestProtocol protocol.ID = "/ztmesh/attest/1.0.0"

const maxChallengeMessage = attest.MaxEvidenceSize + 1024

type challenge struct {
	V     int    `json:"v"`
	Nonce []byte `json:"nonce"`
}

type challengeAnswer struct {
	V        int    `json:"v"`
	Evidence []byte `json:"evidence"`
}

// Challenge asks a verified peer for fresh evidence bound to a nonce of
// ours, verifies it against the reference values in force and records the
// result, as if the peer had broadcast it.
func (n *Node) Challenge(ctx context.Context, p peer.ID) (*attest.Result, error) {
	nonce := make([]byte, 32)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := n.host.NewStream(ctx, p, AttestProtocol)
	if err != nil {
		return nil, fmt.Errorf("challenge %s: %w", p, err)
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	if err := wire.WriteJSON(s, challenge{V: 1, Nonce: nonce}, maxChallengeMessage); err != nil {
		s.Reset()
		return nil, err
	}
	var ans challengeAnswer
	if err := wire.ReadJSON(s, &ans, maxChallengeMessage); err != nil {
		s.Reset()
		return nil, fmt.Errorf("challenge %s: %w", p, err)
	}
	ev, err := attest.ParseEvidence(ans.Evidence, n.now(), n.trust.EvidenceMaxAge())
	if err != nil {
		return nil, fmt.Errorf("challenge %s: %w", p, err)
	}
	if author, err := did.DIDFromPeerID(p); err != nil || author != ev.Subject {
		return nil, fmt.Errorf("challenge %s: evidence is about %s", p, ev.Subject)
	}
	if !bytes.Equal(ev.Nonce, nonce) {
		return nil, fmt.Errorf("challenge %s: evidence answers another nonce", p)
	}
	if _, err := n.judgeEvidence(ev, false); err != nil {
		return nil, err
	}
	res := attest.Verify(ev, n.references.Current(), nonce)
	return &res, nil
}

// handleChallenge answers a verified peer's nonce with fresh evidence, at
// most once a second per peer (signing is not free).
func (n *Node) handleChallenge(s network.Stream) {
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	p := s.Conn().RemotePeer()
	// The challenger verified us and challenges at once; our side of its
	// handshake may still be running.
	if _, ok := n.mesh.AwaitMember(p, 5*time.Second); !ok {
		s.Reset()
		return
	}
	n.evMu.Lock()
	last := n.challenged[p]
	if n.now().Sub(last) < time.Second {
		n.evMu.Unlock()
		s.Reset()
		return
	}
	n.challenged[p] = n.now()
	n.evMu.Unlock()
	var c challenge
	if err := wire.ReadJSON(s, &c, maxChallengeMessage); err != nil || c.V != 1 {
		s.Reset()
		return
	}
	ev, err := n.evidenceFor(c.Nonce)
	if err != nil {
		s.Reset()
		return
	}
	_ = wire.WriteJSON(s, challengeAnswer{V: 1, Evidence: ev}, maxChallengeMessage)
}

// Evidence measures this node now and signs the evidence, with a fresh
// random nonce (for broadcasting).
func (n *Node) Evidence() ([]byte, error) {
	nonce := make([]byte, 32)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return n.evidenceFor(nonce)
}

func (n *Node) evidenceFor(nonce []byte) ([]byte, error) {
	opts := attest.MeasureOptions{BinarySHA256: n.binaryHash, Start: n.started, Now: n.now(),
		PolicySHA256: attest.HashPolicy(n.policy.Modules())}
	if n.cfg.configData != nil {
		opts.Config = n.cfg.configData
	}
	m, err := attest.Measure(opts)
	if err != nil {
		return nil, err
	}
	return attest.Sign(n.id, m, nonce, n.now(), nil)
}

// Attest publishes fresh evidence on the control topic.
func (n *Node) Attest(ctx context.Context) error {
	ev, err := n.Evidence()
	if err != nil {
		return err
	}
	return n.mesh.PublishEvidence(ctx, ev)
}

// attestLoop attests shortly after start (once peers are likely there),
// then every AttestInterval, and re-scores peers every second.
func (n *Node) attestLoop(ctx context.Context) {
	var next <-chan time.Time
	if n.attestDelay > 0 {
		next = time.After(n.attestDelay)
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-next:
			if err := n.Attest(ctx); err != nil && ctx.Err() == nil {
				n.log.Debug("attestation not published", "event_type", "attest_failed", "reason", err.Error())
			}
			next = time.After(time.Duration(n.cfg.AttestInterval))
			if n.attestDelay < 0 {
				next = nil
			}
		case <-tick.C:
			n.countRateLimits()
			n.reassessAll("trust fell below " + fmt.Sprint(QuarantineBelow) + " (stale or missing evidence)")
		}
	}
}
