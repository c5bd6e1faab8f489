package attest

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/ztmesh/ztmesh/did"
)

// The wire forms of the signed envelopes, written out here apart from
// internal/envelope so that tests build and take apart documents the way a
// third-party implementation of docs/PROTOCOL.md would.

// b64 is standard base64 with padding, strict.
var b64 = base64.StdEncoding.Strict()

// evidenceEnvelope is evidence on the wire.
type evidenceEnvelope struct {
	Payload   string `json:"payload"`
	TPM       string `json:"tpm,omitempty"`
	Signature string `json:"signature"`
}

// quarantineEnvelope is a quarantine announcement (and reference values)
// on the wire.
type quarantineEnvelope struct { // also the form of reference values
	Payload   string `json:"payload"`
	Signature string `json:"signature"`
}

// signedMessage is what an evidence signature covers: the payload's length
// as a big-endian uint32, the payload, then the TPM section.
func signedMessage(payload, section []byte) []byte {
	msg := binary.BigEndian.AppendUint32(nil, uint32(len(payload)))
	msg = append(msg, payload...)
	return append(msg, section...)
}

// TestEvidenceEnvelopeWithSectionVector checks the encoding of evidence
// with a TPM section, which the software-only vector does not cover,
// against testdata/evidence-envelope-tpm-v1.json, written by the code
// before the envelope moved to internal/envelope (made-up payload and
// section: the bytes of the envelope are what is pinned).
func TestEvidenceEnvelopeWithSectionVector(t *testing.T) {
	want, err := os.ReadFile(filepath.Join("testdata", "evidence-envelope-tpm-v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	id := testIdentity(t, 1)
	payload, section := []byte(`{"made":"up payload"}`), []byte("a made-up tpm section")
	got, err := evidenceFormat.Seal(id, payload, section)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, bytes.TrimSpace(want)) {
		t.Fatalf("the evidence envelope changed:\n got %s\nwant %s", got, want)
	}
	env, err := evidenceFormat.Open(want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(env.Payload, payload) || !bytes.Equal(env.Section, section) || !evidenceFormat.Verify(id.PublicKey(), env) {
		t.Errorf("Open(vector) = %q, %q; verifies: %v", env.Payload, env.Section, evidenceFormat.Verify(id.PublicKey(), env))
	}
	if !did.VerifyDomain(id.PublicKey(), EvidenceContext, signedMessage(payload, section), env.Signature) {
		t.Error("the signature does not cover length, payload and section under EvidenceContext")
	}
}
