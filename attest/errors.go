package attest

import "errors"

// Errors returned when evidence or reference values are rejected, or a TPM
// cannot be used. Callers test for them with errors.Is; the wrapping error
// adds the detail. Verify does not return errors: it reports every problem
// it finds in a Result.
var (
	// ErrMalformed: the input is not well-formed evidence or reference
	// values (bad encoding, unknown or missing fields, values out of range,
	// not in canonical form).
	ErrMalformed = errors.New("malformed")
	// ErrTooLarge: the input is bigger than the size limit; it was not parsed.
	ErrTooLarge = errors.New("too large")
	// ErrBadSignature: the signature does not verify with the signer's key.
	ErrBadSignature = errors.New("bad signature")
	// ErrStale: the evidence is older than the verifier's maximum age.
	ErrStale = errors.New("stale evidence")
	// ErrFuture: the evidence is dated further in the future than the
	// allowed clock skew.
	ErrFuture = errors.New("evidence from the future")
	// ErrUntrustedIssuer: reference values signed by an issuer that is not
	// pinned.
	ErrUntrustedIssuer = errors.New("untrusted issuer")
	// ErrRollback: reference values whose version is not higher than the
	// version in force.
	ErrRollback = errors.New("reference values rollback")
	// ErrOtherMesh: reference values signed for another mesh, or for none.
	ErrOtherMesh = errors.New("reference values for another mesh")
	// ErrExpired: reference values whose expiry has passed.
	ErrExpired = errors.New("reference values expired")
	// ErrNoTPM: there is no TPM device on this machine.
	ErrNoTPM = errors.New("no TPM")
	// ErrTPM: the TPM failed to create an attestation key or a quote.
	ErrTPM = errors.New("TPM error")
	// ErrNoBuildInfo: the running binary has no Go build information (it
	// was not built with module support).
	ErrNoBuildInfo = errors.New("no Go build information")
)
