package did

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/sha512"
	"fmt"
	"io"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Identity is a node's private Ed25519 key together with its DID.
type Identity struct {
	priv ed25519.PrivateKey
	did  DID
}

// GenerateIdentity creates a new identity with randomness from rand
// (crypto/rand.Reader in production).
func GenerateIdentity(rand io.Reader) (*Identity, error) {
	_, priv, err := ed25519.GenerateKey(rand)
	if err != nil {
		return nil, fmt.Errorf("generate Ed25519 key: %w", err)
	}
	return identityFromKey(priv), nil
}

// IdentityFromSeed returns the identity of a 32-byte Ed25519 seed.
func IdentityFromSeed(seed []byte) (*Identity, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("seed is %d bytes, want %d", len(seed), ed25519.SeedSize)
	}
	return identityFromKey(ed25519.NewKeyFromSeed(seed)), nil
}

func identityFromKey(priv ed25519.PrivateKey) *Identity {
	return &Identity{priv: priv, did: DIDFromPublicKey(priv.Public().(ed25519.PublicKey))}
}

// DID returns the identity's DID.
func (id *Identity) DID() DID { return id.did }

// PeerID returns the identity's libp2p peer ID.
func (id *Identity) PeerID() peer.ID {
	p, err := id.did.PeerID()
	if err != nil {
		panic("did: peer ID of a valid identity: " + err.Error()) // cannot happen for a 32-byte key
	}
	return p
}

// PublicKey returns the Ed25519 public key.
func (id *Identity) PublicKey() ed25519.PublicKey { return id.did.PublicKey() }

// LibP2PKey returns the private key in go-libp2p's type, for the host's identity.
func (id *Identity) LibP2PKey() crypto.PrivKey {
	k, err := crypto.UnmarshalEd25519PrivateKey(id.priv)
	if err != nil {
		panic("did: libp2p key of a valid identity: " + err.Error())
	}
	return k
}

// Seed returns the 32-byte Ed25519 seed. It is secret.
func (id *Identity) Seed() []byte { return id.priv.Seed() }

// Sign signs msg under a domain-separation context. Every kind of signed
// object in ztmesh has its own context string (see the Domain* constants), so
// a signature made for one kind can never verify as another. The signed bytes
// are context || 0x00 || msg.
func (id *Identity) Sign(context string, msg []byte) []byte {
	return ed25519.Sign(id.priv, domainMessage(context, msg))
}

// VerifyDomain checks a signature made by [Identity.Sign] with the same context.
func VerifyDomain(pub ed25519.PublicKey, context string, msg, sig []byte) bool {
	if len(pub) != ed25519.PublicKeySize {
		return false
	}
	return ed25519.Verify(pub, domainMessage(context, msg), sig)
}

func domainMessage(context string, msg []byte) []byte {
	b := make([]byte, 0, len(context)+1+len(msg))
	b = append(b, context...)
	b = append(b, 0)
	return append(b, msg...)
}

// signJWS signs a JWS signing input. JWS has its own fixed format, so the
// signature covers the input as RFC 7515 defines it; the header's "typ"
// separates the kinds of JWS ztmesh makes.
func (id *Identity) signJWS(signingInput []byte) []byte {
	return ed25519.Sign(id.priv, signingInput)
}

// KeyAgreement returns the X25519 private key that corresponds to the DID's
// keyAgreement key. It is derived from the Ed25519 seed as RFC 8032 derives
// the signing scalar (the first half of SHA-512(seed)); X25519 clamps it. Its
// public key equals the one the did:key method derives from the Ed25519
// public key (see [DID.KeyAgreementKey]); a test checks this.
func (id *Identity) KeyAgreement() *ecdh.PrivateKey {
	h := sha512.Sum512(id.priv.Seed())
	k, err := ecdh.X25519().NewPrivateKey(h[:32])
	if err != nil {
		panic("did: X25519 key from a 32-byte scalar: " + err.Error())
	}
	return k
}
