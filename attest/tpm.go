package attest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"sync"

	"github.com/google/go-tpm-tools/client"
	pb "github.com/google/go-tpm-tools/proto/tpm"
	"github.com/google/go-tpm-tools/quote"
	"github.com/google/go-tpm/legacy/tpm2"

	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/internal/wire"
)

// TPM constants.
const (
	// AKContext is the domain-separation context of the signature by which
	// a node's DID key certifies its TPM attestation key.
	AKContext = "ztmesh/tpm-ak/v1"
	// DefaultTPMPath is the TPM resource manager device on Linux.
	DefaultTPMPath = "/dev/tpmrm0"

	pcrBankSHA256 = "sha256"
	maxPCR        = 23   // PCRs 0..23 of a PC-client TPM
	maxTPMBlob    = 2048 // an AK public area, a quote or its signature
)

// TPM makes quotes: statements about the TPM's PCR values (the boot chain's
// measurements), signed by an attestation key (AK) that never leaves the TPM.
// OpenTPM opens the machine's TPM; tests use NewTPM with the simulator.
type TPM interface {
	// Quote quotes the TPM's selected SHA-256 PCRs with extraData as the
	// qualifying data, and returns the quote with the AK's public area
	// and the PCR values. AKCertification is left empty: Sign adds it.
	Quote(extraData []byte) (*TPMQuote, error)
	// Close releases the TPM.
	Close() error
}

// TPMQuote is the hardware part of evidence. The TPM byte strings are in
// the TPM 2.0 wire format, as the TPM produced them.
type TPMQuote struct {
	AKPublic        []byte // TPMT_PUBLIC of the attestation key
	AKCertification []byte // Ed25519 by the subject's DID key over AKPublic, context AKContext
	Quote           []byte // TPMS_ATTEST, the quoted statement
	Signature       []byte // TPMT_SIGNATURE by the AK over Quote
	PCRs            []PCR  // the quoted PCRs of the SHA-256 bank, in index order
}

// PCR is one platform configuration register's value.
type PCR struct {
	Index int
	Value []byte // SHA-256 bank: 32 bytes
}

// AKFingerprint returns the lowercase hex SHA-256 of the attestation key's
// public area. A TPM's AK is the same across restarts, so operators can pin
// it (see docs/ATTESTATION.md on what a quote does and does not prove).
func (q *TPMQuote) AKFingerprint() string { return HashBytes(q.AKPublic) }

func (q *TPMQuote) clone() *TPMQuote {
	c := &TPMQuote{
		AKPublic:        bytes.Clone(q.AKPublic),
		AKCertification: bytes.Clone(q.AKCertification),
		Quote:           bytes.Clone(q.Quote),
		Signature:       bytes.Clone(q.Signature),
		PCRs:            make([]PCR, len(q.PCRs)),
	}
	for i, p := range q.PCRs {
		c.PCRs[i] = PCR{Index: p.Index, Value: bytes.Clone(p.Value)}
	}
	return c
}

// tpmSection is the TPM section of evidence on the wire.
type tpmSection struct {
	AKPublic        []byte    `json:"ak_public"`
	AKCertification []byte    `json:"ak_certification"`
	Quote           []byte    `json:"quote"`
	Signature       []byte    `json:"signature"`
	PCRBank         string    `json:"pcr_bank"`
	PCRs            []pcrJSON `json:"pcrs"`
}

type pcrJSON struct {
	Index int    `json:"index"`
	Value string `json:"value"` // lowercase hex
}

func (q *TPMQuote) encode() ([]byte, error) {
	if err := q.validate(); err != nil {
		return nil, err
	}
	s := tpmSection{
		AKPublic: q.AKPublic, AKCertification: q.AKCertification,
		Quote: q.Quote, Signature: q.Signature,
		PCRBank: pcrBankSHA256, PCRs: make([]pcrJSON, 0, len(q.PCRs)),
	}
	for _, p := range q.PCRs {
		s.PCRs = append(s.PCRs, pcrJSON{Index: p.Index, Value: hex.EncodeToString(p.Value)})
	}
	return json.Marshal(s)
}

func decodeTPMQuote(section []byte) (*TPMQuote, error) {
	var s tpmSection
	if err := wire.DecodeStrict(section, &s); err != nil {
		return nil, fmt.Errorf("%w: tpm section: %v", ErrMalformed, err)
	}
	if s.PCRBank != pcrBankSHA256 {
		return nil, fmt.Errorf("%w: tpm section: PCR bank %q, want %q", ErrMalformed, truncate(s.PCRBank), pcrBankSHA256)
	}
	q := &TPMQuote{
		AKPublic: s.AKPublic, AKCertification: s.AKCertification,
		Quote: s.Quote, Signature: s.Signature,
	}
	for _, p := range s.PCRs {
		v, err := hex.DecodeString(p.Value)
		if err != nil {
			return nil, fmt.Errorf("%w: tpm section: PCR %d: %v", ErrMalformed, p.Index, err)
		}
		q.PCRs = append(q.PCRs, PCR{Index: p.Index, Value: v})
	}
	if err := q.validate(); err != nil {
		return nil, err
	}
	if canon, err := q.encode(); err != nil || !bytes.Equal(canon, section) {
		return nil, fmt.Errorf("%w: tpm section is not in canonical form", ErrMalformed)
	}
	return q, nil
}

// validate checks the quote's shape, not its signatures: Verify does that.
func (q *TPMQuote) validate() error {
	for _, b := range []struct {
		what string
		v    []byte
	}{{"AK public area", q.AKPublic}, {"quote", q.Quote}, {"quote signature", q.Signature}} {
		if len(b.v) == 0 || len(b.v) > maxTPMBlob {
			return fmt.Errorf("%w: tpm section: %s is %d bytes, want 1 to %d", ErrMalformed, b.what, len(b.v), maxTPMBlob)
		}
	}
	if len(q.AKCertification) != ed25519.SignatureSize {
		return fmt.Errorf("%w: tpm section: AK certification is %d bytes, want %d", ErrMalformed, len(q.AKCertification), ed25519.SignatureSize)
	}
	if len(q.PCRs) == 0 {
		return fmt.Errorf("%w: tpm section: no PCRs", ErrMalformed)
	}
	for i, p := range q.PCRs {
		if p.Index < 0 || p.Index > maxPCR || (i > 0 && p.Index <= q.PCRs[i-1].Index) {
			return fmt.Errorf("%w: tpm section: PCR index %d out of range 0..%d or out of order", ErrMalformed, p.Index, maxPCR)
		}
		if len(p.Value) != sha256.Size {
			return fmt.Errorf("%w: tpm section: PCR %d is %d bytes, want %d", ErrMalformed, p.Index, len(p.Value), sha256.Size)
		}
	}
	return nil
}

// akAttributes are the attributes an attestation key must have: a signing
// key restricted to signing TPM-made structures (so it cannot sign a forged
// quote), created inside the TPM and unable to leave it.
const akAttributes = tpm2.FlagSign | tpm2.FlagRestricted | tpm2.FlagFixedTPM |
	tpm2.FlagFixedParent | tpm2.FlagSensitiveDataOrigin

// verifyQuote checks a quote in evidence of subject: the AK is certified by
// the subject's DID key and has the attributes of an AK; the quote is signed
// by the AK, carries extraData and its PCR digest matches the PCR values.
func verifyQuote(subject did.DID, q *TPMQuote, extraData []byte) error {
	if !did.VerifyDomain(subject.PublicKey(), AKContext, q.AKPublic, q.AKCertification) {
		return fmt.Errorf("the attestation key is not certified by %s", subject)
	}
	pub, err := tpm2.DecodePublic(q.AKPublic)
	if err != nil {
		return fmt.Errorf("attestation key: %v", err)
	}
	if pub.Attributes&akAttributes != akAttributes {
		return fmt.Errorf("attestation key attributes 0x%08x lack restricted, sign, fixedTPM, fixedParent or sensitiveDataOrigin", uint32(pub.Attributes))
	}
	key, err := pub.Key()
	if err != nil {
		return fmt.Errorf("attestation key: %v", err)
	}
	pcrs := &pb.PCRs{Hash: pb.HashAlgo_SHA256, Pcrs: make(map[uint32][]byte, len(q.PCRs))}
	for _, p := range q.PCRs {
		pcrs.Pcrs[uint32(p.Index)] = p.Value
	}
	// quote.Verify checks the AK's signature (SHA-256 or stronger), the
	// TPM_GENERATED magic and quote type, the qualifying data, that the
	// quoted PCR selection is exactly these PCRs and that their digest is
	// the quoted one.
	if err := quote.Verify(&pb.Quote{Quote: q.Quote, RawSig: q.Signature, Pcrs: pcrs}, key, extraData); err != nil {
		return err
	}
	return nil
}

// TPMOptions configures OpenTPM and NewTPM. The zero value quotes PCRs 0 to
// 7 (firmware, boot loader and Secure Boot state) of /dev/tpmrm0.
type TPMOptions struct {
	Path string // TPM device; "" is DefaultTPMPath
	PCRs []int  // SHA-256 PCRs to quote, 0..23; nil is 0 to 7
}

// OpenTPM opens the machine's TPM 2.0 and loads its attestation key. It
// returns an error wrapping ErrNoTPM when the device does not exist: the
// node then attests in software only.
func OpenTPM(opts TPMOptions) (TPM, error) {
	path := opts.Path
	if path == "" {
		path = DefaultTPMPath
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s does not exist", ErrNoTPM, path)
	}
	rwc, err := tpm2.OpenTPM(path)
	if err != nil {
		return nil, fmt.Errorf("%w: open %s: %v (is the user in the tss group?)", ErrTPM, path, err)
	}
	t, err := NewTPM(rwc, opts)
	if err != nil {
		rwc.Close()
		return nil, err
	}
	return t, nil
}

// NewTPM uses the TPM 2.0 on rwc: it creates the ECC P-256 attestation key
// of the TCG template (go-tpm-tools client.AttestationKeyECC) under the
// endorsement hierarchy. The key is derived from the TPM's endorsement seed,
// so it is the same each time. Close flushes the key and closes rwc; if
// NewTPM fails, rwc is left open.
func NewTPM(rwc io.ReadWriteCloser, opts TPMOptions) (TPM, error) {
	sel := tpm2.PCRSelection{Hash: tpm2.AlgSHA256, PCRs: []int{0, 1, 2, 3, 4, 5, 6, 7}}
	if opts.PCRs != nil {
		sel.PCRs = slices.Sorted(slices.Values(opts.PCRs))
		sel.PCRs = slices.Compact(sel.PCRs)
		if len(sel.PCRs) == 0 || sel.PCRs[0] < 0 || sel.PCRs[len(sel.PCRs)-1] > maxPCR {
			return nil, fmt.Errorf("%w: PCRs %v: give indexes 0 to %d", ErrMalformed, opts.PCRs, maxPCR)
		}
	}
	ak, err := client.AttestationKeyECC(rwc)
	if err != nil {
		return nil, fmt.Errorf("%w: create attestation key: %v", ErrTPM, err)
	}
	pub, err := ak.PublicArea().Encode()
	if err != nil {
		ak.Close()
		return nil, fmt.Errorf("%w: encode attestation key: %v", ErrTPM, err)
	}
	return &tpmDevice{rwc: rwc, ak: ak, akPublic: pub, sel: sel}, nil
}

// tpmDevice is a TPM reached through go-tpm-tools. TPM commands on one
// connection must not interleave, so mu serializes them.
type tpmDevice struct {
	mu       sync.Mutex
	rwc      io.ReadWriteCloser
	ak       *client.Key
	akPublic []byte
	sel      tpm2.PCRSelection
	closed   bool
}

func (d *tpmDevice) Quote(extraData []byte) (*TPMQuote, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, fmt.Errorf("%w: closed", ErrTPM)
	}
	// client.Key.Quote quotes, reads the PCRs and verifies the quote
	// against them: a PCR extended in between makes it fail, not lie.
	q, err := d.ak.Quote(d.sel, extraData)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTPM, err)
	}
	out := &TPMQuote{AKPublic: bytes.Clone(d.akPublic), Quote: q.GetQuote(), Signature: q.GetRawSig()}
	for _, i := range d.sel.PCRs {
		v, ok := q.GetPcrs().GetPcrs()[uint32(i)]
		if !ok {
			return nil, fmt.Errorf("%w: the TPM did not return PCR %d", ErrTPM, i)
		}
		out.PCRs = append(out.PCRs, PCR{Index: i, Value: v})
	}
	return out, nil
}

func (d *tpmDevice) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	d.ak.Close()
	return d.rwc.Close()
}
