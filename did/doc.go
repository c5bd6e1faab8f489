// Package did holds a ztmesh node's identity and the credentials that say what
// it may do.
//
// # Identities
//
// A node has one Ed25519 key. Its did:key DID and its libp2p peer ID are two
// spellings of the same public key: [DIDFromPeerID] and [DID.PeerID] convert
// between them without loss. The X25519 key that [Identity.KeyAgreement]
// returns is the keyAgreement key that the did:key method derives from the same
// Ed25519 key; later layers seal zone keys to it.
//
// [SaveIdentity] and [LoadIdentity] keep the key in a data directory. The key
// file is written 0600 and a group- or world-readable file is refused.
// With a passphrase the file is encrypted with age (scrypt).
//
// # Credentials
//
// An issuer (a node whose DID operators pin as a trust anchor) signs a W3C
// Verifiable Credential as a JWT (EdDSA) with [Issue]. Its subject is the
// holder's DID; its claims ([Claims]) are the holder's role, trust score, zones,
// software version and capabilities.
//
// A [Verifier] checks a credential against the pinned issuers at a given time.
// It does not trust the JWT library to do that: it caps the size, checks the
// header (alg EdDSA only, the key ID belongs to the issuer), verifies the
// Ed25519 signature over the exact bytes received, checks nbf/exp with a small
// clock skew, cross-checks the JWT registered claims against the embedded
// credential, and validates every claim it relies on. Each kind of rejection
// wraps its own sentinel error (see errors.go), and the message says what to do.
//
// # Revocation
//
// A [RevocationList] is a signed, versioned list of revoked credential IDs and
// subject DIDs. A [Revocations] set keeps the newest list from each pinned
// issuer and refuses a list older than one it already has (no rollback).
// A Verifier given a Revocations rejects revoked credentials.
//
// This package does not import the libp2p host or pubsub: only the peer ID and
// key types of go-libp2p's core.
package did
