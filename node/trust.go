package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ztmesh/ztmesh/attest"
	"github.com/ztmesh/ztmesh/did"
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
		Reference:      n.references.Current,
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

// onMisbehave counts misbehaviour pinned on a member itself (not on a
// forwarder) against it: pubsub.Config.OnMisbehave.
func (n *Node) onMisbehave(p peer.ID, reason string) {
	mem, ok := n.Member(p)
	if !ok {
		return // not a member we know: nothing to score
	}
	n.trust.Rejected(mem.Credential.Subject, n.now())
	n.reassess(mem.Credential, "trust fell below "+fmt.Sprint(QuarantineBelow)+" after misbehaviour ("+reason+")")
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
	if errors.Is(err, attest.ErrFuture) {
		// Ahead of our clock beyond the skew, perhaps not of the relay's.
		return false, fmt.Errorf("%w: %w", pubsub.ErrJudgedHere, err)
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
	switch {
	case n.references.Current() == nil:
		// Nothing to judge against yet: not a failure (a fresh fleet has no
		// reference values), said once, counted as unchecked.
		if n.noReferenceLogged.CompareAndSwap(false, true) {
			n.log.Info("evidence recorded but not judged: no attestation reference values in force", "event_type", "attestation_unchecked",
				"did", ev.Subject.String(), "reason", "no reference values yet (ztmesh attest reference, then attest push or --reference)")
		}
		n.metrics.attestation("unchecked")
	case !res.OK:
		n.metrics.attestation("failed")
		n.log.Warn("attestation failed", "event_type", "attestation_failed", "did", ev.Subject.String(), "reason", strings.Join(res.Problems, "; "),
			"reference_version", res.ReferenceVersion, "risk_score", 1.0)
	default:
		n.metrics.attestation("passed")
		n.log.Info("attestation passed", "event_type", "attestation_passed", "did", ev.Subject.String(), "hardware", res.Hardware, "risk_score", 0.0)
	}
	if p, ok := n.roster.connectedDID(ev.Subject); ok {
		n.reassess(p.Credential, "attestation")
	}
	return true, nil
}

// Attest publishes fresh evidence of this node on the control topic.
func (n *Node) Attest(ctx context.Context) error { return n.attestor.Attest(ctx) }
