package policy

import "errors"

// Errors returned when a policy or a policy bundle is refused. Callers test
// for them with errors.Is; the wrapping error adds the detail. A refused
// policy never replaces the one in force.
var (
	// ErrMalformed: the bundle is not a well-formed ztmesh policy bundle (bad
	// encoding, unknown or missing fields, bad module names).
	ErrMalformed = errors.New("malformed")
	// ErrTooLarge: the bundle or a policy file is bigger than MaxBundleSize;
	// it was not parsed.
	ErrTooLarge = errors.New("too large")
	// ErrBadSignature: the bundle's signature does not verify with its
	// issuer's key.
	ErrBadSignature = errors.New("bad signature")
	// ErrUntrustedIssuer: the bundle's issuer is not a pinned issuer DID.
	ErrUntrustedIssuer = errors.New("untrusted issuer")
	// ErrRollback: the bundle's version is not greater than the version of
	// the last bundle applied (an old bundle, or the current one replayed).
	ErrRollback = errors.New("policy bundle rollback")
	// ErrCompile: the Rego modules do not parse or compile, or they do not
	// define data.ztmesh.authz.allow.
	ErrCompile = errors.New("policy does not compile")
	// ErrOtherMesh: the bundle was signed for another mesh, or for none.
	ErrOtherMesh = errors.New("bundle for another mesh")
	// ErrExpired: the bundle's expiry has passed.
	ErrExpired = errors.New("bundle expired")
)

// ErrDenied wraps a refusal by the policy in force: of a publish, a
// subscribe or a state write. The wrapping error cites the policy's reasons.
var ErrDenied = errors.New("denied by policy")
