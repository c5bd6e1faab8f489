package did

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Verifier checks credentials against a pinned set of issuer DIDs. It is
// safe for concurrent use; its revocation set may be updated while it verifies.
type Verifier struct {
	issuers     map[DID]bool // fixed at NewVerifier
	skew        time.Duration
	revocations *Revocations
	authentic   authenticCache
}

// authenticCache remembers the credentials whose signature and structure
// a verifier has checked, by the SHA-256 of the token as received. A node
// meets the same credential again and again (in the holder's handshake,
// in its announcements, in every peer's sync), and the signature check
// and the aries decoding were 5% of the CPU of 1,000 nodes making
// connections. Both are functions of the token and the pinned issuers,
// which do not change; what depends on the time or the caller (validity
// window, revocation, holder) is checked on every call. Only tokens that
// passed are kept, so junk costs a full check every time and never takes
// a place. Callers get a copy that shares its slices (zones,
// capabilities) with the cached entry: a verified credential is read-only.
type authenticCache struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]*Credential
}

// authenticCacheSize bounds the cache: the credentials of a few zones of
// a hundred members. Past it, an arbitrary entry makes room.
const authenticCacheSize = 512

func (a *authenticCache) get(key [sha256.Size]byte) (*Credential, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c, ok := a.m[key]
	return c, ok
}

func (a *authenticCache) put(key [sha256.Size]byte, c *Credential) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = make(map[[sha256.Size]byte]*Credential)
	}
	if len(a.m) >= authenticCacheSize {
		for k := range a.m {
			delete(a.m, k)
			break
		}
	}
	a.m[key] = c
}

// VerifierOption configures a Verifier.
type VerifierOption func(*Verifier) error

// WithClockSkew sets how far apart the verifier's and issuer's clocks may be
// (DefaultClockSkew if not set). It must be between 0 and 10 minutes.
func WithClockSkew(d time.Duration) VerifierOption {
	return func(v *Verifier) error {
		if d < 0 || d > 10*time.Minute {
			return fmt.Errorf("clock skew %s is outside 0..10m", d)
		}
		v.skew = d
		return nil
	}
}

// NewVerifier returns a verifier that trusts credentials signed by the given
// issuers only. It has an empty revocation set (see Revocations).
func NewVerifier(issuers []DID, opts ...VerifierOption) (*Verifier, error) {
	if len(issuers) == 0 {
		return nil, errors.New("no trusted issuers: pin at least one issuer DID")
	}
	v := &Verifier{issuers: make(map[DID]bool, len(issuers)), skew: DefaultClockSkew}
	for _, d := range issuers {
		if d.IsZero() {
			return nil, fmt.Errorf("%w: zero DID in trusted issuers", ErrBadDID)
		}
		v.issuers[d] = true
	}
	for _, o := range opts {
		if err := o(v); err != nil {
			return nil, err
		}
	}
	v.revocations = newRevocations(v.issuers)
	return v, nil
}

// Issuers returns the pinned issuer DIDs, sorted.
func (v *Verifier) Issuers() []DID {
	out := make([]DID, 0, len(v.issuers))
	for d := range v.issuers {
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b DID) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// Trusts reports whether d is a pinned issuer.
func (v *Verifier) Trusts(d DID) bool { return v.issuers[d] }

// Revocations returns the verifier's revocation set.
func (v *Verifier) Revocations() *Revocations { return v.revocations }

// Verify checks a credential at time now and returns it if every check
// passes. The order matters: size and structure first, then the issuer is
// pinned, then the signature, and only then are the claims (which the
// signature now vouches for) judged. Past the signature, every problem found
// is reported together.
func (v *Verifier) Verify(token []byte, now time.Time) (*Credential, error) {
	return v.verify(token, DID{}, now)
}

// VerifyHolder is Verify plus a check that the credential's subject is holder,
// for example the authenticated peer that presented it.
func (v *Verifier) VerifyHolder(token []byte, holder DID, now time.Time) (*Credential, error) {
	if holder.IsZero() {
		return nil, fmt.Errorf("%w: no expected holder given", ErrSubjectMismatch)
	}
	return v.verify(token, holder, now)
}

func (v *Verifier) verify(token []byte, holder DID, now time.Time) (*Credential, error) {
	key := sha256.Sum256(token)
	c, ok := v.authentic.get(key)
	if !ok {
		var err error
		if c, err = v.authenticate(token); err != nil {
			return nil, err
		}
		v.authentic.put(key, c)
	}

	var errs []error
	if !c.Expires.After(c.NotBefore) {
		errs = append(errs, fmt.Errorf("%w: exp %s is not after nbf %s", ErrInvalidClaim, stamp(c.Expires), stamp(c.NotBefore)))
	}
	if now.After(c.Expires.Add(v.skew)) {
		errs = append(errs, fmt.Errorf("%w at %s; issue a new one with `ztmesh cred issue`", ErrExpired, stamp(c.Expires)))
	}
	if now.Add(v.skew).Before(c.NotBefore) {
		errs = append(errs, fmt.Errorf("%w: valid from %s; check the clocks of issuer and node", ErrNotYetValid, stamp(c.NotBefore)))
	}
	if err := c.Claims.Validate(); err != nil {
		errs = append(errs, err)
	}
	if !holder.IsZero() && holder != c.Subject {
		errs = append(errs, fmt.Errorf("%w: credential is for %s, presented by %s", ErrSubjectMismatch, c.Subject, holder))
	}
	if err := v.revocations.Check(c); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("credential %s rejected: %w", c.ID, err)
	}
	out := *c // the cached one stays as it is
	return &out, nil
}

// Recheck tells whether a credential this verifier accepted earlier is
// still valid at now: not expired (with the verifier's clock skew) and not
// revoked since. It is the check for a credential held in memory, which
// does not need its signature checked again (compare nebula's
// CAPool.VerifyCachedCertificate); everything that can change with the
// time or the revocation set is checked.
func (v *Verifier) Recheck(c *Credential, now time.Time) error {
	if c == nil {
		return errors.New("no credential")
	}
	if now.After(c.Expires.Add(v.skew)) {
		return fmt.Errorf("credential %s: %w at %s", c.ID, ErrExpired, stamp(c.Expires))
	}
	return v.revocations.Check(c)
}

// authenticate checks what does not change with the time or the caller:
// structure, pinned issuer, signature, the embedded credential.
func (v *Verifier) authenticate(token []byte) (*Credential, error) {
	d, err := decodeJWT(token)
	if err != nil {
		return nil, fmt.Errorf("credential rejected: %w", err)
	}
	c := &d.cred
	if d.kidIssuer != c.Issuer {
		return nil, fmt.Errorf("credential rejected: %w: signing key %s is not the issuer %s",
			ErrBadSignature, d.kidIssuer, c.Issuer)
	}
	if !v.issuers[c.Issuer] {
		return nil, fmt.Errorf("credential rejected: %w: %s is not a pinned issuer; add it with --trust-issuer if you trust it",
			ErrUntrustedIssuer, c.Issuer)
	}
	if !verifyJWS(c.Issuer, d.jws) {
		return nil, fmt.Errorf("credential rejected: %w: signature does not verify with the key of %s", ErrBadSignature, c.Issuer)
	}
	// Only now, with the signature checked, is the body handed to aries.
	if err := d.decodeClaims(); err != nil {
		return nil, fmt.Errorf("credential rejected: %w", err)
	}
	// A copy, so that the decoding (JWS parts, embedded credential) is not
	// kept alive with it: a node holds a credential for every member of
	// its mesh.
	out := *c
	return &out, nil
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
