package attest

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/internal/envelope"
	"github.com/ztmesh/ztmesh/internal/wire"
)

// Evidence format constants. docs/ATTESTATION.md specifies the format.
const (
	// EvidenceContext is the domain-separation context of an evidence
	// signature (see did.Identity.Sign): no other signed ztmesh object
	// verifies as evidence, nor evidence as anything else.
	EvidenceContext = "ztmesh/evidence/v1"
	// MaxEvidenceSize caps evidence before it is parsed. The dependency
	// list is most of it: about 150 bytes a module, so a binary with a
	// thousand modules fits.
	MaxEvidenceSize = 256 << 10
	// MinNonceSize and MaxNonceSize bound the nonce. 16 random bytes are
	// enough that a verifier's challenge is never reused by chance.
	MinNonceSize = 16
	MaxNonceSize = 64
	// MaxClockSkew is how far in the future evidence may be dated and
	// still be accepted: clocks of different machines differ.
	MaxClockSkew = 2 * time.Minute

	// Root of trust names in the evidence payload.
	rootSoftware = "software"
	rootTPM      = "tpm2"

	maxDeps    = 4096 // modules in one build; ztmeshd has about 200
	maxTextLen = 512  // one module path, version, checksum or Go version
)

// Evidence is a node's signed statement about itself: who it is (Subject),
// a nonce and the time it was made (freshness), what it measured, and,
// where the node has a TPM, a quote from the TPM. It is signed with the
// subject's DID key.
type Evidence struct {
	Subject did.DID
	Nonce   []byte
	Time    time.Time
	Measurement
	// Hardware is the TPM quote, nil for software-only evidence. Verify
	// checks it; ParseEvidence only checks its shape.
	Hardware  *TPMQuote
	Signature []byte // Ed25519 by Subject, context EvidenceContext
	Raw       []byte // the signed evidence as received, without surrounding space
}

// evidenceFormat is evidence on the wire: the payload, the optional TPM
// section and a signature over both, each in standard base64 with padding
// (internal/envelope), in canonical form only.
var evidenceFormat = &envelope.Format{
	Context:      EvidenceContext,
	Name:         "evidence",
	MaxSize:      MaxEvidenceSize,
	Section:      true,
	Canonical:    true,
	ErrTooLarge:  ErrTooLarge,
	ErrMalformed: ErrMalformed,
}

// evidenceBody is the payload: what the node states about itself.
type evidenceBody struct {
	Subject      string       `json:"subject"`
	Nonce        []byte       `json:"nonce"`
	Time         string       `json:"time"`
	RootOfTrust  string       `json:"root_of_trust"`
	BinarySHA256 string       `json:"binary_sha256"`
	GoVersion    string       `json:"go_version"`
	Main         moduleJSON   `json:"main"`
	Deps         []moduleJSON `json:"deps"`
	ConfigSHA256 string       `json:"config_sha256"`
	PolicySHA256 string       `json:"policy_sha256"`
	UptimeMillis int64        `json:"uptime_ms"`
}

type moduleJSON struct {
	Path    string      `json:"path"`
	Version string      `json:"version"`
	Sum     string      `json:"sum,omitempty"`
	Replace *moduleJSON `json:"replace,omitempty"`
}

// Sign measures nothing itself: it states m about id's node, with nonce and
// time now, asks tpm (nil for none) for a quote bound to that statement,
// signs the whole with id's key and returns the encoded evidence.
//
// The nonce is the verifier's challenge, or fresh random bytes when the
// evidence is broadcast unasked; it must be MinNonceSize to MaxNonceSize
// bytes. The TPM quote's qualifying data is QuoteExtraData(payload), so the
// quote is bound to the nonce, the time and every measured value. The
// attestation key is certified by id: its public area is signed with the
// context AKContext.
func Sign(id *did.Identity, m *Measurement, nonce []byte, now time.Time, tpm TPM) ([]byte, error) {
	if n := len(nonce); n < MinNonceSize || n > MaxNonceSize {
		return nil, fmt.Errorf("%w: nonce is %d bytes, want %d to %d", ErrMalformed, n, MinNonceSize, MaxNonceSize)
	}
	if m == nil {
		return nil, fmt.Errorf("%w: no measurement", ErrMalformed)
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	e := &Evidence{Subject: id.DID(), Nonce: nonce, Time: now, Measurement: *m}
	if tpm != nil {
		e.Hardware = &TPMQuote{} // the payload says tpm2 before the quote exists
	}
	payload, err := e.payload()
	if err != nil {
		return nil, err
	}
	var section []byte
	if tpm != nil {
		q, err := tpm.Quote(QuoteExtraData(payload))
		if err != nil {
			return nil, fmt.Errorf("%w: quote: %v", ErrTPM, err)
		}
		if q == nil {
			return nil, fmt.Errorf("%w: quote: the TPM returned no quote", ErrTPM)
		}
		certified := q.clone()
		certified.AKCertification = id.Sign(AKContext, certified.AKPublic)
		if section, err = certified.encode(); err != nil {
			return nil, err
		}
	}
	return evidenceFormat.Seal(id, payload, section)
}

// ParseEvidence decodes and checks evidence: size first, then strict,
// canonical structure (unknown fields, trailing data and any other spelling
// of the same values are refused), then the signature with the key of the
// Subject it names, then freshness: it must be made at most maxAge before
// now and at most MaxClockSkew after. Each error wraps one of the package's
// sentinels.
//
// A valid signature proves only that Subject made the evidence; the caller
// checks that Subject is the node it expected (for instance the message's
// authenticated author). ParseEvidence does not check the TPM quote nor the
// nonce against a challenge: Verify does.
func ParseEvidence(data []byte, now time.Time, maxAge time.Duration) (*Evidence, error) {
	if len(data) > MaxEvidenceSize {
		return nil, fmt.Errorf("evidence rejected: %w: %d bytes, limit %d", ErrTooLarge, len(data), MaxEvidenceSize)
	}
	if maxAge <= 0 {
		return nil, fmt.Errorf("evidence rejected: %w: maximum age %v is not positive", ErrStale, maxAge)
	}
	env, err := evidenceFormat.Open(data)
	if err != nil {
		return nil, fmt.Errorf("evidence rejected: %w", err)
	}
	e, err := decodeEvidence(env)
	if err != nil {
		return nil, fmt.Errorf("evidence rejected: %w", err)
	}
	if !evidenceFormat.Verify(e.Subject.PublicKey(), env) {
		return nil, fmt.Errorf("evidence rejected: %w: signature does not verify with the key of %s", ErrBadSignature, e.Subject)
	}
	if age := now.Sub(e.Time); age > maxAge {
		return nil, fmt.Errorf("evidence rejected: %w: made at %s, %v ago, limit %v; ask %s for new evidence",
			ErrStale, e.Time.Format(time.RFC3339), age.Round(time.Second), maxAge, e.Subject)
	}
	if ahead := e.Time.Sub(now); ahead > MaxClockSkew {
		return nil, fmt.Errorf("evidence rejected: %w: dated %s, %v ahead of our clock (skew limit %v); check both clocks",
			ErrFuture, e.Time.Format(time.RFC3339), ahead.Round(time.Second), MaxClockSkew)
	}
	return e, nil
}

// decodeEvidence decodes data without checking the signature or the time.
// It refuses anything that is not exactly what Sign would have produced for
// the same values, so each evidence has one encoding.
func decodeEvidence(env *envelope.Opened) (e *Evidence, err error) {
	payload, section := env.Payload, env.Section
	var body evidenceBody
	if err := wire.DecodeStrict(payload, &body); err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
	}
	e, err = evidenceOf(&body)
	if err != nil {
		return nil, err
	}
	switch {
	case body.RootOfTrust == rootTPM && section == nil:
		return nil, fmt.Errorf("%w: root of trust is %s but there is no tpm section", ErrMalformed, rootTPM)
	case body.RootOfTrust == rootSoftware && section != nil:
		return nil, fmt.Errorf("%w: software-only evidence with a tpm section", ErrMalformed)
	case section != nil:
		if e.Hardware, err = decodeTPMQuote(section); err != nil {
			return nil, err
		}
	}
	if canon, err := e.payload(); err != nil || !bytes.Equal(canon, payload) {
		return nil, fmt.Errorf("%w: payload is not in canonical form", ErrMalformed)
	}
	e.Signature = env.Signature
	e.Raw = bytes.Clone(env.Raw)
	return e, nil
}

// evidenceOf checks a decoded payload and returns its values.
func evidenceOf(b *evidenceBody) (*Evidence, error) {
	sub, err := did.ParseDID(b.Subject)
	if err != nil {
		return nil, fmt.Errorf("%w: subject: %v", ErrMalformed, err)
	}
	if n := len(b.Nonce); n < MinNonceSize || n > MaxNonceSize {
		return nil, fmt.Errorf("%w: nonce is %d bytes, want %d to %d", ErrMalformed, n, MinNonceSize, MaxNonceSize)
	}
	t, err := time.Parse(time.RFC3339Nano, b.Time)
	if err != nil {
		return nil, fmt.Errorf("%w: time: %v", ErrMalformed, err)
	}
	if b.RootOfTrust != rootSoftware && b.RootOfTrust != rootTPM {
		return nil, fmt.Errorf("%w: root of trust %q, want %q or %q", ErrMalformed, truncate(b.RootOfTrust), rootSoftware, rootTPM)
	}
	if b.UptimeMillis < 0 || b.UptimeMillis > int64(time.Duration(1<<63-1)/time.Millisecond) {
		return nil, fmt.Errorf("%w: uptime %d ms", ErrMalformed, b.UptimeMillis)
	}
	if len(b.Deps) > maxDeps {
		return nil, fmt.Errorf("%w: %d dependency modules, at most %d", ErrMalformed, len(b.Deps), maxDeps)
	}
	e := &Evidence{
		Subject: sub,
		Nonce:   b.Nonce,
		Time:    t.UTC(),
		Measurement: Measurement{
			BinarySHA256: b.BinarySHA256,
			GoVersion:    b.GoVersion,
			MainModule:   b.Main.module(),
			Deps:         make([]Module, 0, len(b.Deps)),
			ConfigSHA256: b.ConfigSHA256,
			PolicySHA256: b.PolicySHA256,
			Uptime:       time.Duration(b.UptimeMillis) * time.Millisecond,
		},
	}
	for _, d := range b.Deps {
		e.Deps = append(e.Deps, d.module())
	}
	if err := e.Measurement.validate(); err != nil {
		return nil, err
	}
	return e, nil
}

// payload encodes e's statement as Sign signs it.
func (e *Evidence) payload() ([]byte, error) {
	b := evidenceBody{
		Subject:      e.Subject.String(),
		Nonce:        e.Nonce,
		Time:         e.Time.UTC().Format(time.RFC3339Nano),
		RootOfTrust:  rootSoftware,
		BinarySHA256: e.BinarySHA256,
		GoVersion:    e.GoVersion,
		Main:         jsonOf(e.MainModule),
		Deps:         make([]moduleJSON, 0, len(e.Deps)),
		ConfigSHA256: e.ConfigSHA256,
		PolicySHA256: e.PolicySHA256,
		UptimeMillis: e.Uptime.Milliseconds(),
	}
	if e.Hardware != nil {
		b.RootOfTrust = rootTPM
	}
	for _, d := range e.Deps {
		b.Deps = append(b.Deps, jsonOf(d))
	}
	return json.Marshal(b)
}

func jsonOf(m Module) moduleJSON {
	j := moduleJSON{Path: m.Path, Version: m.Version, Sum: m.Sum}
	if m.Replace != nil {
		r := jsonOf(*m.Replace)
		j.Replace = &r
	}
	return j
}

func (j moduleJSON) module() Module {
	m := Module{Path: j.Path, Version: j.Version, Sum: j.Sum}
	if j.Replace != nil {
		r := j.Replace.module()
		m.Replace = &r
	}
	return m
}

// validate checks a measurement's values: hashes in lowercase hex, text
// fields of bounded length without control characters, dependencies sorted
// by path without duplicates.
func (m *Measurement) validate() error {
	if !isHexSHA256(m.BinarySHA256) {
		return fmt.Errorf("%w: binary hash %q is not lowercase hex SHA-256", ErrMalformed, truncate(m.BinarySHA256))
	}
	if h := m.ConfigSHA256; h != "" && !isHexSHA256(h) {
		return fmt.Errorf("%w: config hash %q is not lowercase hex SHA-256", ErrMalformed, truncate(h))
	}
	if h := m.PolicySHA256; h != "" && !isHexSHA256(h) {
		return fmt.Errorf("%w: policy hash %q is not lowercase hex SHA-256", ErrMalformed, truncate(h))
	}
	if err := checkText("Go version", m.GoVersion, false); err != nil {
		return err
	}
	if m.Uptime < 0 {
		return fmt.Errorf("%w: negative uptime", ErrMalformed)
	}
	if err := m.MainModule.validate(true); err != nil {
		return fmt.Errorf("main module: %w", err)
	}
	if len(m.Deps) > maxDeps {
		return fmt.Errorf("%w: %d dependency modules, at most %d", ErrMalformed, len(m.Deps), maxDeps)
	}
	for i, d := range m.Deps {
		if err := d.validate(false); err != nil {
			return fmt.Errorf("dependency %d: %w", i, err)
		}
		if i > 0 && m.Deps[i-1].Path >= d.Path {
			return fmt.Errorf("%w: dependencies not sorted by path or repeated at %q", ErrMalformed, truncate(d.Path))
		}
	}
	return nil
}

// validate checks one module. Only the main module may have an empty path
// (a binary built from files, not a module).
func (m Module) validate(main bool) error {
	if err := checkText("module path", m.Path, !main); err != nil {
		return err
	}
	if err := checkText("module version", m.Version, false); err != nil {
		return err
	}
	if err := checkText("module checksum", m.Sum, false); err != nil {
		return err
	}
	if r := m.Replace; r != nil {
		if r.Replace != nil {
			return fmt.Errorf("%w: module %q: a replacement is replaced", ErrMalformed, truncate(m.Path))
		}
		return r.validate(false)
	}
	return nil
}

// checkText checks a text field: valid UTF-8, no control characters, at
// most maxTextLen bytes and, if required, not empty.
func checkText(what, s string, required bool) error {
	switch {
	case required && s == "":
		return fmt.Errorf("%w: empty %s", ErrMalformed, what)
	case len(s) > maxTextLen:
		return fmt.Errorf("%w: %s is %d bytes, at most %d", ErrMalformed, what, len(s), maxTextLen)
	case !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return fmt.Errorf("%w: %s %q has control characters or is not UTF-8", ErrMalformed, what, truncate(s))
	}
	return nil
}

// quoteLabel separates the TPM quote's qualifying data from every other
// SHA-256 in ztmesh.
const quoteLabel = "ztmesh/tpm-quote/v1"

// QuoteExtraData is the qualifying data ("extraData") a TPM quote in
// evidence must carry: SHA-256 of the label "ztmesh/tpm-quote/v1", a zero
// byte and the evidence payload. The payload holds the nonce, the time, the
// subject and every measured value, so a quote made for other evidence
// (another nonce, an earlier time, another node) does not fit.
func QuoteExtraData(payload []byte) []byte {
	h := sha256.New()
	h.Write([]byte(quoteLabel))
	h.Write([]byte{0})
	h.Write(payload)
	return h.Sum(nil)
}
