// Package node is the ztmesh peer daemon as a library: the composition root
// that wires a libp2p host to the node's identity, credentials and (in later
// layers) policy and zones.
//
// A Node is a libp2p host (TCP and QUIC; TLS 1.3 and Noise; yamux; identify
// and ping) whose identity is the node's DID key. On every new connection both
// sides run the credential handshake (protocol /ztmesh/auth/1.0.0, see
// docs/PROTOCOL.md): each presents its credential, and the other accepts it
// only if it verifies against the pinned issuers and the revocation list and
// its subject is the authenticated remote peer. Verified peers go into the
// Registry with their claims and expiry.
//
// Gatekeeping: the connection gater refuses revoked DIDs at dial and accept
// time; a peer that has not completed the handshake within the grace period
// is disconnected; a verified peer whose credential expires is dropped unless
// it presented a renewed one. Revocation lists reloaded from file (on change
// or SIGHUP, see Node.ReloadRevocations) take effect at once.
//
// The node serves a local HTTP/JSON API for agents and the CLI on a Unix
// socket in its data directory (or on loopback TCP with a bearer token); the
// types and a client are in package node/api.
//
// Inside, Node composes the host, config, API, metrics and reloads with
// types that own their state (docs/ARCHITECTURE.md): the roster (every
// member known, and the member announcement format), the trust book
// (node/internal/trust: attestation results, penalties, quarantine), the
// controller (revocations, policy and reference values in force) and the
// handshakes (the credential handshake and its grace timers).
//
// What the node does not do: hold crypto or policy logic of its own. Keys and
// credentials are package did's; policy decisions package policy's.
package node
