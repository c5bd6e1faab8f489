package pubsub

import (
	"crypto/hpke"
	"crypto/mlkem"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/internal/wire"
)

// MaxKeyPackageSize caps an encoded key package (a hybrid one is about 1.8 KB).
const MaxKeyPackageSize = 4 << 10

// keyPackageTTL is how long a key package is valid. Key packages are made
// fresh for every process, so this only bounds a very long-running one.
const keyPackageTTL = 30 * 24 * time.Hour

// ErrKeyPackage is wrapped by every key package rejection.
var ErrKeyPackage = errors.New("invalid key package")

// ErrKeyPackageExpired is wrapped, with ErrKeyPackage, by the rejection of
// a key package past its expiry.
var ErrKeyPackageExpired = errors.New("key package expired")

// KeyPackage is a member's public HPKE key, signed by its DID key, that
// other members seal their sender keys to. Nodes present it in the
// credential handshake next to their credential.
type KeyPackage struct {
	DID       did.DID
	Suite     string // SuiteHybrid or SuiteX25519
	Public    []byte // the HPKE public key, serialized
	Expires   time.Time
	Signature []byte

	public hpke.PublicKey
}

type keyPackageJSON struct {
	V         int    `json:"v"`
	DID       string `json:"did"`
	Suite     string `json:"suite"`
	Public    []byte `json:"public"`
	Expires   int64  `json:"expires"`
	Signature []byte `json:"sig"`
}

// signedBytes is what the DID key signs: each field length-prefixed, so no
// two different packages share signed bytes.
func (kp *KeyPackage) signedBytes() []byte {
	var b []byte
	for _, f := range [][]byte{[]byte(kp.DID.String()), []byte(kp.Suite), kp.Public} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return binary.BigEndian.AppendUint64(b, uint64(kp.Expires.Unix()))
}

// Marshal encodes the key package as JSON.
func (kp *KeyPackage) Marshal() []byte {
	b, _ := json.Marshal(keyPackageJSON{V: 1, DID: kp.DID.String(), Suite: kp.Suite, Public: kp.Public,
		Expires: kp.Expires.Unix(), Signature: kp.Signature})
	return b
}

// ParseKeyPackage decodes and verifies a key package: it must be signed by
// holder's DID key, of a known suite, and not expired at now.
func ParseKeyPackage(data []byte, holder did.DID, now time.Time) (*KeyPackage, error) {
	if len(data) > MaxKeyPackageSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrKeyPackage, len(data), MaxKeyPackageSize)
	}
	var j keyPackageJSON
	if err := wire.DecodeStrict(data, &j); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeyPackage, err)
	}
	if j.V != 1 {
		return nil, fmt.Errorf("%w: version %d", ErrKeyPackage, j.V)
	}
	d, err := did.ParseDID(j.DID)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeyPackage, err)
	}
	if d != holder {
		return nil, fmt.Errorf("%w: for %s, presented by %s", ErrKeyPackage, d, holder)
	}
	kem, err := kemFor(j.Suite)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeyPackage, err)
	}
	if _, err := kem.NewPublicKey(j.Public); err != nil {
		return nil, fmt.Errorf("%w: public key: %v", ErrKeyPackage, err)
	}
	// The parsed key is not kept: an expanded ML-KEM-768 key is ~4 KB, a
	// node holds the key package of every member it knows, and it needs the
	// key only when it seals a sender key for that member (publicKey).
	kp := &KeyPackage{DID: d, Suite: j.Suite, Public: j.Public, Expires: time.Unix(j.Expires, 0), Signature: j.Signature}
	if !now.Before(kp.Expires) {
		return nil, fmt.Errorf("%w: %w at %s", ErrKeyPackage, ErrKeyPackageExpired, kp.Expires.UTC().Format(time.RFC3339))
	}
	if !did.VerifyDomain(d.PublicKey(), labelKeyPackage, kp.signedBytes(), kp.Signature) {
		return nil, fmt.Errorf("%w: signature does not verify with the key of %s", ErrKeyPackage, d)
	}
	return kp, nil
}

// keyMaterial is a node's own HPKE private key and its signed key package.
// publicKey returns the HPKE public key, parsing it again if it was not
// kept. Public was checked to parse when the package was.
func (kp *KeyPackage) publicKey() (hpke.PublicKey, error) {
	if kp.public != nil {
		return kp.public, nil
	}
	kem, err := kemFor(kp.Suite)
	if err != nil {
		return nil, err
	}
	return kem.NewPublicKey(kp.Public)
}

type keyMaterial struct {
	priv hpke.PrivateKey
	pkg  *KeyPackage
	enc  []byte // pkg.Marshal()
}

// newKeyMaterial makes a fresh HPKE key for id. The X25519 half is the
// DID's keyAgreement key; the ML-KEM-768 half (hybrid suite) is new for
// every process.
func newKeyMaterial(id *did.Identity, suite string, now time.Time) (*keyMaterial, error) {
	var priv hpke.PrivateKey
	var err error
	switch suite {
	case SuiteHybrid:
		dk, kerr := mlkem.GenerateKey768()
		if kerr != nil {
			return nil, kerr
		}
		priv, err = hpke.NewHybridPrivateKey(dk, id.KeyAgreement())
	case SuiteX25519:
		priv, err = hpke.NewDHKEMPrivateKey(id.KeyAgreement())
	default:
		_, err = kemFor(suite)
	}
	if err != nil {
		return nil, fmt.Errorf("key package: %w", err)
	}
	kp := &KeyPackage{DID: id.DID(), Suite: suite, Public: priv.PublicKey().Bytes(),
		Expires: now.Add(keyPackageTTL).Truncate(time.Second), public: priv.PublicKey()}
	kp.Signature = id.Sign(labelKeyPackage, kp.signedBytes())
	return &keyMaterial{priv: priv, pkg: kp, enc: kp.Marshal()}, nil
}

// NewKeyPackage makes a fresh signed key package for id and returns its
// encoding (for tools and tests; a Mesh makes its own).
func NewKeyPackage(id *did.Identity, suite string, now time.Time) ([]byte, error) {
	km, err := newKeyMaterial(id, suite, now)
	if err != nil {
		return nil, err
	}
	return km.enc, nil
}
