package pubsub

import (
	"time"

	ps "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// GossipSub peer scoring. What a Reject does to a forwarder depends on it:
// every message our validators reject (forged, unauthorized, tampered,
// stale, replayed) counts as an invalid delivery, whose penalty grows with
// the square of the count, until the forwarder falls below the graylist
// threshold and GossipSub ignores it altogether. The application-specific
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

func (m *Mesh) appScore(p peer.ID) float64 {
	mem, ok := m.cfg.Members.Member(p)
	if !ok || mem.Quarantined {
		return unverifiedScore
	}
	return trustScoreWeight * mem.TrustScore
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
