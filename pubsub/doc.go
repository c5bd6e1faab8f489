// Package pubsub carries ztmesh zone traffic over GossipSub: topics per zone
// and channel, a control topic per mesh, messages signed by their origin and
// sealed for the zone, and OPA policy deciding who may publish and who may
// subscribe.
//
// # Topics and gating
//
// A zone topic is ztmesh/<mesh>/zone/<zone>/<channel>; the control topic is
// ztmesh/<mesh>/control. A remote peer counts as a subscriber of a topic
// only while it is a verified member (its credential checked in the
// handshake) and the policy allows it to subscribe there: the GossipSub peer
// filter asks on every path that chooses peers (mesh, fanout, gossip,
// IWANT, GRAFT). Flood publishing, floodsub peers and direct peers, which
// GossipSub does not filter, are turned off, and GossipSub runs on a host
// whose streams exist only with verified members (gate.go): a peer that
// subscribes before GossipSub knows its protocol would otherwise be taken
// for a floodsub peer and sent messages unfiltered.
//
// # Envelope
//
// GossipSub strict signing signs every message with the origin's DID key
// (its libp2p key) and every hop verifies it. The data is a sealed envelope
// (see envelope.go): AES-256-GCM under the origin's sender key for the
// topic, with topic, origin, key ID, sequence number and time in the
// associated data. A receiver that lacks a sender key pulls it from the
// origin over /ztmesh/keys/1.0.0; the origin seals it to the receiver's key
// package with HPKE (ML-KEM-768 + X25519 by default) after checking that the
// policy lets the receiver subscribe. Keys rotate on a schedule and at once
// when a member is revoked or the policy changes.
//
// # Validation
//
// A received zone message is accepted only if its origin is a verified
// member whose policy allows publishing on the topic, its time is within
// the allowed skew, its ciphertext opens under the origin's key, and its
// sequence number was not seen before under that key (a sliding window that
// outlives GossipSub's seen-cache), and its origin is within its rate
// limit on the topic (a token bucket per origin and topic, see RateLimit).
// Forged, tampered, stale and replayed messages are Rejected, so
// GossipSub's scoring counts them against the forwarder; so are messages of
// an origin the node has quarantined or whose publishing the policy refuses,
// when the origin sent them itself (forwarded, they are Ignored: the
// verdict rests on this node's own view of the origin). A message whose key
// cannot be had, or over its origin's rate limit, is Ignored;
// Stats.RateLimited counts the latter per origin.
//
// # Control
//
// The control topic carries issuer-signed revocation lists and policy
// bundles. They authenticate themselves, so any member may relay them; each
// node applies a newer one at once and ignores older ones. A node that
// connects to a peer receives the peer's current lists and bundle over
// /ztmesh/sync/1.0.0, so late joiners catch up.
//
// What this package does not do: verify credentials (package did, via the
// node's handshake) or decide policy (package policy). It reaches the
// node's verified peers through the Members interface.
package pubsub
