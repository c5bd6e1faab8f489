// Package envelope is the one signed JSON envelope of ztmesh's signed
// documents: policy bundles, attestation evidence, attestation reference
// values and quarantine announcements (docs/PROTOCOL.md, docs/POLICY.md).
//
// On the wire an envelope is
//
//	{"payload":"<base64>","signature":"<base64>"}
//
// in standard base64 with padding, strict (one encoding per value), with an
// optional section between the two for evidence's TPM quote:
// {"payload":…,"tpm":…,"signature":…}. The signature is Ed25519 over the
// payload's exact bytes, domain-separated with the format's context (see
// did.Identity.Sign), so no document verifies as another kind. With a
// section, it covers the payload's length (big-endian uint32), the payload
// and the section, so the split between them is unambiguous.
//
// The package checks the shared part only: size before parsing, strict
// structure (unknown fields and trailing data refused), the encodings, the
// signature's length and, for formats that ask, canonical form. What the
// payload means, who must have signed it and whether that signer is
// trusted are the caller's: Open does not verify the signature, because
// the key is named inside the payload.
package envelope

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/internal/wire"
)

// Format is one kind of envelope. Its errors wrap the caller's sentinels,
// so each package keeps its own (policy.ErrMalformed, attest.ErrTooLarge).
type Format struct {
	// Context is the domain-separation context of the signature.
	Context string
	// Name names the document in Seal's size error ("the bundle would
	// be … bytes").
	Name string
	// MaxSize caps the encoded envelope, for Seal and Open.
	MaxSize int
	// Section allows the optional "tpm" section (evidence only). Without
	// it, a "tpm" field is an unknown field.
	Section bool
	// Canonical makes Open refuse any encoding but Seal's for the same
	// values (field order, escapes, white space inside).
	Canonical bool
	// ErrTooLarge and ErrMalformed are the caller's sentinels.
	ErrTooLarge, ErrMalformed error
}

// Opened is a decoded envelope whose signature is not yet verified.
type Opened struct {
	Payload   []byte
	Section   []byte // nil without a section
	Signature []byte // ed25519.SignatureSize bytes
	Raw       []byte // the envelope as received, without surrounding space
}

// b64 is standard base64 with padding, strict: one encoding per value.
var b64 = base64.StdEncoding.Strict()

// plain and sectioned are the two wire forms; the field order is the
// order on the wire.
type plain struct {
	Payload   string `json:"payload"`
	Signature string `json:"signature"`
}

type sectioned struct {
	Payload   string `json:"payload"`
	TPM       string `json:"tpm,omitempty"`
	Signature string `json:"signature"`
}

// Seal signs payload (and section, nil for none) with id and encodes the
// envelope, refusing one over MaxSize.
func (f *Format) Seal(id *did.Identity, payload, section []byte) ([]byte, error) {
	if section != nil && !f.Section {
		return nil, fmt.Errorf("envelope %s: a section is not allowed", f.Context)
	}
	sig := id.Sign(f.Context, f.signedMessage(payload, section))
	out, err := f.marshal(payload, section, sig)
	if err != nil {
		return nil, err
	}
	if len(out) > f.MaxSize {
		return nil, fmt.Errorf("%w: the %s would be %d bytes, limit %d", f.ErrTooLarge, f.Name, len(out), f.MaxSize)
	}
	return out, nil
}

func (f *Format) marshal(payload, section, sig []byte) ([]byte, error) {
	if !f.Section {
		return json.Marshal(plain{Payload: b64.EncodeToString(payload), Signature: b64.EncodeToString(sig)})
	}
	env := sectioned{Payload: b64.EncodeToString(payload), Signature: b64.EncodeToString(sig)}
	if section != nil {
		env.TPM = b64.EncodeToString(section)
	}
	return json.Marshal(env)
}

// Open checks data's size, trims surrounding white space and decodes the
// envelope strictly. It does not decode the payload nor verify the
// signature (Verify does, with the key the payload names).
func (f *Format) Open(data []byte) (*Opened, error) {
	if len(data) > f.MaxSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", f.ErrTooLarge, len(data), f.MaxSize)
	}
	data = bytes.TrimSpace(data)
	var env sectioned
	var err error
	if f.Section {
		err = wire.DecodeStrict(data, &env)
	} else {
		var p plain
		err = wire.DecodeStrict(data, &p)
		env = sectioned{Payload: p.Payload, Signature: p.Signature}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", f.ErrMalformed, err)
	}
	o := &Opened{Raw: data}
	if o.Payload, err = b64.DecodeString(env.Payload); err != nil {
		return nil, fmt.Errorf("%w: payload encoding: %v", f.ErrMalformed, err)
	}
	if env.TPM != "" {
		if o.Section, err = b64.DecodeString(env.TPM); err != nil {
			return nil, fmt.Errorf("%w: tpm encoding: %v", f.ErrMalformed, err)
		}
	}
	if o.Signature, err = b64.DecodeString(env.Signature); err != nil {
		return nil, fmt.Errorf("%w: signature encoding: %v", f.ErrMalformed, err)
	}
	if len(o.Signature) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: signature is %d bytes, want %d", f.ErrMalformed, len(o.Signature), ed25519.SignatureSize)
	}
	if f.Canonical {
		if canon, err := f.marshal(o.Payload, o.Section, o.Signature); err != nil || !bytes.Equal(canon, data) {
			return nil, fmt.Errorf("%w: envelope is not in canonical form", f.ErrMalformed)
		}
	}
	return o, nil
}

// Verify reports whether o's signature verifies with pub under the
// format's context.
func (f *Format) Verify(pub ed25519.PublicKey, o *Opened) bool {
	return did.VerifyDomain(pub, f.Context, f.signedMessage(o.Payload, o.Section), o.Signature)
}

// signedMessage is what the signature covers: the payload, or with
// sections the payload's length as a big-endian uint32, the payload, then
// the section (empty when there is none).
func (f *Format) signedMessage(payload, section []byte) []byte {
	if !f.Section {
		return payload
	}
	msg := make([]byte, 4, 4+len(payload)+len(section))
	binary.BigEndian.PutUint32(msg, uint32(len(payload)))
	msg = append(msg, payload...)
	return append(msg, section...)
}
