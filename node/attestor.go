package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/ztmesh/ztmesh/attest"
	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/internal/wire"
)

// attestor is this node's side of attestation: it measures the node and
// signs its evidence, broadcasts it (shortly after Start, then every
// AttestInterval), answers peers' challenges (AttestProtocol) and
// challenges peers. What it learns from a challenge goes to the trust
// book like broadcast evidence.
//
// What it does not own: judging other nodes' evidence and their trust
// (trust.go and the trust book), the reference values (controller).
type attestor struct {
	n          *Node
	binaryHash string    // of the node's executable, as measured
	started    time.Time // for the uptime in the evidence
	delay      time.Duration

	mu         sync.Mutex
	challenged map[peer.ID]time.Time // when each peer last challenged us
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
func (a *attestor) Challenge(ctx context.Context, p peer.ID) (*attest.Result, error) {
	nonce := make([]byte, 32)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := a.n.host.NewStream(ctx, p, AttestProtocol)
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
	ev, err := attest.ParseEvidence(ans.Evidence, a.n.now(), a.n.trust.EvidenceMaxAge())
	if err != nil {
		return nil, fmt.Errorf("challenge %s: %w", p, err)
	}
	if author, err := did.DIDFromPeerID(p); err != nil || author != ev.Subject {
		return nil, fmt.Errorf("challenge %s: evidence is about %s", p, ev.Subject)
	}
	if !bytes.Equal(ev.Nonce, nonce) {
		return nil, fmt.Errorf("challenge %s: evidence answers another nonce", p)
	}
	if _, err := a.n.judgeEvidence(ev, false); err != nil {
		return nil, err
	}
	res := attest.Verify(ev, a.n.references.Current(), nonce)
	return &res, nil
}

// handleChallenge answers a verified peer's nonce with fresh evidence, at
// most once a second per peer (signing is not free).
func (a *attestor) handleChallenge(s network.Stream) {
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	p := s.Conn().RemotePeer()
	// The challenger verified us and challenges at once; our side of its
	// handshake may still be running.
	if _, ok := a.n.mesh.AwaitMember(p, 5*time.Second); !ok {
		s.Reset()
		return
	}
	a.mu.Lock()
	last := a.challenged[p]
	if a.n.now().Sub(last) < time.Second {
		a.mu.Unlock()
		s.Reset()
		return
	}
	a.challenged[p] = a.n.now()
	a.mu.Unlock()
	var c challenge
	if err := wire.ReadJSON(s, &c, maxChallengeMessage); err != nil || c.V != 1 {
		s.Reset()
		return
	}
	ev, err := a.evidenceFor(c.Nonce)
	if err != nil {
		s.Reset()
		return
	}
	_ = wire.WriteJSON(s, challengeAnswer{V: 1, Evidence: ev}, maxChallengeMessage)
}

// Evidence measures this node now and signs the evidence, with a fresh
// random nonce (for broadcasting).
func (a *attestor) Evidence() ([]byte, error) {
	nonce := make([]byte, 32)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return a.evidenceFor(nonce)
}

func (a *attestor) evidenceFor(nonce []byte) ([]byte, error) {
	opts := attest.MeasureOptions{BinarySHA256: a.binaryHash, Start: a.started, Now: a.n.now(),
		PolicySHA256: attest.HashPolicy(a.n.policy.Modules())}
	if a.n.cfg.configData != nil {
		opts.Config = a.n.cfg.configData
	}
	m, err := attest.Measure(opts)
	if err != nil {
		return nil, err
	}
	return attest.Sign(a.n.id, m, nonce, a.n.now(), nil)
}

// Attest publishes fresh evidence on the control topic.
func (a *attestor) Attest(ctx context.Context) error {
	ev, err := a.Evidence()
	if err != nil {
		return err
	}
	return a.n.mesh.PublishEvidence(ctx, ev)
}

// loop attests shortly after start (once peers are likely there),
// then every AttestInterval, and re-scores peers every second.
func (a *attestor) loop(ctx context.Context) {
	var next <-chan time.Time
	if a.delay > 0 {
		next = time.After(a.delay)
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-next:
			if err := a.Attest(ctx); err != nil && ctx.Err() == nil {
				a.n.log.Debug("attestation not published", "event_type", "attest_failed", "reason", err.Error())
			}
			next = time.After(time.Duration(a.n.cfg.AttestInterval))
			if a.delay < 0 {
				next = nil
			}
		case <-tick.C:
			a.n.countRateLimits()
			a.n.reassessAll("trust fell below " + fmt.Sprint(QuarantineBelow) + " (stale or missing evidence)")
		}
	}
}
