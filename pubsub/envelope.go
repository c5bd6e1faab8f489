package pubsub

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// The sealed envelope is the data of every zone message (GossipSub signs it,
// with topic, origin and GossipSub's own sequence number, under strict
// signing). Layout, all integers big-endian:
//
//	version  1 byte   = 1
//	kind     1 byte   = 1 (sealed zone data)
//	key_id   8 bytes  the sender key
//	seq      8 bytes  the origin's sequence number
//	time     8 bytes  origin's clock, Unix nanoseconds
//	sealed   rest     AES-256-GCM(payload), 16-byte tag at the end
//
// The first 26 bytes are the header; the AEAD's associated data is
// labelEnvelope, topic, origin and the header (see associatedData).
const (
	envelopeVersion = 1
	kindSealedData  = 1
	headerSize      = 26
	gcmTagSize      = 16

	// MaxPayload is the largest payload a zone message may carry. With the
	// envelope and GossipSub's framing it stays under MaxMessageSize.
	MaxPayload = 1<<20 - 4<<10
	// MaxMessageSize is GossipSub's message size limit on ztmesh nodes.
	MaxMessageSize = 1 << 20
)

// Errors of the envelope decoder.
var (
	ErrMalformedEnvelope = errors.New("malformed envelope")
	ErrPayloadTooLarge   = errors.New("payload too large")
)

type envelope struct {
	keyID  KeyID
	seq    uint64
	time   time.Time
	hdr    []byte // the header bytes, for the associated data
	sealed []byte
}

func putHeader(b []byte, id KeyID, seq uint64, t time.Time) {
	b[0], b[1] = envelopeVersion, kindSealedData
	copy(b[2:10], id[:])
	binary.BigEndian.PutUint64(b[10:18], seq)
	binary.BigEndian.PutUint64(b[18:26], uint64(t.UnixNano()))
}

// sealEnvelope seals payload under k for topic, as origin, with sequence
// number seq at time t.
func sealEnvelope(k *senderKey, topic string, origin peer.ID, seq uint64, t time.Time, payload []byte) ([]byte, error) {
	if len(payload) > MaxPayload {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrPayloadTooLarge, len(payload), MaxPayload)
	}
	out := make([]byte, headerSize, headerSize+len(payload)+gcmTagSize)
	putHeader(out, k.id, seq, t)
	n := nonce(seq)
	return k.aead.Seal(out, n[:], payload, associatedData(topic, origin, out[:headerSize])), nil
}

// parseEnvelope decodes an envelope's header without opening it.
func parseEnvelope(data []byte) (*envelope, error) {
	if len(data) < headerSize+gcmTagSize {
		return nil, fmt.Errorf("%w: %d bytes is too short", ErrMalformedEnvelope, len(data))
	}
	if len(data) > MaxPayload+headerSize+gcmTagSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrPayloadTooLarge, len(data))
	}
	if data[0] != envelopeVersion || data[1] != kindSealedData {
		return nil, fmt.Errorf("%w: version %d kind %d", ErrMalformedEnvelope, data[0], data[1])
	}
	e := &envelope{
		seq:    binary.BigEndian.Uint64(data[10:18]),
		time:   time.Unix(0, int64(binary.BigEndian.Uint64(data[18:26]))),
		hdr:    data[:headerSize],
		sealed: data[headerSize:],
	}
	copy(e.keyID[:], data[2:10])
	return e, nil
}

var errOpen = errors.New("ciphertext does not open (tampered, wrong key, topic or origin)")

// open decrypts the envelope with k, checking the associated data.
func (e *envelope) open(k *senderKey, topic string, origin peer.ID) ([]byte, error) {
	n := nonce(e.seq)
	pt, err := k.aead.Open(nil, n[:], e.sealed, associatedData(topic, origin, e.hdr))
	if err != nil {
		return nil, errOpen
	}
	return pt, nil
}
