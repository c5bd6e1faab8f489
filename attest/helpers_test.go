package attest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-tpm/legacy/tpm2"

	"github.com/ztmesh/ztmesh/did"
)

// t0 is the time of the test vectors.
var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

// testIdentity returns the identity of a fixed seed made of b.
func testIdentity(t testing.TB, b byte) *did.Identity {
	t.Helper()
	id, err := did.IdentityFromSeed(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func testNonce(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func hash(s string) string { return HashBytes([]byte(s)) }

// testMeasurement is a fixed measurement of a made-up build.
func testMeasurement() *Measurement {
	return &Measurement{
		BinarySHA256: hash("ztmeshd v1.4.0 linux/amd64"),
		GoVersion:    "go1.26.8",
		MainModule:   Module{Path: "github.com/ztmesh/ztmesh", Version: "v1.4.0"},
		Deps: []Module{
			{Path: "filippo.io/age", Version: "v1.3.2", Sum: "h1:" + hash("age")[:43] + "="},
			{Path: "github.com/libp2p/go-libp2p", Version: "v0.51.0", Sum: "h1:" + hash("libp2p")[:43] + "="},
			{Path: "golang.org/x/crypto", Version: "v0.57.0", Sum: "h1:" + hash("crypto")[:43] + "="},
		},
		ConfigSHA256: hash("listen: []\n"),
		PolicySHA256: HashPolicy(map[string]string{"authz.rego": "package ztmesh.authz\n"}),
		Uptime:       90 * time.Minute,
	}
}

// bigMeasurement has n dependencies, like a real daemon (about 200).
func bigMeasurement(n int) *Measurement {
	m := testMeasurement()
	m.Deps = nil
	for i := range n {
		m.Deps = append(m.Deps, Module{
			Path:    fmt.Sprintf("example.com/org%03d/module%03d", i, i),
			Version: fmt.Sprintf("v1.%d.%d", i%17, i%5),
			Sum:     "h1:" + hash(fmt.Sprint(i))[:43] + "=",
		})
	}
	return m
}

// testReference allows testMeasurement's binary.
func testReference() *Reference {
	return &Reference{
		Version:         1,
		AllowedBinaries: []string{hash("ztmeshd v1.4.0 linux/amd64")},
		MinVersions:     map[string]string{"golang.org/x/crypto": "v0.31.0", GoKey: "go1.26.0"},
		Forbidden:       []Module{{Path: "github.com/evil/backdoor"}},
	}
}

// signed returns signed evidence of testMeasurement by the identity of seed 1.
func signed(t testing.TB, m *Measurement, tpm TPM) []byte {
	t.Helper()
	ev, err := Sign(testIdentity(t, 1), m, testNonce(7), t0, tpm)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func parsed(t testing.TB, ev []byte) *Evidence {
	t.Helper()
	e, err := ParseEvidence(ev, t0.Add(time.Second), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// editPayload decodes evidence, lets edit change its payload and returns
// it with the payload re-encoded but NOT signed again.
func editPayload(t testing.TB, ev []byte, edit func(p map[string]any)) []byte {
	t.Helper()
	var env evidenceEnvelope
	if err := json.Unmarshal(ev, &env); err != nil {
		t.Fatal(err)
	}
	payload, err := b64.DecodeString(env.Payload)
	if err != nil {
		t.Fatal(err)
	}
	var p map[string]any
	if err := json.Unmarshal(payload, &p); err != nil {
		t.Fatal(err)
	}
	edit(p)
	var body evidenceBody // re-encode in field order, as Sign does
	raw, _ := json.Marshal(p)
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatal(err)
	}
	if payload, err = json.Marshal(body); err != nil {
		t.Fatal(err)
	}
	env.Payload = b64.EncodeToString(payload)
	out, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// softTPM is a TPM in software, for tests that run without cgo: an ECDSA
// P-256 key with the public area of a TPM attestation key, making quotes in
// the TPM 2.0 wire format over made-up PCR values. Verification cannot tell
// it from a TPM (no code can, without the TPM's endorsement certificate:
// see docs/ATTESTATION.md). The simulator test uses a real TPM 2.0
// implementation.
type softTPM struct {
	key   *ecdsa.PrivateKey
	pub   []byte
	pcrs  []PCR
	attrs tpm2.KeyProp
}

func newSoftTPM(t testing.TB) *softTPM {
	t.Helper()
	return newSoftTPMAttrs(t, tpm2.FlagSignerDefault)
}

func newSoftTPMAttrs(t testing.TB, attrs tpm2.KeyProp) *softTPM {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := tpm2.Public{
		Type: tpm2.AlgECC, NameAlg: tpm2.AlgSHA256, Attributes: attrs,
		ECCParameters: &tpm2.ECCParams{
			Sign:    &tpm2.SigScheme{Alg: tpm2.AlgECDSA, Hash: tpm2.AlgSHA256},
			CurveID: tpm2.CurveNISTP256,
			Point:   tpm2.ECPoint{XRaw: key.X.FillBytes(make([]byte, 32)), YRaw: key.Y.FillBytes(make([]byte, 32))},
		},
	}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	s := &softTPM{key: key, pub: pub, attrs: attrs}
	for i := range 8 {
		v := sha256.Sum256([]byte{byte(i)})
		s.pcrs = append(s.pcrs, PCR{Index: i, Value: v[:]})
	}
	return s
}

func (s *softTPM) Quote(extraData []byte) (*TPMQuote, error) {
	digest := sha256.New()
	sel := tpm2.PCRSelection{Hash: tpm2.AlgSHA256}
	for _, p := range s.pcrs {
		digest.Write(p.Value)
		sel.PCRs = append(sel.PCRs, p.Index)
	}
	name := sha256.Sum256(s.pub)
	attest, err := tpm2.AttestationData{
		Magic:             0xff544347, // TPM_GENERATED_VALUE
		Type:              tpm2.TagAttestQuote,
		QualifiedSigner:   tpm2.Name{Digest: &tpm2.HashValue{Alg: tpm2.AlgSHA256, Value: name[:]}},
		ExtraData:         extraData,
		ClockInfo:         tpm2.ClockInfo{Clock: 1000, Safe: 1},
		AttestedQuoteInfo: &tpm2.QuoteInfo{PCRSelection: sel, PCRDigest: digest.Sum(nil)},
	}.Encode()
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256(attest)
	r, sv, err := ecdsa.Sign(rand.Reader, s.key, h[:])
	if err != nil {
		return nil, err
	}
	sig, err := tpm2.Signature{Alg: tpm2.AlgECDSA, ECC: &tpm2.SignatureECC{HashAlg: tpm2.AlgSHA256, R: r, S: sv}}.Encode()
	if err != nil {
		return nil, err
	}
	q := &TPMQuote{AKPublic: s.pub, Quote: attest, Signature: sig}
	for _, p := range s.pcrs {
		q.PCRs = append(q.PCRs, PCR{Index: p.Index, Value: bytes.Clone(p.Value)})
	}
	return q, nil
}

func (s *softTPM) Close() error { return nil }

// lyingTPM wraps a TPM and edits its quotes, as a compromised node would
// before signing the evidence with its own (valid) key.
type lyingTPM struct {
	TPM
	edit func(q *TPMQuote)
}

func (l lyingTPM) Quote(extraData []byte) (*TPMQuote, error) {
	q, err := l.TPM.Quote(extraData)
	if err == nil {
		l.edit(q)
	}
	return q, err
}
