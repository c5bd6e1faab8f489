package pubsub

import (
	"sync"
	"time"

	ps "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// GossipSub peer scoring. What a Reject does to a forwarder depends on it:
// every message our validators reject counts as an invalid delivery of
// every peer that forwarded it, whose penalty grows with the square of the
// count, until the forwarder falls below the graylist threshold and
// GossipSub ignores it altogether. Ignore costs nothing: the validators
// Reject only what no honest relay forwards (validate.go: a bad origin
// signature, checked by GossipSub itself, or an unparseable envelope). The application-specific
// score is the peer's standing with us: negative for a peer that is not a
// verified member, and for members proportional to their effective trust.

const (
	gossipThreshold    = -10
	publishThreshold   = -50
	graylistThreshold  = -80
	unverifiedScore    = -60 // below publish: nothing is sent to it; above graylist: its junk is still judged
	trustScoreWeight   = 10  // a member with trust 1.0 scores +10, one at 0.5 scores +5
	invalidMsgWeight   = -10 // P4: -10 x (invalid deliveries)^2 per topic
	behaviourPenalty   = -1
	scoreDecayInterval = time.Second
)

// appScore is GossipSub's application-specific score of p, which it asks
// for on every RPC it receives and for every peer at every heartbeat. With
// Config.AppScoreTTL set, a score is reused for that long while p's
// Members.StandingVersion stays the same: a change of standing is seen at
// once, the passage of time alone within the TTL.
func (m *Mesh) appScore(p peer.ID) float64 {
	ttl := m.cfg.AppScoreTTL
	if ttl <= 0 {
		return m.standingScore(p)
	}
	now := m.cfg.Now()
	// The version is read before the standing: a change made while the
	// score is computed bumps it after, so what is kept is never newer
	// than its version says, and the next ask sees the change.
	ver := m.cfg.Members.StandingVersion(p)
	c := &m.memo
	c.mu.Lock()
	e, ok := c.m[p]
	c.mu.Unlock()
	if ok && e.ver == ver && !now.Before(e.at) && now.Sub(e.at) < ttl {
		return e.v
	}
	v := m.standingScore(p)
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxScoreMemo && !ok {
		c.m = map[peer.ID]memoEntry{}
	}
	c.m[p] = memoEntry{ver: ver, v: v, at: now}
	c.mu.Unlock()
	return v
}

// AppScore is the application-specific score GossipSub's peer scoring
// sees for p now: the standing of a verified member, weighted, or the
// score of a peer that is not one.
func (m *Mesh) AppScore(p peer.ID) float64 { return m.appScore(p) }

// standingScore is p's application-specific score from its standing now.
func (m *Mesh) standingScore(p peer.ID) float64 {
	mem, ok := m.cfg.Members.Member(p)
	if !ok || mem.Quarantined {
		return unverifiedScore
	}
	return trustScoreWeight * mem.TrustScore
}

// maxScoreMemo bounds the remembered scores; GossipSub asks about the
// peers it is connected to and those it retains scores of.
const maxScoreMemo = 1 << 14

// scoreMemo remembers application-specific scores (Config.AppScoreTTL).
type scoreMemo struct {
	mu sync.Mutex
	m  map[peer.ID]memoEntry
}

type memoEntry struct {
	ver uint64 // Members.StandingVersion when the score was computed
	v   float64
	at  time.Time
}

func peerScoreParams(app func(peer.ID) float64) (*ps.PeerScoreParams, *ps.PeerScoreThresholds) {
	return &ps.PeerScoreParams{
			SkipAtomicValidation: true,
			Topics:               map[string]*ps.TopicScoreParams{},
			TopicScoreCap:        50,
			AppSpecificScore:     app,
			AppSpecificWeight:    1,
			// Identity is the credential, not the address: nodes of a fleet
			// often share an IP (NAT, one host in tests), so colocation is
			// not penalized. Sybils are kept out by the handshake instead.
			IPColocationFactorWeight:  0,
			BehaviourPenaltyWeight:    behaviourPenalty,
			BehaviourPenaltyThreshold: 6,
			BehaviourPenaltyDecay:     ps.ScoreParameterDecay(10 * time.Minute),
			DecayInterval:             scoreDecayInterval,
			DecayToZero:               0.01,
			RetainScore:               10 * time.Minute,
		}, &ps.PeerScoreThresholds{
			GossipThreshold:             gossipThreshold,
			PublishThreshold:            publishThreshold,
			GraylistThreshold:           graylistThreshold,
			AcceptPXThreshold:           10,
			OpportunisticGraftThreshold: 3,
		}
}

// topicScoreParams weighs a topic: time in mesh and first deliveries earn a
// little, invalid deliveries cost a lot and are forgotten slowly.
func topicScoreParams() *ps.TopicScoreParams {
	return &ps.TopicScoreParams{
		SkipAtomicValidation:           true,
		TopicWeight:                    1,
		TimeInMeshWeight:               0.01,
		TimeInMeshQuantum:              time.Second,
		TimeInMeshCap:                  100,
		FirstMessageDeliveriesWeight:   0.5,
		FirstMessageDeliveriesDecay:    ps.ScoreParameterDecay(10 * time.Minute),
		FirstMessageDeliveriesCap:      20,
		InvalidMessageDeliveriesWeight: invalidMsgWeight,
		InvalidMessageDeliveriesDecay:  ps.ScoreParameterDecay(time.Hour),
	}
}

// Graylisted reports whether GossipSub's score of p is below the graylist
// threshold, and the score: p sent so many invalid messages that GossipSub
// ignores it. Its later messages then never reach a validator, so this is
// the only way the node hears of its misbehaviour.
func (m *Mesh) Graylisted(p peer.ID) (bool, float64) {
	s, ok := m.Scores()[p]
	return ok && s < graylistThreshold, s
}
