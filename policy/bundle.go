package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"path"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/internal/envelope"
	"github.com/ztmesh/ztmesh/internal/wire"
)

// Policy bundle format constants. docs/POLICY.md specifies the format.
const (
	// BundleContext is the domain-separation context of a bundle signature
	// (see did.Identity.Sign): no other signed ztmesh object verifies as a
	// bundle, nor a bundle as anything else.
	BundleContext = "ztmesh/policy-bundle/v1"
	// MaxBundleSize caps a bundle before it is parsed, and a policy read
	// from files.
	MaxBundleSize = 1 << 20
	// maxModules and maxModuleName bound a bundle's module list.
	maxModules    = 256
	maxModuleName = 256
)

// Bundle is a verified policy bundle: Rego modules, signed by an issuer
// with a version that increases with each bundle it signs.
type Bundle struct {
	Issuer   did.DID
	Version  uint64
	IssuedAt time.Time
	// Mesh is the mesh the bundle was signed for and Expires when it stops
	// applying; both are empty (zero) in bundles of the first format, which
	// a node accepts only from a file its operator configured.
	Mesh    string
	Expires time.Time
	Modules map[string]string // Rego v1 source by module name (*.rego)
	Raw     []byte            // the signed bundle as received, without surrounding space
}

// bundleFormat is the bundle on the wire: the payload's exact bytes and an
// Ed25519 signature over them, each in standard base64 with padding
// (internal/envelope).
var bundleFormat = &envelope.Format{
	Context:      BundleContext,
	Name:         "bundle",
	MaxSize:      MaxBundleSize,
	ErrTooLarge:  ErrTooLarge,
	ErrMalformed: ErrMalformed,
}

// bundlePayload is what the issuer signs.
type bundlePayload struct {
	Issuer   string            `json:"issuer"`
	Version  uint64            `json:"version"`
	IssuedAt string            `json:"issued_at"`
	Mesh     string            `json:"mesh,omitempty"`
	Expires  string            `json:"expires,omitempty"`
	Modules  map[string]string `json:"modules"`
}

// Scope binds a signed artifact to one mesh and a lifetime. The zero Scope
// signs the first format, without either field: only a node's own files
// are trusted in it.
type Scope struct {
	Mesh    string
	Expires time.Time
}

// maxMeshName bounds a bundle's mesh name.
const maxMeshName = 64

// SignBundle signs modules as bundle version (at least 1) issued at now,
// for scope's mesh until scope's expiry. It refuses modules that do not
// compile (ErrCompile): a policy that no node would accept is never signed.
func SignBundle(issuer *did.Identity, modules map[string]string, version uint64, scope Scope, now time.Time) ([]byte, error) {
	if version == 0 {
		return nil, fmt.Errorf("%w: bundle version must be at least 1", ErrMalformed)
	}
	if err := checkModules(modules); err != nil {
		return nil, err
	}
	if err := Validate(modules); err != nil {
		return nil, err
	}
	if (scope.Mesh == "") != scope.Expires.IsZero() {
		return nil, fmt.Errorf("%w: a bundle names both its mesh and its expiry, or neither", ErrMalformed)
	}
	if len(scope.Mesh) > maxMeshName {
		return nil, fmt.Errorf("%w: mesh name longer than %d bytes", ErrMalformed, maxMeshName)
	}
	p := bundlePayload{
		Issuer:   issuer.DID().String(),
		Version:  version,
		IssuedAt: now.UTC().Format(time.RFC3339),
		Mesh:     scope.Mesh,
		Modules:  modules,
	}
	if !scope.Expires.IsZero() {
		p.Expires = scope.Expires.UTC().Format(time.RFC3339)
	}
	payload, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	return sealBundle(issuer, payload)
}

// sealBundle signs payload and wraps it in the envelope.
func sealBundle(issuer *did.Identity, payload []byte) ([]byte, error) {
	return bundleFormat.Seal(issuer, payload, nil)
}

// VerifyBundle checks a bundle: size, then strict structure (unknown fields
// refused), then that its issuer is trusted (trusted reports whether a DID is
// a pinned issuer), then the signature over the exact payload bytes. It does
// not compile the modules nor check the version against earlier bundles:
// Engine.ApplyBundle does. Each error wraps one of the package's sentinels.
func VerifyBundle(token []byte, trusted func(did.DID) bool) (*Bundle, error) {
	env, err := bundleFormat.Open(token)
	if err != nil {
		return nil, fmt.Errorf("policy bundle rejected: %w", err)
	}
	b, err := decodeBundle(env)
	if err != nil {
		return nil, fmt.Errorf("policy bundle rejected: %w", err)
	}
	if trusted == nil || !trusted(b.Issuer) {
		return nil, fmt.Errorf("policy bundle rejected: %w: %s is not a pinned issuer", ErrUntrustedIssuer, b.Issuer)
	}
	if !bundleFormat.Verify(b.Issuer.PublicKey(), env) {
		return nil, fmt.Errorf("policy bundle rejected: %w: signature does not verify with the key of %s", ErrBadSignature, b.Issuer)
	}
	return b, nil
}

func decodeBundle(env *envelope.Opened) (*Bundle, error) {
	var p bundlePayload
	if err := wire.DecodeStrict(env.Payload, &p); err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
	}
	iss, err := did.ParseDID(p.Issuer)
	if err != nil {
		return nil, fmt.Errorf("%w: issuer: %v", ErrMalformed, err)
	}
	if p.Version == 0 {
		return nil, fmt.Errorf("%w: version 0", ErrMalformed)
	}
	issued, err := time.Parse(time.RFC3339, p.IssuedAt)
	if err != nil {
		return nil, fmt.Errorf("%w: issued_at: %v", ErrMalformed, err)
	}
	if err := checkModules(p.Modules); err != nil {
		return nil, err
	}
	var expires time.Time
	if p.Expires != "" {
		if expires, err = time.Parse(time.RFC3339, p.Expires); err != nil {
			return nil, fmt.Errorf("%w: expires: %v", ErrMalformed, err)
		}
	}
	if (p.Mesh == "") != (p.Expires == "") {
		return nil, fmt.Errorf("%w: mesh and expires come together", ErrMalformed)
	}
	if len(p.Mesh) > maxMeshName || !utf8.ValidString(p.Mesh) {
		return nil, fmt.Errorf("%w: mesh name", ErrMalformed)
	}
	return &Bundle{
		Issuer:   iss,
		Version:  p.Version,
		IssuedAt: issued.UTC(),
		Mesh:     p.Mesh,
		Expires:  expires.UTC(),
		Modules:  maps.Clone(p.Modules),
		Raw:      bytes.Clone(env.Raw),
	}, nil
}

// checkModules checks the module list's shape: 1 to 256 modules, each named
// like a relative file path ending in .rego, at most 256 bytes of UTF-8.
func checkModules(modules map[string]string) error {
	if len(modules) == 0 {
		return fmt.Errorf("%w: no modules", ErrMalformed)
	}
	if len(modules) > maxModules {
		return fmt.Errorf("%w: %d modules, at most %d", ErrMalformed, len(modules), maxModules)
	}
	for name := range modules {
		ok := len(name) <= maxModuleName && utf8.ValidString(name) &&
			strings.HasSuffix(name, ".rego") && !path.IsAbs(name) &&
			path.Clean(name) == name && !strings.HasPrefix(name, "../") &&
			!strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' })
		if !ok {
			return fmt.Errorf("%w: module name %q: use a relative path ending in .rego", ErrMalformed, truncate(name))
		}
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// CheckScope reports whether b applies in mesh at now: signed for that mesh
// (ErrOtherMesh; a bundle of the first format names no mesh and is refused
// too) and not expired (ErrExpired).
func (b *Bundle) CheckScope(mesh string, now time.Time) error {
	if b.Mesh == "" {
		return fmt.Errorf("%w: version %d from %s names no mesh (first bundle format): sign it again with --mesh", ErrOtherMesh, b.Version, b.Issuer)
	}
	if b.Mesh != mesh {
		return fmt.Errorf("%w: version %d from %s is for mesh %q, this node is in mesh %q", ErrOtherMesh, b.Version, b.Issuer, truncate(b.Mesh), mesh)
	}
	if !now.Before(b.Expires) {
		return fmt.Errorf("%w: version %d from %s expired at %s", ErrExpired, b.Version, b.Issuer, b.Expires.Format(time.RFC3339))
	}
	return nil
}
