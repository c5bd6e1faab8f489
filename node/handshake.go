package node

import (
	"errors"
	"fmt"
	"io"

	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/internal/wire"
	"github.com/ztmesh/ztmesh/pubsub"
)

// AuthProtocol is the credential handshake's libp2p protocol ID.
const AuthProtocol protocol.ID = "/ztmesh/auth/1.0.0"

// handshakeVersion is the "v" field of handshake messages.
const handshakeVersion = 1

// MaxHandshakeMessage caps one handshake frame: a credential (at most
// did.MaxCredentialSize), a key package (base64) and a small envelope.
const MaxHandshakeMessage = did.MaxCredentialSize + 2*pubsub.MaxKeyPackageSize

// present is what a node sends to present its credential.
type present struct {
	V          int    `json:"v"`
	Mesh       string `json:"mesh"`
	Credential string `json:"credential"`
	// KeyPackage is the node's signed HPKE key (pubsub.KeyPackage), which
	// other members seal their sender keys to.
	KeyPackage []byte `json:"key_package"`
}

// result is the answer to a present.
type result struct {
	V        int    `json:"v"`
	Accepted bool   `json:"accepted"`
	Reason   string `json:"reason,omitempty"`
}

var errFrameTooLarge = wire.ErrTooLarge

func writeFrame(w io.Writer, v any) error { return wire.WriteJSON(w, v, MaxHandshakeMessage) }

// readFrame reads one frame, refusing a length over MaxHandshakeMessage
// before allocating anything.
func readFrame(r io.Reader) ([]byte, error) { return wire.ReadFrame(r, MaxHandshakeMessage) }

// decodePresent parses a present frame strictly.
func decodePresent(body []byte) (*present, error) {
	var p present
	if err := wire.DecodeStrict(body, &p); err != nil {
		return nil, fmt.Errorf("malformed handshake: %w", err)
	}
	if p.V != handshakeVersion {
		return nil, fmt.Errorf("malformed handshake: version %d, want %d", p.V, handshakeVersion)
	}
	if p.Credential == "" {
		return nil, errors.New("malformed handshake: no credential")
	}
	if len(p.KeyPackage) == 0 {
		return nil, errors.New("malformed handshake: no key package")
	}
	return &p, nil
}

func decodeResult(body []byte) (*result, error) {
	var r result
	if err := wire.DecodeStrict(body, &r); err != nil {
		return nil, fmt.Errorf("malformed handshake result: %w", err)
	}
	if r.V != handshakeVersion {
		return nil, fmt.Errorf("malformed handshake result: version %d", r.V)
	}
	return &r, nil
}
