package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/ztmesh/ztmesh/attest"
	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/internal/wire"
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
	// so a peer near the line does not flap).
	QuarantineBelow = 0.3
	ReleaseAbove    = 0.4
	// rejectHalfLife is how fast a peer's rejected-message count decays.
	rejectHalfLife = 10 * time.Minute
)

// peerTrust is what this node knows about one peer's trustworthiness.
type peerTrust struct {
	result      *attest.Result // of the newest evidence; nil before any
	evidenceAt  time.Time      // Evidence.Time of the newest evidence
	rejected    attest.Counter
	rateLimited attest.Counter // in seconds' worth of the peer's allowance
	known       time.Time      // when this node first scored the peer
	announced   time.Time      // Evidence.Time of the newest quarantine announcement sent or accepted about it
	quarantine  string         // reason; "" when not quarantined
}

type trustBook struct {
	mu    sync.Mutex
	peers map[did.DID]*peerTrust
	refAt time.Time // when the reference values in force were applied

	rateSeen map[peer.ID]uint64 // the mesh's count of each origin's messages over its rate limit, as last read
}

func (b *trustBook) get(d did.DID, now time.Time) *peerTrust {
	t := b.peers[d]
	if t == nil {
		t = &peerTrust{rejected: attest.Counter{HalfLife: rejectHalfLife}, rateLimited: attest.Counter{HalfLife: rejectHalfLife}, known: now}
		b.peers[d] = t
	}
	return t
}

// trustInputs are a peer's inputs to attest.EffectiveTrust now; the caller
// holds n.trust.mu.
func (n *Node) trustInputs(cred *did.Credential, t *peerTrust, now time.Time) (attest.TrustInputs, attest.TrustParams) {
	in := attest.TrustInputs{Credential: cred.Claims.TrustScore, AttestedAt: t.evidenceAt,
		Rejected: t.rejected.Value(now), RateLimited: t.rateLimited.Value(now)}
	var params attest.TrustParams
	if n.references.Current() == nil {
		params.UnattestedFactor = 1 // attestation is not enforced in this mesh yet
	} else {
		in.Attestation = t.result
		in.Pending = t.result == nil && now.Before(n.pendingUntil(t))
	}
	return in, params
}

// pendingUntil is when a peer without evidence stops being pending: the
// later of the reference values' arrival and the first time we saw it,
// plus the time it needs to attest. The caller holds n.trust.mu.
func (n *Node) pendingUntil(t *peerTrust) time.Time {
	since := t.known
	if n.trust.refAt.After(since) {
		since = n.trust.refAt
	}
	return since.Add(n.evidenceMaxAge())
}

// trustOf computes a peer's effective trust now; the caller holds n.trust.mu.
func (n *Node) trustOf(cred *did.Credential, t *peerTrust, now time.Time) float64 {
	in, params := n.trustInputs(cred, t, now)
	return attest.EffectiveTrust(in, params, now)
}

// staleAlone reports whether a peer's evidence has faded so much that,
// without any penalty, its trust is below QuarantineBelow: a quarantine
// others can check from the evidence. The caller holds n.trust.mu.
func (n *Node) staleAlone(cred *did.Credential, t *peerTrust, now time.Time) bool {
	if t.result == nil || !t.result.OK {
		return false
	}
	in, params := n.trustInputs(cred, t, now)
	in.Rejected, in.RateLimited = 0, 0
	return attest.EffectiveTrust(in, params, now) < QuarantineBelow
}

// appScoreTTL is how long GossipSub reuses a peer's standing as its
// application-specific score: it asks on every RPC and every heartbeat, and
// at thousands of peers the answers were the largest cost of an idle mesh.
// Every change of a standing forgets the score at once (forgetScore,
// forgetScores); only the passage of time (decaying penalties, evidence
// growing stale, a credential expiring) waits for up to this long. It is
// GossipSub's own scoring step: its counters decay once per interval.
const appScoreTTL = time.Second

// forgetScore makes GossipSub score p afresh from its standing; the node
// calls it after each change to p's standing.
func (n *Node) forgetScore(p peer.ID) {
	n.standings.changed(p)
}

// forgetScoreOf is forgetScore for the holder of d.
func (n *Node) forgetScoreOf(d did.DID) {
	if p, err := d.PeerID(); err == nil {
		n.forgetScore(p)
	}
}

// forgetScores makes GossipSub score every peer afresh, after a change
// that may touch any standing (revocations, reference values).
func (n *Node) forgetScores() {
	n.standings.changedAll()
}

// standing returns a verified peer's effective trust, attestation and
// quarantine state.
func (n *Node) standing(cred *did.Credential) (trust float64, attested bool, quarantine string) {
	n.trust.mu.Lock()
	defer n.trust.mu.Unlock()
	now := n.now()
	t := n.trust.get(cred.Subject, now)
	return n.trustOf(cred, t, now), t.result != nil && t.result.OK && t.result.Hardware, t.quarantine
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
	n.trust.mu.Lock()
	defer n.trust.mu.Unlock()
	now := n.now()
	t := n.trust.get(cred.Subject, now)
	in, _ := n.trustInputs(cred, t, now)
	return trustView{trust: n.trustOf(cred, t, now), attested: t.result != nil && t.result.OK && t.result.Hardware,
		pending: in.Pending, rejected: in.Rejected, rateLimited: in.RateLimited, quarantine: t.quarantine}
}

// reassess recomputes a peer's standing and quarantines or releases it.
func (n *Node) reassess(cred *did.Credential, why string) {
	now := n.now()
	n.trust.mu.Lock()
	t := n.trust.get(cred.Subject, now)
	score := n.trustOf(cred, t, now)
	failed := n.references.Current() != nil && t.result != nil && !t.result.OK
	graylisted, gsScore := n.graylisted(cred)
	var quarantined, released bool
	var announce string // why others can check this quarantine, if they can
	switch {
	case t.quarantine == "" && (failed || graylisted || score < QuarantineBelow):
		t.quarantine = why
		switch {
		case graylisted && !failed:
			t.quarantine = fmt.Sprintf("graylisted by GossipSub scoring (score %.0f): it sent invalid messages", gsScore)
		case failed:
			t.quarantine = "attestation failed: " + strings.Join(t.result.Problems, "; ")
			announce = attest.QuarantineFailed
		case n.references.Current() != nil && n.staleAlone(cred, t, now):
			t.quarantine = "evidence stale: made at " + t.evidenceAt.UTC().Format(time.RFC3339)
			announce = attest.QuarantineStale
		}
		quarantined = true
	case t.quarantine != "" && !failed && !graylisted && score >= ReleaseAbove:
		t.quarantine = ""
		released = true
	}
	reason := t.quarantine
	evidenceAt, announced := t.evidenceAt, t.announced
	n.trust.mu.Unlock()
	if quarantined || released {
		n.forgetScoreOf(cred.Subject)
	}
	switch {
	case quarantined:
		n.log.Warn("peer quarantined", "event_type", "peer_quarantined", "did", cred.Subject.String(),
			"reason", reason, "risk_score", 1-score, "effective_trust", score)
		n.metrics.quarantine("quarantined")
		if n.mesh != nil {
			n.mesh.RotateKeys("quarantine")
		}
		if announce != "" && evidenceAt.After(announced) {
			n.announceQuarantine(cred.Subject, evidenceAt, announce)
		}
	case released:
		n.log.Info("peer released from quarantine", "event_type", "peer_released", "did", cred.Subject.String(),
			"risk_score", 1-score, "effective_trust", score)
		n.metrics.quarantine("released")
	}
}

// graylisted reports whether our GossipSub ignores the holder of cred for
// the invalid messages it sent. Once graylisted, a peer's messages never
// reach our validators, so without this a junk publisher stopped costing
// trust after three rejections, and was rarely quarantined (found by the
// attack simulation).
func (n *Node) graylisted(cred *did.Credential) (bool, float64) {
	if n.mesh == nil {
		return false, 0
	}
	p, err := cred.Subject.PeerID()
	if err != nil {
		return false, 0
	}
	return n.mesh.Graylisted(p)
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
	now := n.now()
	n.trust.mu.Lock()
	n.trust.get(p.DID, now).rejected.Add(1, now)
	n.trust.mu.Unlock()
	n.forgetScore(forwarder)
	n.reassess(p.Credential, "trust fell below "+fmt.Sprint(QuarantineBelow)+" after rejected messages ("+reason+")")
}

// countRateLimits turns the zone messages the mesh dropped over each
// origin's rate limit since the last call into rate-limit violations, in
// seconds' worth of the origin's allowance (attest.TrustInputs.RateLimited),
// and re-scores the origins. It runs every second.
func (n *Node) countRateLimits() {
	if n.mesh == nil || n.s.rateLimit.Off() {
		return
	}
	for origin, total := range n.mesh.Stats().RateLimited() {
		n.trust.mu.Lock()
		if n.trust.rateSeen == nil {
			n.trust.rateSeen = map[peer.ID]uint64{}
		}
		dropped := total - n.trust.rateSeen[origin]
		n.trust.rateSeen[origin] = total
		n.trust.mu.Unlock()
		if dropped == 0 {
			continue
		}
		mem, ok := n.Member(origin)
		if !ok {
			continue // no longer a member: nothing left to score
		}
		violations := float64(dropped) / n.s.rateLimit.PerSecond
		now := n.now()
		n.trust.mu.Lock()
		n.trust.get(mem.Credential.Subject, now).rateLimited.Add(violations, now)
		n.trust.mu.Unlock()
		n.forgetScore(origin)
		trust, _, _ := n.standing(mem.Credential)
		n.log.Warn("peer over its rate limit", "event_type", "rate_limited", "peer", origin.String(), "did", mem.Credential.Subject.String(),
			"reason", fmt.Sprintf("%d zone messages dropped over the limit of %g a second", dropped, n.s.rateLimit.PerSecond),
			"risk_score", 1-trust, "effective_trust", trust)
		n.reassess(mem.Credential, "trust fell below "+fmt.Sprint(QuarantineBelow)+" after rate-limit violations")
	}
}

// ApplyReference implements pubsub.ControlHandler: issuer-signed reference
// values, newer than those in force.
func (n *Node) ApplyReference(token []byte) (bool, error) {
	ref, changed, err := n.references.Update(token)
	if errors.Is(err, attest.ErrRollback) {
		return false, fmt.Errorf("%w: %w", pubsub.ErrStale, err)
	}
	if err != nil || !changed {
		return false, err
	}
	n.log.Info("attestation reference values applied", "event_type", "reference_applied", "issuer", ref.Issuer.String(), "version", ref.Version)
	// Re-judge the evidence we hold against the new values; peers without
	// evidence are pending from now.
	n.trust.mu.Lock()
	n.trust.refAt = n.now()
	for _, t := range n.trust.peers {
		t.result = nil // judged again when the peer next attests
	}
	n.trust.mu.Unlock()
	n.forgetScores()
	for _, ev := range n.lastEvidence() {
		_, _ = n.judgeEvidence(ev, true)
	}
	n.reassessAll("reference values changed")
	return true, nil
}

// ApplyEvidence implements pubsub.ControlHandler: a node's evidence,
// verified against the reference values in force.
func (n *Node) ApplyEvidence(origin peer.ID, token []byte) (bool, error) {
	ev, err := attest.ParseEvidence(token, n.now(), n.evidenceMaxAge())
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
	n.trust.mu.Lock()
	t := n.trust.get(ev.Subject, n.now())
	if !again && !ev.Time.After(t.evidenceAt) {
		n.trust.mu.Unlock()
		return false, fmt.Errorf("%w: evidence of %s not newer than the one held", pubsub.ErrStale, ev.Subject)
	}
	t.result, t.evidenceAt = &res, ev.Time
	n.evMu.Lock()
	n.evidence[ev.Subject] = ev
	n.evMu.Unlock()
	n.trust.mu.Unlock()
	n.forgetScoreOf(ev.Subject)
	event, level := "attestation_passed", "info"
	if !res.OK {
		event, level = "attestation_failed", "warn"
	}
	if level == "warn" {
		n.log.Warn("attestation failed", "event_type", event, "did", ev.Subject.String(), "reason", strings.Join(res.Problems, "; "),
			"reference_version", res.ReferenceVersion, "risk_score", 1.0)
	} else {
		n.log.Info("attestation passed", "event_type", event, "did", ev.Subject.String(), "hardware", res.Hardware, "risk_score", 0.0)
	}
	n.metrics.attestation(res.OK)
	if p, ok := n.peerByDID(ev.Subject); ok {
		n.reassess(p.Credential, "attestation")
	}
	return true, nil
}

func (n *Node) lastEvidence() []*attest.Evidence {
	n.evMu.Lock()
	defer n.evMu.Unlock()
	return slices.Collect(maps.Values(n.evidence))
}

func (n *Node) peerByDID(d did.DID) (Peer, bool) {
	for _, p := range n.roster.connected.List() {
		if p.DID == d {
			return p, true
		}
	}
	return Peer{}, false
}

func (n *Node) evidenceMaxAge() time.Duration {
	return 2*time.Duration(n.cfg.AttestInterval) + did.DefaultClockSkew
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
	ev, err := attest.ParseEvidence(ans.Evidence, n.now(), n.evidenceMaxAge())
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

// ReloadReference reads the configured reference values file.
func (n *Node) ReloadReference() error {
	if n.cfg.Reference == "" {
		return nil
	}
	n.refMu.Lock()
	n.refStamp = pathStamp(n.cfg.Reference)
	n.refMu.Unlock()
	data, err := did.ReadFileLimited(n.cfg.Reference, 1<<20)
	if err != nil {
		return fmt.Errorf("reference values: %w", err)
	}
	if _, err := n.ApplyReference(data); err != nil && !errors.Is(err, pubsub.ErrStale) {
		n.log.Error("reference values refused", "event_type", "reference_refused", "file", n.cfg.Reference, "reason", oneLine(err))
		return err
	}
	return nil
}
