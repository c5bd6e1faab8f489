package attest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/version"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/mod/semver"

	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/internal/envelope"
	"github.com/ztmesh/ztmesh/internal/wire"
)

// Reference values format constants. docs/ATTESTATION.md specifies the format.
const (
	// ReferenceContext is the domain-separation context of a reference
	// values signature.
	ReferenceContext = "ztmesh/attest-reference/v1"
	// MaxReferenceSize caps reference values before they are parsed.
	MaxReferenceSize = 256 << 10

	// MainModuleKey and GoKey are the MinVersions keys of the main
	// module's version and of the Go toolchain's version. A module path
	// works for the main module too.
	MainModuleKey = "main"
	GoKey         = "go"

	maxReferenceEntries = 1024 // in each list or map
	maxAttestationKeys  = 3000 // one per enrolled machine: 3000 × 67 bytes ≈ 200 KB
)

// Reference is a signed list of allowed measurements: which binaries may
// run, the minimum version of modules (and of Go), modules or versions that
// must not be linked in, and whether a hardware root of trust is required.
// An issuer signs it with a version that increases with each new list.
type Reference struct {
	Issuer   did.DID
	Version  uint64
	IssuedAt time.Time
	// Mesh is the mesh the values are for and Expires when they stop
	// applying; both are set, or neither (the first format, which a node
	// accepts only from a file its operator configured).
	Mesh    string
	Expires time.Time
	// AllowedBinaries are the SHA-256 of the executables allowed to run,
	// lowercase hex; at least one.
	AllowedBinaries []string
	// MinVersions maps a module path, MainModuleKey or "" (the main
	// module), or GoKey (the toolchain, "go1.26.8") to the lowest version
	// allowed, compared as semantic versions ("v1.10.0" > "v1.9.0"). A
	// module that is not in the build is not checked.
	MinVersions map[string]string
	// Forbidden are modules that must not be in the build: any version if
	// Version is "", else that version (Sum is ignored). A replaced
	// module matches by its own or its replacement's path.
	Forbidden []Module
	// RequireHardware refuses software-only evidence.
	RequireHardware bool
	// PCRs, if any, are the required values of SHA-256 PCRs (lowercase
	// hex) by index. They are checked in hardware evidence only: with
	// RequireHardware unset, software-only evidence is not held to them.
	PCRs map[int]string
	// AttestationKeys, if any, are the enrolled TPM attestation keys
	// (TPMQuote.AKFingerprint, recorded when each machine was set up). A
	// quote from any other key is not accepted as hardware evidence:
	// without enrollment, a node that holds its DID key can certify a key
	// of its own making and pass software quotes off as a TPM's.
	AttestationKeys []string
	// Raw is the signed reference values as received, without surrounding space.
	Raw []byte
}

// referenceFormat is reference values on the wire: the payload's exact
// bytes and an Ed25519 signature over them, each in standard base64 with
// padding (internal/envelope).
var referenceFormat = &envelope.Format{
	Context:      ReferenceContext,
	Name:         "reference values",
	MaxSize:      MaxReferenceSize,
	ErrTooLarge:  ErrTooLarge,
	ErrMalformed: ErrMalformed,
}

type referencePayload struct {
	Issuer          string            `json:"issuer"`
	Version         uint64            `json:"version"`
	IssuedAt        string            `json:"issued_at"`
	Mesh            string            `json:"mesh,omitempty"`
	Expires         string            `json:"expires,omitempty"`
	AllowedBinaries []string          `json:"allowed_binaries"`
	MinVersions     map[string]string `json:"min_versions"`
	Forbidden       []forbiddenJSON   `json:"forbidden"`
	RequireHardware bool              `json:"require_hardware"`
	PCRs            map[string]string `json:"pcrs"`
	AttestationKeys []string          `json:"attestation_keys"`
}

type forbiddenJSON struct {
	Path    string `json:"path"`
	Version string `json:"version,omitempty"`
}

// SignReference signs ref as its issuer at time now and returns the signed
// reference values. ref.Version must be at least 1. ref's Issuer, IssuedAt
// and Raw are ignored; the parsed result of VerifyReference has them.
func SignReference(issuer *did.Identity, ref *Reference, now time.Time) ([]byte, error) {
	if err := ref.validate(); err != nil {
		return nil, err
	}
	p := referencePayload{
		Issuer:          issuer.DID().String(),
		Version:         ref.Version,
		IssuedAt:        now.UTC().Format(time.RFC3339),
		Mesh:            ref.Mesh,
		AllowedBinaries: slices.Sorted(slices.Values(ref.AllowedBinaries)),
		MinVersions:     maps.Clone(ref.MinVersions),
		Forbidden:       make([]forbiddenJSON, 0, len(ref.Forbidden)),
		RequireHardware: ref.RequireHardware,
		PCRs:            make(map[string]string, len(ref.PCRs)),
		AttestationKeys: slices.Sorted(slices.Values(ref.AttestationKeys)),
	}
	if !ref.Expires.IsZero() {
		p.Expires = ref.Expires.UTC().Format(time.RFC3339)
	}
	if p.AttestationKeys == nil {
		p.AttestationKeys = []string{}
	}
	if p.MinVersions == nil {
		p.MinVersions = map[string]string{}
	}
	for _, f := range ref.Forbidden {
		p.Forbidden = append(p.Forbidden, forbiddenJSON{Path: f.Path, Version: f.Version})
	}
	for i, v := range ref.PCRs {
		p.PCRs[strconv.Itoa(i)] = v
	}
	payload, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	return referenceFormat.Seal(issuer, payload, nil)
}

// VerifyReference checks signed reference values: size, then strict
// structure (unknown fields refused), then that the issuer is trusted
// (trusted reports whether a DID is a pinned issuer), then the signature
// over the exact payload bytes. It does not compare the version with
// earlier reference values: References.Update does.
func VerifyReference(data []byte, trusted func(did.DID) bool) (*Reference, error) {
	env, err := referenceFormat.Open(data)
	if err != nil {
		return nil, fmt.Errorf("reference values rejected: %w", err)
	}
	ref, err := decodeReference(env.Payload)
	if err != nil {
		return nil, fmt.Errorf("reference values rejected: %w", err)
	}
	if trusted == nil || !trusted(ref.Issuer) {
		return nil, fmt.Errorf("reference values rejected: %w: %s is not a pinned issuer", ErrUntrustedIssuer, ref.Issuer)
	}
	if !referenceFormat.Verify(ref.Issuer.PublicKey(), env) {
		return nil, fmt.Errorf("reference values rejected: %w: signature does not verify with the key of %s", ErrBadSignature, ref.Issuer)
	}
	ref.Raw = bytes.Clone(env.Raw)
	return ref, nil
}

func decodeReference(payload []byte) (*Reference, error) {
	var p referencePayload
	if err := wire.DecodeStrict(payload, &p); err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
	}
	iss, err := did.ParseDID(p.Issuer)
	if err != nil {
		return nil, fmt.Errorf("%w: issuer: %v", ErrMalformed, err)
	}
	issued, err := time.Parse(time.RFC3339, p.IssuedAt)
	if err != nil {
		return nil, fmt.Errorf("%w: issued_at: %v", ErrMalformed, err)
	}
	var expires time.Time
	if p.Expires != "" {
		if expires, err = time.Parse(time.RFC3339, p.Expires); err != nil {
			return nil, fmt.Errorf("%w: expires: %v", ErrMalformed, err)
		}
	}
	ref := &Reference{
		Issuer:          iss,
		Version:         p.Version,
		IssuedAt:        issued.UTC(),
		Mesh:            p.Mesh,
		Expires:         expires.UTC(),
		AllowedBinaries: p.AllowedBinaries,
		MinVersions:     p.MinVersions,
		RequireHardware: p.RequireHardware,
		AttestationKeys: p.AttestationKeys,
	}
	if len(ref.AttestationKeys) == 0 {
		ref.AttestationKeys = nil
	}
	for _, f := range p.Forbidden {
		ref.Forbidden = append(ref.Forbidden, Module{Path: f.Path, Version: f.Version})
	}
	if len(p.PCRs) > 0 {
		ref.PCRs = make(map[int]string, len(p.PCRs))
		for k, v := range p.PCRs {
			i, err := strconv.Atoi(k)
			if err != nil || strconv.Itoa(i) != k {
				return nil, fmt.Errorf("%w: PCR index %q", ErrMalformed, truncate(k))
			}
			ref.PCRs[i] = v
		}
	}
	if err := ref.validate(); err != nil {
		return nil, err
	}
	return ref, nil
}

// CheckScope reports whether r applies in mesh at now: signed for that
// mesh (ErrOtherMesh; the first format names none) and not expired
// (ErrExpired).
func (r *Reference) CheckScope(mesh string, now time.Time) error {
	if r.Mesh == "" {
		return fmt.Errorf("%w: version %d from %s names no mesh (first format): sign them again with --mesh", ErrOtherMesh, r.Version, r.Issuer)
	}
	if r.Mesh != mesh {
		return fmt.Errorf("%w: version %d from %s are for mesh %q, this node is in mesh %q", ErrOtherMesh, r.Version, r.Issuer, truncate(r.Mesh), mesh)
	}
	if !now.Before(r.Expires) {
		return fmt.Errorf("%w: version %d from %s expired at %s", ErrExpired, r.Version, r.Issuer, r.Expires.Format(time.RFC3339))
	}
	return nil
}

// validate checks the values an issuer may sign.
func (r *Reference) validate() error {
	if (r.Mesh == "") != r.Expires.IsZero() {
		return fmt.Errorf("%w: reference values name both their mesh and their expiry, or neither", ErrMalformed)
	}
	if len(r.Mesh) > 64 || !utf8.ValidString(r.Mesh) {
		return fmt.Errorf("%w: mesh name", ErrMalformed)
	}
	if r.Version == 0 {
		return fmt.Errorf("%w: reference values version must be at least 1", ErrMalformed)
	}
	if len(r.AllowedBinaries) == 0 {
		return fmt.Errorf("%w: no allowed binaries: list the SHA-256 of every binary allowed to run", ErrMalformed)
	}
	if len(r.AllowedBinaries) > maxReferenceEntries || len(r.MinVersions) > maxReferenceEntries ||
		len(r.Forbidden) > maxReferenceEntries || len(r.PCRs) > maxPCR+1 || len(r.AttestationKeys) > maxAttestationKeys {
		return fmt.Errorf("%w: too many entries in a list (%d at most, %d attestation keys)", ErrMalformed, maxReferenceEntries, maxAttestationKeys)
	}
	for _, h := range r.AttestationKeys {
		if !isHexSHA256(h) {
			return fmt.Errorf("%w: attestation key %q is not lowercase hex SHA-256", ErrMalformed, truncate(h))
		}
	}
	for _, h := range r.AllowedBinaries {
		if !isHexSHA256(h) {
			return fmt.Errorf("%w: allowed binary %q is not lowercase hex SHA-256", ErrMalformed, truncate(h))
		}
	}
	for k, v := range r.MinVersions {
		switch k {
		case GoKey:
			if !version.IsValid(v) {
				return fmt.Errorf("%w: minimum Go version %q: write it like go1.26.8", ErrMalformed, truncate(v))
			}
		default:
			if k != "" && k != MainModuleKey {
				if err := checkText("module path", k, true); err != nil {
					return err
				}
			}
			if !semver.IsValid(v) {
				return fmt.Errorf("%w: minimum version %q of %q is not a semantic version like v1.2.3", ErrMalformed, truncate(v), truncate(k))
			}
		}
	}
	for _, f := range r.Forbidden {
		if err := checkText("forbidden module path", f.Path, true); err != nil {
			return err
		}
		if err := checkText("forbidden module version", f.Version, false); err != nil {
			return err
		}
	}
	for i, v := range r.PCRs {
		if i < 0 || i > maxPCR {
			return fmt.Errorf("%w: PCR index %d out of range 0..%d", ErrMalformed, i, maxPCR)
		}
		if !isHexSHA256(v) {
			return fmt.Errorf("%w: PCR %d value %q is not lowercase hex SHA-256", ErrMalformed, i, truncate(v))
		}
	}
	return nil
}

// References holds the reference values in force: the newest verified ones
// from any pinned issuer. It refuses reference values whose version is not
// higher than the one in force (ErrRollback), so an old, laxer list cannot
// be replayed. It is safe for concurrent use.
type References struct {
	trusted func(did.DID) bool

	mu    sync.RWMutex
	cur   *Reference
	floor uint64 // no version at or below it is accepted
}

// RaiseFloor refuses, from now on, reference values whose version is not
// above floor (a node restores the highest version it persisted, even of
// values that have since expired). It never lowers the floor.
func (r *References) RaiseFloor(floor uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.floor = max(r.floor, floor)
}

// NewReferences returns an empty holder that accepts reference values
// signed by issuers for which trusted returns true.
func NewReferences(trusted func(did.DID) bool) *References {
	return &References{trusted: trusted}
}

// Update verifies signed reference values and puts them in force. Values
// with a version lower than the one in force, or a different list under the
// same version, are refused with ErrRollback. Receiving the values in force
// again (gossip repeats) is a no-op: changed is false.
func (r *References) Update(data []byte) (ref *Reference, changed bool, err error) {
	ref, err = VerifyReference(data, r.trusted)
	if err != nil {
		return nil, false, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cur == nil && ref.Version <= r.floor {
		return nil, false, fmt.Errorf("reference values rejected: %w: version %d from %s is not newer than version %d accepted before",
			ErrRollback, ref.Version, ref.Issuer, r.floor)
	}
	if cur := r.cur; cur != nil {
		switch {
		case ref.Version == cur.Version && bytes.Equal(ref.Raw, cur.Raw):
			return cur, false, nil
		case ref.Version < cur.Version:
			return nil, false, fmt.Errorf("reference values rejected: %w: version %d from %s is older than version %d in force",
				ErrRollback, ref.Version, ref.Issuer, cur.Version)
		case ref.Version == cur.Version:
			return nil, false, fmt.Errorf("reference values rejected: %w: different reference values with version %d are already in force; sign new ones with a higher version",
				ErrRollback, ref.Version)
		}
	}
	r.cur = ref
	return ref, true, nil
}

// Current returns the reference values in force, or nil before the first
// Update. The caller must not modify them.
func (r *References) Current() *Reference {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.cur
}

// String summarizes the reference values for logs.
func (r *Reference) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "reference values v%d by %s: %d binaries, %d minimum versions, %d forbidden modules",
		r.Version, r.Issuer, len(r.AllowedBinaries), len(r.MinVersions), len(r.Forbidden))
	if r.RequireHardware {
		b.WriteString(", hardware required")
	}
	if len(r.PCRs) > 0 {
		fmt.Fprintf(&b, ", %d PCRs pinned", len(r.PCRs))
	}
	if len(r.AttestationKeys) > 0 {
		fmt.Fprintf(&b, ", %d attestation keys enrolled", len(r.AttestationKeys))
	}
	return b.String()
}
