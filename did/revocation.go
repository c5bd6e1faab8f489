package did

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ztmesh/ztmesh/internal/wire"
)

// Revocation list format constants.
const (
	// RevocationListType is the JWS "typ" of a revocation list. A credential
	// (typ JWT) can never be read as a revocation list, nor the reverse.
	RevocationListType = "ztmesh-revocations+jwt"
	// MaxRevocationListSize caps a revocation list before it is parsed.
	MaxRevocationListSize = 1 << 20
	// maxCredentialIDLen bounds one revoked credential ID.
	maxCredentialIDLen = 256
)

// RevocationList is an issuer's signed list of revoked credential IDs and
// subject DIDs. Each new list from an issuer replaces the previous one and
// carries a higher Version.
type RevocationList struct {
	Issuer      DID
	Version     uint64
	IssuedAt    time.Time
	Credentials []string // revoked credential IDs
	Subjects    []DID    // revoked holders: every credential for them
	// Mesh is the mesh the list is for; "" (lists of the first format)
	// applies in every mesh: revoking more is the safe direction.
	Mesh string
	Raw  string // the signed token
}

type revocationPayload struct {
	Iss         string   `json:"iss"`
	Iat         int64    `json:"iat"`
	Version     uint64   `json:"version"`
	Credentials []string `json:"revokedCredentials"`
	Subjects    []string `json:"revokedSubjects"`
	Mesh        string   `json:"mesh,omitempty"`
}

// SignRevocationList signs l (its Issuer, Raw and IssuedAt fields are set
// from issuer and now) and returns the token.
func SignRevocationList(issuer *Identity, l *RevocationList, now time.Time) (string, error) {
	if l.Version == 0 {
		return "", fmt.Errorf("%w: revocation list version must be at least 1", ErrMalformed)
	}
	p := revocationPayload{
		Iss:         issuer.DID().String(),
		Iat:         now.Unix(),
		Version:     l.Version,
		Credentials: slices.Clone(l.Credentials),
		Subjects:    make([]string, 0, len(l.Subjects)),
		Mesh:        l.Mesh,
	}
	if len(l.Mesh) > maxMeshName {
		return "", fmt.Errorf("%w: mesh name longer than %d bytes", ErrMalformed, maxMeshName)
	}
	if p.Credentials == nil {
		p.Credentials = []string{}
	}
	for _, id := range p.Credentials {
		if id == "" || len(id) > maxCredentialIDLen {
			return "", fmt.Errorf("%w: credential ID %q", ErrMalformed, truncate(id))
		}
	}
	for _, s := range l.Subjects {
		p.Subjects = append(p.Subjects, s.String())
	}
	payload, err := json.Marshal(p)
	if err != nil {
		return "", err
	}
	tok, err := signCompact(issuer, RevocationListType, payload)
	if err != nil {
		return "", err
	}
	l.Issuer, l.IssuedAt, l.Raw = issuer.DID(), time.Unix(p.Iat, 0).UTC(), tok
	return tok, nil
}

// maxMeshName bounds a revocation list's mesh name.
const maxMeshName = 64

// ParseRevocationList verifies a revocation list's signature and that its
// issuer is trusted (trusted reports whether a DID is a pinned issuer).
// The signing key named in the header is checked against the pinned
// issuers, and the signature against it, before the payload is parsed: a
// list from an unpinned signer costs its header, not its subjects.
func ParseRevocationList(token []byte, trusted func(DID) bool) (*RevocationList, error) {
	j, kid, err := decodeRevocationHeader(token)
	if err != nil {
		return nil, fmt.Errorf("revocation list rejected: %w", err)
	}
	if !trusted(kid) {
		return nil, fmt.Errorf("revocation list rejected: %w: %s is not a pinned issuer", ErrUntrustedIssuer, kid)
	}
	if !verifyJWS(kid, j) {
		return nil, fmt.Errorf("revocation list rejected: %w: signature does not verify with the key of %s", ErrBadSignature, kid)
	}
	l, err := decodeRevocationPayload(j)
	if err != nil {
		return nil, fmt.Errorf("revocation list rejected: %w", err)
	}
	if kid != l.Issuer {
		return nil, fmt.Errorf("revocation list rejected: %w: signing key %s is not the issuer %s", ErrBadSignature, kid, l.Issuer)
	}
	return l, nil
}

// decodeRevocationHeader splits a revocation list and reads its header:
// the type and the signing key.
func decodeRevocationHeader(token []byte) (*jws, DID, error) {
	j, err := parseJWS(token, MaxRevocationListSize)
	if err != nil {
		return nil, DID{}, err
	}
	if j.header.Typ != RevocationListType {
		return nil, DID{}, fmt.Errorf("%w: header typ %q, want %q", ErrMalformed, j.header.Typ, RevocationListType)
	}
	kid, err := issuerFromKid(j.header.Kid)
	if err != nil {
		return nil, DID{}, err
	}
	return j, kid, nil
}

// decodeRevocationPayload parses the payload of a revocation list whose
// header decodeRevocationHeader read.
func decodeRevocationPayload(j *jws) (*RevocationList, error) {
	var p revocationPayload
	if err := wire.DecodeStrict(j.payload, &p); err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
	}
	iss, err := ParseDID(p.Iss)
	if err != nil {
		return nil, fmt.Errorf("%w: iss: %v", ErrMalformed, err)
	}
	if p.Version == 0 {
		return nil, fmt.Errorf("%w: version 0", ErrMalformed)
	}
	l := &RevocationList{
		Issuer:      iss,
		Version:     p.Version,
		IssuedAt:    time.Unix(p.Iat, 0).UTC(),
		Credentials: p.Credentials,
		Mesh:        p.Mesh,
		Raw:         string(j.signingInput) + "." + b64.EncodeToString(j.signature),
	}
	if len(p.Mesh) > maxMeshName {
		return nil, fmt.Errorf("%w: mesh name longer than %d bytes", ErrMalformed, maxMeshName)
	}
	for _, id := range p.Credentials {
		if id == "" || len(id) > maxCredentialIDLen {
			return nil, fmt.Errorf("%w: credential ID %q", ErrMalformed, truncate(id))
		}
	}
	for _, s := range p.Subjects {
		d, err := ParseDID(s)
		if err != nil {
			return nil, fmt.Errorf("%w: revoked subject: %v", ErrMalformed, err)
		}
		l.Subjects = append(l.Subjects, d)
	}
	return l, nil
}

// Revocations is the set of revocation lists a node has accepted: the newest
// list of each pinned issuer. Any pinned issuer may revoke any credential ID
// or subject: trust anchors are peers. It is safe for concurrent use.
type Revocations struct {
	trusted map[DID]bool

	mu       sync.RWMutex
	lists    map[DID]*RevocationList
	creds    map[string]DID // credential ID -> issuer of the list that revokes it
	subjects map[DID]DID    // subject -> issuer of the list that revokes it
}

func newRevocations(trusted map[DID]bool) *Revocations {
	return &Revocations{
		trusted:  trusted,
		lists:    map[DID]*RevocationList{},
		creds:    map[string]DID{},
		subjects: map[DID]DID{},
	}
}

// Update verifies a revocation list token and applies it. A list older than
// the one already held from the same issuer is refused with ErrRollback, as
// is a different list under the same version. Re-applying the held list is a
// no-op (changed is false).
func (r *Revocations) Update(token []byte) (l *RevocationList, changed bool, err error) {
	l, err = ParseRevocationList(token, func(d DID) bool { return r.trusted[d] })
	if err != nil {
		return nil, false, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if cur, ok := r.lists[l.Issuer]; ok {
		switch {
		case l.Version < cur.Version:
			return nil, false, fmt.Errorf("revocation list rejected: %w: version %d from %s is older than version %d already applied",
				ErrRollback, l.Version, l.Issuer, cur.Version)
		case l.Version == cur.Version && l.Raw == cur.Raw:
			return cur, false, nil
		case l.Version == cur.Version:
			return nil, false, fmt.Errorf("revocation list rejected: %w: a different list with version %d from %s was already applied",
				ErrRollback, l.Version, l.Issuer)
		}
	}
	r.lists[l.Issuer] = l
	clear(r.creds)
	clear(r.subjects)
	for iss, list := range r.lists {
		for _, id := range list.Credentials {
			r.creds[id] = iss
		}
		for _, s := range list.Subjects {
			r.subjects[s] = iss
		}
	}
	return l, true, nil
}

// Check returns an error wrapping ErrRevoked if c's ID or subject is revoked.
func (r *Revocations) Check(c *Credential) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if iss, ok := r.creds[c.ID]; ok {
		return fmt.Errorf("%w: credential %s is revoked by %s (list version %d)", ErrRevoked, c.ID, iss, r.lists[iss].Version)
	}
	if iss, ok := r.subjects[c.Subject]; ok {
		return fmt.Errorf("%w: subject %s is revoked by %s (list version %d)", ErrRevoked, c.Subject, iss, r.lists[iss].Version)
	}
	return nil
}

// SubjectRevoked reports whether every credential of subject d is revoked.
func (r *Revocations) SubjectRevoked(d DID) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.subjects[d]
	return ok
}

// Lists returns the accepted lists, one per issuer, sorted by issuer.
func (r *Revocations) Lists() []*RevocationList {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*RevocationList, 0, len(r.lists))
	for _, l := range r.lists {
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b *RevocationList) int { return strings.Compare(a.Issuer.String(), b.Issuer.String()) })
	return out
}
