package pubsub

// All of ztmesh's zone cryptography is in this file: the AEAD that seals a
// payload under a sender key, and the HPKE that seals a sender key to a
// member. Every label is a named constant; every nonce choice says why it
// is safe.

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Domain-separation labels.
const (
	// labelEnvelope starts the associated data of every sealed payload.
	labelEnvelope = "ztmesh/zone-envelope/v1"
	// labelSenderKey starts the HPKE info of every sealed sender key.
	labelSenderKey = "ztmesh/sender-key/v1"
	// labelKeyPackage is the signature context of a key package.
	labelKeyPackage = "ztmesh/key-package/v1"
	// labelKeyID starts the hash that names a sender key (keyIDOf).
	labelKeyID = "ztmesh/sender-key-id/v1"
)

// senderKeySize is the AES-256 key size.
const senderKeySize = 32

// KeyID names one sender key. It is a hash of the key with its origin and
// topic (keyIDOf), so an origin cannot hand different members different
// keys under one ID without the receivers noticing (key equivocation); and
// keys are random, so two keys of one sender do not share an ID, and a
// receiver can tell a rotated key from the old one.
type KeyID [8]byte

// keyIDOf is the ID of the sender key raw of origin on topic: the first 8
// bytes of SHA-256(labelKeyID ‖ 0x00 ‖ u16 len ‖ origin ‖ u16 len ‖ topic ‖
// raw). Eight bytes keep the envelope as it was; they allow a birthday
// search (about 2^32 hashes) for two keys under one ID, which gains an
// origin nothing it could not do by sealing garbage: the receivers holding
// the other key find the ciphertext does not open, a verdict counted
// against the origin, never a relay.
func keyIDOf(origin peer.ID, topic string, raw []byte) KeyID {
	h := sha256.New()
	h.Write([]byte(labelKeyID))
	h.Write([]byte{0})
	for _, part := range [][]byte{[]byte(origin), []byte(topic)} {
		h.Write(binary.BigEndian.AppendUint16(nil, uint16(len(part))))
		h.Write(part)
	}
	h.Write(raw)
	var id KeyID
	copy(id[:], h.Sum(nil))
	return id
}

// senderKey is one sender's key for one topic.
type senderKey struct {
	id      KeyID
	topic   string
	aead    cipher.AEAD
	raw     []byte // kept to seal it to members
	created time.Time
}

// newSenderKey makes a new random sender key of origin for topic.
func newSenderKey(origin peer.ID, topic string, now time.Time) (*senderKey, error) {
	raw := make([]byte, senderKeySize)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	return senderKeyFrom(keyIDOf(origin, topic, raw), topic, raw, now)
}

func senderKeyFrom(id KeyID, topic string, raw []byte, now time.Time) (*senderKey, error) {
	if len(raw) != senderKeySize {
		return nil, fmt.Errorf("sender key is %d bytes, want %d", len(raw), senderKeySize)
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &senderKey{id: id, topic: topic, aead: aead, raw: raw, created: now}, nil
}

// nonce returns the AES-GCM nonce for a sequence number. The nonce is the
// sequence number itself (4 zero bytes, then 8 bytes big-endian). It never
// repeats under one key: a node's sequence counter only grows during a
// process's life, every message takes a new value, and sender keys are
// random per process and per rotation, so a restart (which resets the
// counter) also starts with new keys.
func nonce(seq uint64) [12]byte {
	var n [12]byte
	binary.BigEndian.PutUint64(n[4:], seq)
	return n
}

// associatedData binds a sealed payload to its topic, origin and header:
// moving a ciphertext to another topic, origin, key, sequence number or
// time makes it fail to open.
func associatedData(topic string, origin peer.ID, hdr []byte) []byte {
	ad := make([]byte, 0, len(labelEnvelope)+1+2+len(topic)+2+len(origin)+len(hdr))
	ad = append(ad, labelEnvelope...)
	ad = append(ad, 0)
	ad = binary.BigEndian.AppendUint16(ad, uint16(len(topic)))
	ad = append(ad, topic...)
	ad = binary.BigEndian.AppendUint16(ad, uint16(len(origin)))
	ad = append(ad, origin...)
	return append(ad, hdr...)
}

// KEM suites for sealing sender keys to members.
const (
	// SuiteHybrid is ML-KEM-768 + X25519 (X-Wing): post-quantum safe. Default.
	SuiteHybrid = "MLKEM768-X25519"
	// SuiteX25519 is DHKEM(X25519) alone, for constrained peers. Not
	// post-quantum safe: use it only where ML-KEM is too costly.
	SuiteX25519 = "X25519"
)

func kemFor(suite string) (hpke.KEM, error) {
	switch suite {
	case SuiteHybrid:
		return hpke.MLKEM768X25519(), nil
	case SuiteX25519:
		return hpke.DHKEM(ecdh.X25519()), nil
	}
	return nil, fmt.Errorf("unknown KEM suite %q", truncate(suite))
}

// senderKeyInfo is the HPKE info for sealing a sender key: it binds the key
// to its topic, its origin, its recipient and its ID, so a sealed key cannot
// be replayed to another member or passed off as another key.
func senderKeyInfo(topic string, origin, recipient peer.ID, id KeyID) []byte {
	info := make([]byte, 0, len(labelSenderKey)+64+len(topic)+len(origin)+len(recipient))
	info = append(info, labelSenderKey...)
	info = append(info, 0)
	for _, part := range [][]byte{[]byte(topic), []byte(origin), []byte(recipient), id[:]} {
		info = binary.BigEndian.AppendUint16(info, uint16(len(part)))
		info = append(info, part...)
	}
	return info
}

// sealSenderKey seals k to a recipient's key package with HPKE
// (HKDF-SHA256, AES-256-GCM; one-shot, so HPKE picks a fresh encapsulation
// for every call and nonce reuse cannot arise).
func sealSenderKey(k *senderKey, origin, recipient peer.ID, kp *KeyPackage) ([]byte, error) {
	pub, err := kp.publicKey()
	if err != nil {
		return nil, err
	}
	return hpke.Seal(pub, hpke.HKDFSHA256(), hpke.AES256GCM(), senderKeyInfo(k.topic, origin, recipient, k.id), k.raw)
}

var (
	errOpenKey = errors.New("sealed sender key does not open")
	// errKeyEquivocation: the origin sealed to us, under a key ID, a key
	// that the ID does not name. Only the origin can have done it (the
	// HPKE info binds origin, recipient and ID): proof of misbehaviour.
	errKeyEquivocation = errors.New("sender key does not match its key ID")
)

// openSenderKey opens a sealed sender key with our private key and checks
// that id names it.
func openSenderKey(priv hpke.PrivateKey, sealed []byte, topic string, origin, self peer.ID, id KeyID, now time.Time) (*senderKey, error) {
	raw, err := hpke.Open(priv, hpke.HKDFSHA256(), hpke.AES256GCM(), senderKeyInfo(topic, origin, self, id), sealed)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errOpenKey, err)
	}
	if keyIDOf(origin, topic, raw) != id {
		return nil, fmt.Errorf("%w: key ID %x on %s", errKeyEquivocation, id[:], truncate(topic))
	}
	return senderKeyFrom(id, topic, raw, now)
}
