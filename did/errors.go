package did

import (
	"errors"

	"github.com/ztmesh/ztmesh/internal/fsutil"
)

// Errors returned when a credential or revocation list is rejected. Callers
// test for them with errors.Is; the wrapping error adds the detail.
var (
	// ErrMalformed: the input is not a well-formed ztmesh credential or
	// revocation list (bad encoding, bad header, missing fields).
	ErrMalformed = errors.New("malformed")
	// ErrTooLarge: the input is bigger than the size limit; it was not parsed.
	// It is fsutil.ErrTooLarge, so a file over its limit matches it too.
	ErrTooLarge = fsutil.ErrTooLarge
	// ErrBadSignature: the signature does not verify with the issuer's key.
	ErrBadSignature = errors.New("bad signature")
	// ErrUntrustedIssuer: the issuer is not one of the pinned issuer DIDs.
	ErrUntrustedIssuer = errors.New("untrusted issuer")
	// ErrExpired: the credential's exp is in the past (beyond the clock skew).
	ErrExpired = errors.New("expired")
	// ErrNotYetValid: the credential's nbf is in the future (beyond the skew).
	ErrNotYetValid = errors.New("not yet valid")
	// ErrRevoked: a revocation list names the credential or its subject.
	ErrRevoked = errors.New("revoked")
	// ErrSubjectMismatch: the credential's subject is not the expected holder.
	ErrSubjectMismatch = errors.New("subject mismatch")
	// ErrInvalidClaim: a claim is outside its allowed range or syntax.
	ErrInvalidClaim = errors.New("invalid claim")
	// ErrRollback: a revocation list is older than one already accepted.
	ErrRollback = errors.New("revocation list rollback")

	// ErrKeyPermissions: a key file is readable by group or others.
	ErrKeyPermissions = errors.New("key file permissions too open")
	// ErrNoIdentity: the data directory has no identity.
	ErrNoIdentity = errors.New("no identity")
	// ErrIdentityExists: the data directory already has an identity.
	ErrIdentityExists = errors.New("identity already exists")
	// ErrPassphraseRequired: the key file is encrypted and no passphrase was given.
	ErrPassphraseRequired = errors.New("passphrase required")
	// ErrBadDID: the string is not an Ed25519 did:key.
	ErrBadDID = errors.New("not an Ed25519 did:key")
)
