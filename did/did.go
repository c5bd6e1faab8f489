package did

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"fmt"
	"strings"

	"github.com/hyperledger/aries-framework-go/pkg/vdr/fingerprint"
	vdrkey "github.com/hyperledger/aries-framework-go/pkg/vdr/key"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// maxDIDLen bounds the text form accepted by ParseDID. An Ed25519 did:key is
// 56 characters; anything much longer is not one.
const maxDIDLen = 128

const base58Alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

// ed25519DIDLen is the length of every Ed25519 did:key: "did:key:z" and the
// 47 base58 digits of 0xed 0x01 and a 32-byte key.
const ed25519DIDLen = 56

// decodeFingerprint calls aries' multibase key decoder, turning a panic in
// that archived code into an error: a hostile string must never crash a node.
func decodeFingerprint(mb string) (raw []byte, code uint64, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("undecodable key fingerprint")
		}
	}()
	return fingerprint.PubKeyFromFingerprint(mb)
}

// DID is the did:key identifier of an Ed25519 public key. The zero value is
// not a valid DID (IsZero reports true). DIDs are comparable and may be used
// as map keys: two DIDs are equal exactly when their keys are.
type DID struct {
	key [ed25519.PublicKeySize]byte
	// s is the text form, computed once: String runs on every message and
	// policy decision, and base58 is not free. It is a function of key, so
	// equality of DIDs is still equality of keys.
	s string
}

// ParseDID parses the text form "did:key:z6Mk...". Only Ed25519 keys are
// accepted: ztmesh identities are Ed25519, so any other key type is an error.
func ParseDID(s string) (DID, error) {
	if len(s) > maxDIDLen {
		return DID{}, fmt.Errorf("%w: %d characters is too long", ErrBadDID, len(s))
	}
	if !strings.HasPrefix(s, "did:key:z") {
		return DID{}, fmt.Errorf("%w: %q does not start with did:key:z", ErrBadDID, s)
	}
	mb := strings.TrimPrefix(s, "did:key:")
	// Only the exact shape of an Ed25519 did:key reaches aries' decoder:
	// btcutil's base58 decoder panics on non-ASCII input, and aries'
	// fingerprint decoder slices out of range on short keys of other types
	// (both found by fuzzing). Every Ed25519 did:key is "did:key:z6Mk" and
	// 56 characters long.
	if len(s) != ed25519DIDLen || !strings.HasPrefix(s, "did:key:z6Mk") {
		return DID{}, fmt.Errorf("%w: %q is not an Ed25519 did:key (did:key:z6Mk..., %d characters)", ErrBadDID, truncate(s), ed25519DIDLen)
	}
	if strings.Trim(mb[1:], base58Alphabet) != "" {
		return DID{}, fmt.Errorf("%w: %q has characters outside base58btc", ErrBadDID, s)
	}
	raw, code, err := decodeFingerprint(mb)
	if err != nil {
		return DID{}, fmt.Errorf("%w: %q: %v", ErrBadDID, s, err)
	}
	if code != fingerprint.ED25519PubKeyMultiCodec || len(raw) != ed25519.PublicKeySize {
		return DID{}, fmt.Errorf("%w: %q holds key type 0x%x, want Ed25519", ErrBadDID, s, code)
	}
	d := DIDFromPublicKey(ed25519.PublicKey(raw))
	// The multibase text of a key is canonical; refuse any other spelling so
	// that one key has exactly one DID string.
	if d.String() != s {
		return DID{}, fmt.Errorf("%w: %q is not in canonical form", ErrBadDID, s)
	}
	return d, nil
}

// MustParseDID is ParseDID for constants in tests and examples; it panics on error.
func MustParseDID(s string) DID {
	d, err := ParseDID(s)
	if err != nil {
		panic(err)
	}
	return d
}

// DIDFromPublicKey returns the DID of an Ed25519 public key. It panics if pub
// is not ed25519.PublicKeySize bytes long, as crypto/ed25519 does.
func DIDFromPublicKey(pub ed25519.PublicKey) DID {
	if len(pub) != ed25519.PublicKeySize {
		panic(fmt.Sprintf("did: bad Ed25519 public key length %d", len(pub)))
	}
	var d DID
	copy(d.key[:], pub)
	d.s, _ = fingerprint.CreateDIDKey(d.key[:])
	return d
}

// DIDFromPeerID returns the DID of a libp2p peer ID. It fails for peer IDs
// whose key is not Ed25519 (RSA, secp256k1 and ECDSA peers have no ztmesh
// identity) and for peer IDs that do not embed their key.
func DIDFromPeerID(id peer.ID) (DID, error) {
	pub, err := id.ExtractPublicKey()
	if err != nil {
		return DID{}, fmt.Errorf("%w: peer %s: %v", ErrBadDID, id, err)
	}
	if pub.Type() != crypto.Ed25519 {
		return DID{}, fmt.Errorf("%w: peer %s has a %s key", ErrBadDID, id, pub.Type())
	}
	raw, err := pub.Raw()
	if err != nil {
		return DID{}, fmt.Errorf("%w: peer %s: %v", ErrBadDID, id, err)
	}
	return DIDFromPublicKey(raw), nil
}

// IsZero reports whether d is the zero DID.
func (d DID) IsZero() bool { return d.s == "" }

// String returns the did:key text form, or "" for the zero DID.
func (d DID) String() string { return d.s }

// KeyID returns the DID URL of the key's verification method
// ("did:key:z6Mk...#z6Mk..."), used as the JWS "kid" header.
func (d DID) KeyID() string {
	if d.IsZero() {
		return ""
	}
	_, kid := fingerprint.CreateDIDKey(d.key[:])
	return kid
}

// PublicKey returns the Ed25519 public key.
func (d DID) PublicKey() ed25519.PublicKey {
	if d.IsZero() {
		return nil
	}
	return append(ed25519.PublicKey(nil), d.key[:]...)
}

// PeerID returns the libp2p peer ID of the same key.
func (d DID) PeerID() (peer.ID, error) {
	if d.IsZero() {
		return "", fmt.Errorf("%w: zero DID", ErrBadDID)
	}
	pub, err := crypto.UnmarshalEd25519PublicKey(d.key[:])
	if err != nil {
		return "", err
	}
	return peer.IDFromPublicKey(pub)
}

// KeyAgreementKey resolves the DID with the did:key method and returns the
// X25519 keyAgreement key its document lists. Resolution derives the key on
// every call (tens of microseconds); callers on a hot path should cache it.
func (d DID) KeyAgreementKey() (*ecdh.PublicKey, error) {
	if d.IsZero() {
		return nil, fmt.Errorf("%w: zero DID", ErrBadDID)
	}
	res, err := vdrkey.New().Read(d.String())
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", d, err)
	}
	if len(res.DIDDocument.KeyAgreement) != 1 {
		return nil, fmt.Errorf("resolve %s: %d keyAgreement keys, want 1", d, len(res.DIDDocument.KeyAgreement))
	}
	return ecdh.X25519().NewPublicKey(res.DIDDocument.KeyAgreement[0].VerificationMethod.Value)
}

// MarshalText implements encoding.TextMarshaler.
func (d DID) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *DID) UnmarshalText(b []byte) error {
	p, err := ParseDID(string(b))
	if err != nil {
		return err
	}
	*d = p
	return nil
}
