package attest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/internal/envelope"
	"github.com/ztmesh/ztmesh/internal/wire"
)

// Quarantine announcement format constants. docs/ATTESTATION.md specifies
// the format.
const (
	// QuarantineContext is the domain-separation context of a quarantine
	// announcement's signature.
	QuarantineContext = "ztmesh/quarantine/v1"
	// MaxQuarantineSize caps an announcement before it is parsed. Evidence
	// of MaxEvidenceSize is base64 twice over (in the payload, then the
	// payload in the envelope): 256 KiB × 16/9 ≈ 456 KiB, plus the DIDs.
	MaxQuarantineSize = 512 << 10
)

// Why a node announces a quarantine. Only what another node can check for
// itself is announced: rejected messages and rate-limit violations are
// seen by one node only and stay local.
const (
	// QuarantineFailed: the enclosed evidence fails the reference values.
	QuarantineFailed = "attestation_failed"
	// QuarantineStale: the enclosed evidence is the newest the announcer
	// has from the subject, and so old that it no longer counts.
	QuarantineStale = "evidence_stale"
)

// Quarantine is a signed statement by one node (Announcer) that it
// quarantined another (Subject), carrying the subject's own signed evidence
// that justified it. It is an accusation with its proof attached: a
// receiver trusts neither the announcer nor Reason, and re-judges Evidence
// against its own reference values.
type Quarantine struct {
	Announcer did.DID
	Subject   did.DID
	Reason    string // QuarantineFailed or QuarantineStale
	Time      time.Time
	// Evidence is the subject's signed evidence as the announcer received
	// it (Evidence.Raw); SubjectEvidence parses it.
	Evidence  []byte
	Signature []byte // Ed25519 by Announcer, context QuarantineContext
	Raw       []byte // the announcement as received, without surrounding space
}

// quarantineFormat is an announcement on the wire: the payload's exact
// bytes and an Ed25519 signature over them, each in standard base64 with
// padding (internal/envelope), in canonical form only.
var quarantineFormat = &envelope.Format{
	Context:      QuarantineContext,
	Name:         "announcement",
	MaxSize:      MaxQuarantineSize,
	Canonical:    true,
	ErrTooLarge:  ErrTooLarge,
	ErrMalformed: ErrMalformed,
}

type quarantinePayload struct {
	Announcer string `json:"announcer"`
	Subject   string `json:"subject"`
	Reason    string `json:"reason"`
	Time      string `json:"time"`
	Evidence  []byte `json:"evidence"`
}

// SignQuarantine signs an announcement by announcer at time now that
// q.Subject is quarantined for q.Reason, with q.Evidence (the subject's
// evidence as received) as proof. q's Announcer, Time, Signature and Raw
// are ignored.
func SignQuarantine(announcer *did.Identity, q *Quarantine, now time.Time) ([]byte, error) {
	c := &Quarantine{Announcer: announcer.DID(), Subject: q.Subject, Reason: q.Reason, Time: now.UTC(), Evidence: q.Evidence}
	if err := c.validate(); err != nil {
		return nil, err
	}
	payload, err := c.payload()
	if err != nil {
		return nil, err
	}
	return quarantineFormat.Seal(announcer, payload, nil)
}

// ParseQuarantine decodes a quarantine announcement: size first, then
// strict, canonical structure, then the announcer's signature over the
// exact payload bytes. It does not parse the enclosed evidence
// (SubjectEvidence does) and proves only that Announcer made the
// statement, not that it is true; the caller checks that Announcer is a
// member it knows. Each error wraps one of the package's sentinels.
func ParseQuarantine(data []byte) (*Quarantine, error) {
	env, err := quarantineFormat.Open(data)
	if err != nil {
		return nil, fmt.Errorf("quarantine announcement rejected: %w", err)
	}
	q, err := decodeQuarantine(env)
	if err != nil {
		return nil, fmt.Errorf("quarantine announcement rejected: %w", err)
	}
	if !quarantineFormat.Verify(q.Announcer.PublicKey(), env) {
		return nil, fmt.Errorf("quarantine announcement rejected: %w: signature does not verify with the key of %s", ErrBadSignature, q.Announcer)
	}
	return q, nil
}

// decodeQuarantine decodes the payload without checking the signature, refusing
// anything but what SignQuarantine produces for the same values.
func decodeQuarantine(env *envelope.Opened) (*Quarantine, error) {
	payload := env.Payload
	var p quarantinePayload
	if err := wire.DecodeStrict(payload, &p); err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
	}
	q := &Quarantine{Reason: p.Reason, Evidence: p.Evidence, Signature: env.Signature, Raw: bytes.Clone(env.Raw)}
	var err error
	if q.Announcer, err = did.ParseDID(p.Announcer); err != nil {
		return nil, fmt.Errorf("%w: announcer: %v", ErrMalformed, err)
	}
	if q.Subject, err = did.ParseDID(p.Subject); err != nil {
		return nil, fmt.Errorf("%w: subject: %v", ErrMalformed, err)
	}
	t, err := time.Parse(time.RFC3339Nano, p.Time)
	if err != nil {
		return nil, fmt.Errorf("%w: time: %v", ErrMalformed, err)
	}
	q.Time = t.UTC()
	if err := q.validate(); err != nil {
		return nil, err
	}
	if canon, err := q.payload(); err != nil || !bytes.Equal(canon, payload) {
		return nil, fmt.Errorf("%w: payload is not in canonical form", ErrMalformed)
	}
	return q, nil
}

func (q *Quarantine) validate() error {
	switch {
	case q.Reason != QuarantineFailed && q.Reason != QuarantineStale:
		return fmt.Errorf("%w: reason %q, want %q or %q", ErrMalformed, truncate(q.Reason), QuarantineFailed, QuarantineStale)
	case len(q.Evidence) == 0:
		return fmt.Errorf("%w: no evidence: an announcement carries the subject's evidence", ErrMalformed)
	case len(q.Evidence) > MaxEvidenceSize:
		return fmt.Errorf("%w: enclosed evidence of %d bytes, limit %d", ErrTooLarge, len(q.Evidence), MaxEvidenceSize)
	case q.Announcer == q.Subject:
		return fmt.Errorf("%w: %s announces its own quarantine", ErrMalformed, q.Subject)
	}
	return nil
}

// payload encodes q's statement as SignQuarantine signs it.
func (q *Quarantine) payload() ([]byte, error) {
	return json.Marshal(quarantinePayload{
		Announcer: q.Announcer.String(),
		Subject:   q.Subject.String(),
		Reason:    q.Reason,
		Time:      q.Time.UTC().Format(time.RFC3339Nano),
		Evidence:  q.Evidence,
	})
}

// SubjectEvidence parses the enclosed evidence (ParseEvidence with now and
// maxAge) and checks that the accused made it: evidence signed by anyone
// else proves nothing about the subject.
func (q *Quarantine) SubjectEvidence(now time.Time, maxAge time.Duration) (*Evidence, error) {
	e, err := ParseEvidence(q.Evidence, now, maxAge)
	if err != nil {
		return nil, err
	}
	if e.Subject != q.Subject {
		return nil, fmt.Errorf("evidence rejected: %w: it is signed by %s, not by the accused %s", ErrBadSignature, e.Subject, q.Subject)
	}
	return e, nil
}
