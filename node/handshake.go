package node

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/ztmesh/ztmesh/did"
)

// AuthProtocol is the credential handshake's libp2p protocol ID.
const AuthProtocol protocol.ID = "/ztmesh/auth/1.0.0"

// handshakeVersion is the "v" field of handshake messages.
const handshakeVersion = 1

// MaxHandshakeMessage caps one handshake frame: a credential (at most
// did.MaxCredentialSize) plus a small envelope.
const MaxHandshakeMessage = did.MaxCredentialSize + 1024

// present is what a node sends to present its credential.
type present struct {
	V          int    `json:"v"`
	Mesh       string `json:"mesh"`
	Credential string `json:"credential"`
}

// result is the answer to a present.
type result struct {
	V        int    `json:"v"`
	Accepted bool   `json:"accepted"`
	Reason   string `json:"reason,omitempty"`
}

var errFrameTooLarge = errors.New("handshake frame too large")

// writeFrame writes a 4-byte big-endian length and the JSON of v.
func writeFrame(w io.Writer, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(body) > MaxHandshakeMessage {
		return fmt.Errorf("%w: %d bytes", errFrameTooLarge, len(body))
	}
	buf := make([]byte, 4+len(body))
	binary.BigEndian.PutUint32(buf, uint32(len(body)))
	copy(buf[4:], body)
	_, err = w.Write(buf)
	return err
}

// readFrame reads one frame, refusing a length over MaxHandshakeMessage
// before allocating anything.
func readFrame(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("read frame header: %w", err)
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > MaxHandshakeMessage {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", errFrameTooLarge, n, MaxHandshakeMessage)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, fmt.Errorf("read frame: %w", err)
	}
	return body, nil
}

// decodePresent parses a present frame strictly.
func decodePresent(body []byte) (*present, error) {
	var p present
	if err := decodeStrictJSON(body, &p); err != nil {
		return nil, fmt.Errorf("malformed handshake: %w", err)
	}
	if p.V != handshakeVersion {
		return nil, fmt.Errorf("malformed handshake: version %d, want %d", p.V, handshakeVersion)
	}
	if p.Credential == "" {
		return nil, errors.New("malformed handshake: no credential")
	}
	return &p, nil
}

func decodeResult(body []byte) (*result, error) {
	var r result
	if err := decodeStrictJSON(body, &r); err != nil {
		return nil, fmt.Errorf("malformed handshake result: %w", err)
	}
	if r.V != handshakeVersion {
		return nil, fmt.Errorf("malformed handshake result: version %d", r.V)
	}
	return &r, nil
}

func decodeStrictJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}
