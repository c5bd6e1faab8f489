package pubsub

import (
	"context"
	"encoding/binary"
	"errors"

	ps "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/policy"
)

// Validation outcomes. Reject tells GossipSub's scoring that the forwarder
// sent something invalid; Ignore drops without blame (originFault).
const (
	accept = ps.ValidationAccept
	reject = ps.ValidationReject
	ignore = ps.ValidationIgnore
)

// validateZone is the validator of every zone topic. GossipSub has already
// checked the origin's signature (strict signing) when it runs.
func (m *Mesh) validateZone(ctx context.Context, from peer.ID, msg *ps.Message) ps.ValidationResult {
	res, reason := m.checkZone(ctx, from, msg)
	if res == reject && m.cfg.OnReject != nil {
		m.cfg.OnReject(from, reason)
	}
	if res != accept {
		m.stats.reject(reason)
		// A flood is not logged message by message: Stats.RateLimited
		// counts it per origin, and the node reports it.
		if reason != ReasonRateLimited {
			m.log.Debug("zone message dropped", "event_type", "message_rejected", "peer", from.String(),
				"origin", msg.GetFrom().String(), "topic", msg.GetTopic(), "reason", reason, "ignored", res == ignore)
		}
	}
	return res
}

func (m *Mesh) checkZone(ctx context.Context, from peer.ID, msg *ps.Message) (ps.ValidationResult, string) {
	t, ok := m.topicOf(msg.GetTopic())
	if !ok || t.IsControl() {
		return reject, ReasonUnknownTopic
	}
	origin := msg.GetFrom()

	// Our own publication, validated synchronously inside Publish, which
	// already decided, sealed and knows the payload. (ReceivedFrom is our
	// own ID only for local publications: GossipSub sets it to the sending
	// peer for everything from the network.)
	if origin == m.self && msg.ReceivedFrom == m.self && len(msg.Data) >= headerSize {
		if d, ok := m.localPub.LoadAndDelete(binary.BigEndian.Uint64(msg.Data[10:18])); ok {
			// Record the sequence number, so that this message replayed to
			// us later from the network is still refused.
			var id KeyID
			copy(id[:], msg.Data[2:10])
			if st, err := m.receiverKey(ctx, m.self, id, msg.GetTopic()); err == nil {
				st.mu.Lock()
				st.win.check(d.(*Delivery).Seq)
				st.mu.Unlock()
			}
			msg.ValidatorData = d
			return accept, ""
		}
	}

	// The origin must be a verified member allowed to publish here. That
	// verdict rests on this node's own view of the origin (its effective
	// trust, a local quarantine), which a forwarder need not share: only the
	// origin itself is blamed for it, when it sent the message itself.
	var subject policy.Subject
	var originDID did.DID
	limit := m.cfg.RateLimit
	if origin == m.self {
		subject, originDID = m.ownSubject(), m.cfg.Identity.DID()
	} else {
		mem, ok := m.cfg.Members.Member(origin)
		if !ok {
			if from == origin && m.h.Network().Connectedness(origin) == network.Connected {
				// It talks to us directly without a credential. Not a
				// Reject: peers that verified it forward the same message.
				return ignore, ReasonUnverifiedOrigin
			}
			return ignore, ReasonUnknownOrigin
		}
		if mem.Quarantined {
			return m.blameSender(from, origin, ReasonQuarantinedOrigin)
		}
		subject, originDID = mem.Subject(), mem.Credential.Subject
		limit = mem.RateLimit.normalized(limit)
	}
	if d := m.decide(policy.ActionPublish, t, subject); !d.Allow {
		return m.blameSender(from, origin, ReasonUnauthorized)
	}
	// From here on, every verdict is either the origin's doing or depends
	// on when and by which path the message reached us; see originFault
	// and blameSender for who is blamed.
	env, err := parseEnvelope(msg.Data)
	if err != nil {
		if from == origin {
			// The one verdict every honest node reaches alike on the
			// same bytes: no honest relay forwards this message, so
			// GossipSub's penalty of its forwarders hits no honest one.
			return reject, ReasonMalformed
		}
		return m.originFault(from, origin, ReasonMalformed)
	}

	now := m.cfg.Now()
	switch d := now.Sub(env.time); {
	case d < -m.cfg.MaxSkew:
		// From the future: no relay can make one.
		return m.originFault(from, origin, ReasonStale)
	case d > m.cfg.MaxSkew:
		// Too old: any relay can delay an authentic message, and an
		// honest one forwards what was fresh by its own clock.
		return m.blameSender(from, origin, ReasonStale)
	}

	st, err := m.receiverKey(ctx, origin, env.keyID, t.String())
	switch {
	case errors.Is(err, errKeyTopic):
		return m.originFault(from, origin, ReasonWrongTopicKey)
	case errors.Is(err, errKeyEquivocation):
		return m.originFault(from, origin, ReasonKeyEquivocation)
	case err != nil:
		return ignore, ReasonKeyUnavailable
	}
	pt, err := env.open(st.key, t.String(), origin)
	if err != nil {
		return m.originFault(from, origin, ReasonBadCiphertext)
	}
	st.mu.Lock()
	fresh := st.win.check(env.seq)
	st.lastUsed = now
	st.mu.Unlock()
	if !fresh {
		// Anyone who saw the message can replay it.
		return m.blameSender(from, origin, ReasonReplay)
	}
	if origin != m.self && !m.limits.allow(origin, t.String(), limit, now) {
		m.stats.rateLimit(origin)
		return ignore, ReasonRateLimited
	}
	msg.ValidatorData = &Delivery{Origin: originDID, Zone: t.Zone, Channel: t.Channel, Seq: env.seq, Time: env.time, Data: pt}
	return accept, ""
}

// Who is blamed for an invalid zone message. Under strict signing a
// forwarder cannot alter a message: topic, origin, GossipSub sequence
// number and data (the envelope: key ID, sequence number, time, ciphertext)
// are all under the origin's signature, checked before any validator runs.
// So a verdict on those bytes is the origin's doing, or a matter of when
// and how often the message reached us, or of this node's own view of the
// origin; never of which honest peer handed it on.
//
// Such verdicts are therefore Ignore for GossipSub, whoever sent the
// message, and the blame goes through the node's trust book instead. A
// Reject counts as an invalid delivery (P4) not only of the peer that
// handed the message over but of every peer that forwarded the same
// message, before or after (GossipSub's delivery record): rejecting a
// message straight from its origin still penalized the honest relays that
// forwarded the same message to us, which had every reason to accept it
// (they held the right key, their clock put it in the window). Enough of
// those graylist a relay, and the node quarantines a graylisted peer: an
// origin that handed most members a wrong key got the honest relays
// between it and them quarantined, while it kept its own standing (found
// by the key-equivocation attack row, which still framed two relays when
// only forwarded copies were Ignored). The one exception is an envelope
// that does not parse, sent by its origin: every honest node reaches that
// verdict alike, so no honest relay forwards such a message.

// blameSender is the verdict on a message that may not be delivered for a
// reason the peers forwarding it need not share: Ignore, and counted
// against the origin (OnReject) when it sent the message itself.
func (m *Mesh) blameSender(from, origin peer.ID, reason string) (ps.ValidationResult, string) {
	if from == origin && m.cfg.OnReject != nil {
		m.cfg.OnReject(origin, reason)
	}
	return ignore, reason
}

// originFault is the verdict on a message invalid in a way only its origin
// can cause, given strict signing: an envelope that does not parse, a
// ciphertext that does not open under the key its ID names, a key ID used
// on two topics or naming a key it does not match, a time ahead of ours by
// more than MaxSkew. Ignore; counted against the origin whoever sent it
// (OnReject when the origin sent it itself, OnMisbehave when a relay did).
//
// A time behind ours by more than MaxSkew and a replay are not its fault:
// any relay can delay or repeat an authentic message, so such a message
// counts against its origin only when the origin sent it itself
// (blameSender); blaming the origin for a relayed one would let any relay
// frame an honest origin by holding its messages back.
func (m *Mesh) originFault(from, origin peer.ID, reason string) (ps.ValidationResult, string) {
	if from == origin {
		return m.blameSender(from, origin, reason)
	}
	if m.cfg.OnMisbehave != nil {
		m.cfg.OnMisbehave(origin, reason)
	}
	return ignore, reason
}

// validateControl applies issuer-signed control content. It authenticates
// itself, so the origin's role does not matter; content that does not
// verify is rejected, content already in force or older is ignored.
func (m *Mesh) validateControl(ctx context.Context, from peer.ID, msg *ps.Message) ps.ValidationResult {
	cm, err := decodeControl(msg.Data)
	if err != nil {
		m.stats.reject(ReasonMalformedControl)
		return reject
	}
	if msg.ReceivedFrom == m.self {
		return accept // our own publication: publishControl applied it already
	}
	if over, reason := m.overControlLimit(from, msg, cm.Type); over {
		m.stats.reject(reason)
		return ignore
	}
	changed, err := m.applyControl(msg.GetFrom(), cm)
	switch {
	case err != nil && isRollback(err):
		return ignore
	case err != nil && judgedHere(err):
		// Authentic, but expired or revoked by this node's clock and
		// lists, which the relays need not share yet: Ignore even when
		// the origin sent it, since a Reject would penalize every relay
		// that forwarded the same message too.
		m.stats.reject(ReasonInvalidControl)
		return ignore
	case err != nil:
		m.stats.reject(ReasonInvalidControl)
		m.log.Warn("control message refused", "event_type", "control_refused", "peer", from.String(),
			"origin", msg.GetFrom().String(), "type", cm.Type, "reason", err.Error())
		return reject
	case !changed:
		// Already in force here, and authentic: spread it all the same. A
		// node often holds content before its GossipSub copy arrives (a
		// new peer's sync hands over the whole member directory), and if
		// every such node dropped the copy, announcements stopped one hop
		// from their origin (found by the propagation simulation: 8 of 29
		// nodes knew a member). GossipSub's seen-cache forwards each
		// message once per node.
		return accept
	}
	m.log.Info("control message applied", "event_type", "control_applied", "type", cm.Type, "origin", msg.GetFrom().String())
	m.relay(cm.Type, cm.Token, from)
	return accept
}

func (m *Mesh) applyControl(origin peer.ID, cm *controlMessage) (bool, error) {
	switch cm.Type {
	case controlRevocations:
		return m.cfg.Control.ApplyRevocations(cm.Token)
	case controlPolicy:
		return m.cfg.Control.ApplyPolicyBundle(cm.Token)
	case controlReference:
		return m.cfg.Control.ApplyReference(cm.Token)
	case controlEvidence:
		return m.cfg.Control.ApplyEvidence(origin, cm.Token)
	case controlMember:
		return m.cfg.Directory.ApplyMember("", cm.Token)
	case controlQuarantine:
		return m.cfg.Control.ApplyQuarantine(cm.Token)
	}
	return false, errors.New("unknown control type")
}

// judgedHere reports a refusal of authentic control content that rests on
// this node's own clock or revocation lists: a credential (of a member
// announcement) expired, not yet valid or revoked here, a key package
// expired here. A relay that forwarded the content judged it by its own
// clock and lists, which may lag or lead ours by a little: such content is
// Ignored, even from its origin (a Reject would penalize every relay of the
// same message too). (Older-than-held is isRollback, always Ignored.) A signature that does
// not verify, or content that does not decode, stays a Reject: an honest
// relay validates what it forwards and would not have forwarded it.
func judgedHere(err error) bool {
	return errors.Is(err, did.ErrExpired) || errors.Is(err, did.ErrNotYetValid) ||
		errors.Is(err, did.ErrRevoked) || errors.Is(err, ErrKeyPackageExpired) || errors.Is(err, ErrJudgedHere)
}

// isRollback reports content that is Ignored: older than what is in force,
// or not acted on here.
func isRollback(err error) bool {
	return errors.Is(err, did.ErrRollback) || errors.Is(err, policy.ErrRollback) || errors.Is(err, ErrStale) || errors.Is(err, ErrIgnored)
}

// Reasons a message is rejected or ignored. They are log fields, the
// labels of the rejection metrics (Stats) and what Config.OnReject is
// told, so they are stable: a new one may be added, none renamed.
const (
	// ReasonUnknownTopic: the topic is not a zone topic of this mesh.
	ReasonUnknownTopic = "unknown topic"
	// ReasonUnverifiedOrigin: the origin talks to us directly without a credential.
	ReasonUnverifiedOrigin = "unverified origin"
	// ReasonUnknownOrigin: the origin is not a member this node holds (Ignored).
	ReasonUnknownOrigin = "unknown origin"
	// ReasonQuarantinedOrigin: the origin is quarantined here.
	ReasonQuarantinedOrigin = "quarantined origin"
	// ReasonUnauthorized: the policy does not let the origin publish there.
	ReasonUnauthorized = "unauthorized"
	// ReasonMalformed: the envelope does not decode or its signature fails.
	ReasonMalformed = "malformed"
	// ReasonStale: the message time is outside MaxSkew.
	ReasonStale = "stale"
	// ReasonWrongTopicKey: the sender key is bound to another topic.
	ReasonWrongTopicKey = "key for another topic"
	// ReasonKeyUnavailable: the sender key could not be pulled (Ignored).
	ReasonKeyUnavailable = "key unavailable"
	// ReasonKeyEquivocation: the origin sealed us a sender key that the
	// message's key ID does not name.
	ReasonKeyEquivocation = "key equivocation"
	// ReasonBadCiphertext: the payload does not open with the sender key.
	ReasonBadCiphertext = "bad ciphertext"
	// ReasonReplay: the message was seen before.
	ReasonReplay = "replay"
	// ReasonRateLimited: the origin is over its rate limit (Ignored).
	ReasonRateLimited = "rate limited"
	// ReasonControlRateLimited: the origin is over its allowance of control
	// content or member announcements (Ignored).
	ReasonControlRateLimited = "control rate limited"
	// ReasonMalformedControl: a control message does not decode.
	ReasonMalformedControl = "malformed control"
	// ReasonInvalidControl: a control message is refused by the node.
	ReasonInvalidControl = "invalid control"
	// ReasonInvalidAnnouncement: a member announcement is refused.
	ReasonInvalidAnnouncement = "invalid member announcement"
)
