package did

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/ztmesh/ztmesh/internal/wire"
)

// A compact JWS (RFC 7515) is header.payload.signature, each part base64url
// without padding. ztmesh signs only with EdDSA (Ed25519) and parses JWS
// itself before any library sees it, so that the checks a verifier relies on
// are here, small and in one place.

const maxJWSHeader = 1 << 10

// jwsHeader is the protected header. Unknown header fields are rejected, so a
// "crit", "jku", "jwk" or "x5u" an attacker adds cannot change the meaning of
// a token behind our back.
type jwsHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ,omitempty"`
}

type jws struct {
	header       jwsHeader
	payload      []byte
	signingInput []byte // header.payload, the bytes the signature covers
	signature    []byte
}

// parseJWS splits and decodes a compact JWS. It checks encoding and header
// shape only: the caller checks kid (which credentials may omit: see
// decodeJWT), typ and the signature.
func parseJWS(token []byte, maxSize int) (*jws, error) {
	if len(token) > maxSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(token), maxSize)
	}
	token = bytes.TrimSpace(token)
	parts := strings.Split(string(token), ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("%w: a JWS has 3 dot-separated parts, got %d", ErrMalformed, len(parts))
	}
	rawHeader, err := b64.DecodeString(parts[0])
	if err != nil {
		return nil, fmt.Errorf("%w: header encoding: %v", ErrMalformed, err)
	}
	if len(rawHeader) > maxJWSHeader {
		return nil, fmt.Errorf("%w: header is %d bytes, limit %d", ErrMalformed, len(rawHeader), maxJWSHeader)
	}
	payload, err := b64.DecodeString(parts[1])
	if err != nil {
		return nil, fmt.Errorf("%w: payload encoding: %v", ErrMalformed, err)
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil {
		return nil, fmt.Errorf("%w: signature encoding: %v", ErrMalformed, err)
	}
	var h jwsHeader
	if err := wire.DecodeStrict(rawHeader, &h); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	if h.Alg != "EdDSA" {
		return nil, fmt.Errorf("%w: signature algorithm %q is not allowed, only EdDSA", ErrMalformed, h.Alg)
	}
	return &jws{
		header:       h,
		payload:      payload,
		signingInput: []byte(parts[0] + "." + parts[1]),
		signature:    sig,
	}, nil
}

// issuerFromKid returns the DID part of a "did:key:...#fragment" key ID and
// checks that the fragment names that DID's key, the only key a did:key has.
func issuerFromKid(kid string) (DID, error) {
	d, frag, ok := strings.Cut(kid, "#")
	if !ok {
		return DID{}, fmt.Errorf("%w: kid %q is not a DID URL", ErrMalformed, kid)
	}
	issuer, err := ParseDID(d)
	if err != nil {
		return DID{}, fmt.Errorf("%w: kid: %v", ErrMalformed, err)
	}
	if issuer.KeyID() != d+"#"+frag {
		return DID{}, fmt.Errorf("%w: kid %q does not name the key of %s", ErrMalformed, kid, d)
	}
	return issuer, nil
}

// signCompact produces a compact JWS over payload, signed by id.
func signCompact(id *Identity, typ string, payload []byte) (string, error) {
	h, err := json.Marshal(jwsHeader{Alg: "EdDSA", Kid: id.DID().KeyID(), Typ: typ})
	if err != nil {
		return "", err
	}
	input := b64.EncodeToString(h) + "." + b64.EncodeToString(payload)
	return input + "." + b64.EncodeToString(id.signJWS([]byte(input))), nil
}

// b64 is base64url without padding, strict: a token has one encoding only.
var b64 = base64.RawURLEncoding.Strict()

// verifyJWS checks a JWS signature with the issuer's Ed25519 key.
func verifyJWS(issuer DID, j *jws) bool {
	return !issuer.IsZero() && ed25519.Verify(issuer.key[:], j.signingInput, j.signature)
}
