// Package trust is a node's trust book: what the node knows about each
// peer's trustworthiness, and the judgments it draws from that knowledge.
// It is a plain object fed events and a clock, in the manner of
// go-libp2p-pubsub's peer score, so that every time-driven rule (penalties
// that decay, evidence that fades, the grace a peer gets to attest, the
// hysteresis of quarantine) can be tested without a network and without
// waiting.
//
// # What it owns
//
// Per peer, keyed by its DID: the result of verifying its newest evidence
// and the time that evidence was made, the evidence itself, the decaying
// counts of its rejected messages and rate-limit violations
// (attest.Counter, half-life 10 minutes), the time this node first scored
// it, the time of the newest quarantine announcement about it sent or
// accepted, and the reason it is quarantined, if it is. Besides: when the
// reference values in force were applied, and the mesh's per-origin totals
// of messages dropped over the rate limit, as last read.
//
// # What it does not do
//
// It sends and receives nothing, logs nothing and counts no metrics: each
// event returns what changed ([Transition], [Judgment], an error) and the
// node acts on it. It does not parse or verify signed tokens (the node
// hands it parsed evidence and the attest.Verify result), does not check
// that a credential is valid (the caller passes the credential of a peer
// it verified), and does not know who the members are.
//
// # Using it
//
// [New] takes a [Config]: the evidence window, the reference values in
// force, and the hooks called when a standing changes. The node feeds it
// [Book.Rejected], [Book.RateLimited], [Book.Evidence], [Book.Reference]
// and [Book.Announcement]; it reads a peer's trust with [Book.Standing];
// it calls [Book.Reassess] after each event and once a second (evidence
// fades with time), and acts on the [Transition] returned: logs, metrics,
// key rotation, and a quarantine announcement, sent once per evidence
// ([Book.ClaimAnnouncement]).
//
// A Book is safe for concurrent use. Every method takes the time now as an
// argument.
package trust
