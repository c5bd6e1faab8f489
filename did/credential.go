package did

import (
	"cmp"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/hyperledger/aries-framework-go/pkg/doc/util"
	"github.com/hyperledger/aries-framework-go/pkg/doc/verifiable"

	"github.com/ztmesh/ztmesh/internal/wire"
)

// Credential format constants.
const (
	// MaxCredentialSize caps a credential before it is parsed. Ours are about
	// 1 KB; 16 KiB leaves room for many zones and capabilities.
	MaxCredentialSize = 16 << 10
	// DefaultTTL is a credential's lifetime when the issuer gives none.
	DefaultTTL = 12 * time.Hour
	// DefaultClockSkew is how far a verifier's clock may differ from the issuer's.
	DefaultClockSkew = 2 * time.Minute

	// CredentialType is the credential's type next to "VerifiableCredential".
	CredentialType = "ZtmeshNodeCredential"
	baseContext    = "https://www.w3.org/2018/credentials/v1"
)

// Credential is a verified (or, from Inspect, merely decoded) ztmesh credential.
type Credential struct {
	ID        string    // unique credential ID ("urn:uuid:...")
	Issuer    DID       // who signed it
	Subject   DID       // the holder
	Claims    Claims    // what it says about the holder
	IssuedAt  time.Time // iat
	NotBefore time.Time // nbf
	Expires   time.Time // exp
	Raw       string    // the JWT as received
}

// IssueOptions are the optional inputs of Issue. The zero value issues a
// credential valid from now for DefaultTTL with a random ID.
type IssueOptions struct {
	TTL  time.Duration // lifetime; 0 means DefaultTTL
	Now  time.Time     // issuance time; zero means time.Now()
	ID   string        // credential ID; "" means a random urn:uuid
	Rand io.Reader     // randomness for the ID; nil means crypto/rand
}

// Issue signs a credential for subject with the issuer's key, as a W3C
// Verifiable Credential in JWT form (EdDSA), built with aries-framework-go.
// It refuses claims that a verifier would refuse.
func Issue(issuer *Identity, subject DID, claims Claims, opts IssueOptions) (string, error) {
	if subject.IsZero() {
		return "", fmt.Errorf("%w: no subject", ErrInvalidClaim)
	}
	if err := claims.Validate(); err != nil {
		return "", err
	}
	ttl := cmp.Or(opts.TTL, DefaultTTL)
	if ttl < 0 {
		return "", fmt.Errorf("%w: negative lifetime %s", ErrInvalidClaim, ttl)
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	now = now.UTC().Truncate(time.Second) // JWT times are whole seconds
	id := opts.ID
	if id == "" {
		u, err := uuid.NewRandomFromReader(cmp.Or[io.Reader](opts.Rand, rand.Reader))
		if err != nil {
			return "", fmt.Errorf("credential ID: %w", err)
		}
		id = u.URN()
	}
	subjectFields := verifiable.CustomFields{
		"role":            claims.Role,
		"trustScore":      claims.TrustScore,
		"zones":           claims.Zones,
		"softwareVersion": claims.SoftwareVersion,
	}
	if len(claims.Capabilities) > 0 {
		subjectFields["capabilities"] = claims.Capabilities
	}
	vc := &verifiable.Credential{
		Context: []string{baseContext},
		ID:      id,
		Types:   []string{"VerifiableCredential", CredentialType},
		Subject: []verifiable.Subject{{ID: subject.String(), CustomFields: subjectFields}},
		Issuer:  verifiable.Issuer{ID: issuer.DID().String()},
		Issued:  util.NewTime(now),
		Expired: util.NewTime(now.Add(ttl)),
	}
	// minimizeVC moves id, issuer and dates into the JWT registered claims
	// only, so the token holds each of them once and they cannot disagree.
	jc, err := vc.JWTClaims(true)
	if err != nil {
		return "", fmt.Errorf("credential claims: %w", err)
	}
	// Minimizing leaves "issuer": "" in the vc, which a strict validator
	// may refuse; VC Data Model 1.1 allows it equal to iss.
	jc.VC["issuer"] = issuer.DID().String()
	tok, err := jc.MarshalJWS(verifiable.EdDSA, jwtSigner{issuer}, issuer.DID().KeyID())
	if err != nil {
		return "", fmt.Errorf("sign credential: %w", err)
	}
	return tok, nil
}

// jwtSigner adapts an Identity to aries' verifiable.Signer.
type jwtSigner struct{ id *Identity }

func (s jwtSigner) Sign(data []byte) ([]byte, error) { return s.id.signJWS(data), nil }
func (s jwtSigner) Alg() string                      { return "EdDSA" }

// credPayload is the JWT payload of a credential as Issue writes it.
type credPayload struct {
	Iss string          `json:"iss"`
	Sub string          `json:"sub"`
	Jti string          `json:"jti"`
	Iat *int64          `json:"iat"`
	Nbf *int64          `json:"nbf"`
	Exp *int64          `json:"exp"`
	VC  json.RawMessage `json:"vc"`
}

// subjectFields is the credentialSubject as Issue writes it. Decoding is
// strict: a field we do not know is an error, not something silently ignored.
type subjectFields struct {
	ID              string   `json:"id"`
	Role            string   `json:"role"`
	TrustScore      *float64 `json:"trustScore"`
	Zones           []string `json:"zones"`
	SoftwareVersion string   `json:"softwareVersion"`
	Capabilities    []string `json:"capabilities,omitempty"`
}

// decoded is a credential whose JWS and registered claims are parsed but
// whose signature is not yet checked.
type decoded struct {
	cred      Credential
	kidIssuer DID
	jws       *jws
	vc        json.RawMessage
}

// decodeJWT parses the JWS and the registered JWT claims with our own strict
// parser. Nothing here is trusted yet; it is only enough to find the issuer
// and check the signature.
func decodeJWT(token []byte) (*decoded, error) {
	j, err := parseJWS(token, MaxCredentialSize)
	if err != nil {
		return nil, err
	}
	if j.header.Typ != "" && j.header.Typ != "JWT" {
		return nil, fmt.Errorf("%w: header typ %q is not a credential", ErrMalformed, j.header.Typ)
	}
	var p credPayload
	if err := wire.DecodeStrict(j.payload, &p); err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
	}
	var missing []string
	for name, absent := range map[string]bool{"iss": p.Iss == "", "sub": p.Sub == "", "jti": p.Jti == "",
		"nbf": p.Nbf == nil, "exp": p.Exp == nil, "vc": len(p.VC) == 0} {
		if absent {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return nil, fmt.Errorf("%w: payload has no %v", ErrMalformed, missing)
	}
	issuer, err := ParseDID(p.Iss)
	if err != nil {
		return nil, fmt.Errorf("%w: iss: %v", ErrMalformed, err)
	}
	subject, err := ParseDID(p.Sub)
	if err != nil {
		return nil, fmt.Errorf("%w: sub: %v", ErrMalformed, err)
	}
	// The key that signed: the header's kid if it names one (ztmesh writes
	// it), else the issuer's own did:key, which has exactly one key (tools
	// such as did-jwt-vc write no kid). Either way the signature is checked
	// against the issuer's key, and a kid naming another key is refused.
	kidIssuer := issuer
	if j.header.Kid != "" {
		if kidIssuer, err = issuerFromKid(j.header.Kid); err != nil {
			return nil, err
		}
	}
	d := &decoded{
		cred: Credential{
			ID:        p.Jti,
			Issuer:    issuer,
			Subject:   subject,
			NotBefore: time.Unix(*p.Nbf, 0).UTC(),
			Expires:   time.Unix(*p.Exp, 0).UTC(),
			Raw:       string(j.signingInput) + "." + b64.EncodeToString(j.signature),
		},
		kidIssuer: kidIssuer,
		jws:       j,
		vc:        p.VC,
	}
	if p.Iat != nil {
		d.cred.IssuedAt = time.Unix(*p.Iat, 0).UTC()
	}
	return d, nil
}

// vcIdentity is the part of the embedded credential that repeats JWT claims.
type vcIdentity struct {
	ID     *string         `json:"id"`
	Issuer json.RawMessage `json:"issuer"`
}

// decodeClaims decodes the embedded W3C credential with aries-framework-go
// and reads the claims from its credentialSubject. The JWT registered claims
// and the embedded credential must agree: a verifier acts on what was signed,
// never on a field that a library filled in from somewhere else. (aries
// overwrites vc.id and vc.issuer with jti and iss, and takes the subject from
// credentialSubject only, so both sides are compared here.)
func (d *decoded) decodeClaims() error {
	var vi vcIdentity
	if err := json.Unmarshal(d.vc, &vi); err != nil {
		return fmt.Errorf("%w: vc: %v", ErrMalformed, err)
	}
	if vi.ID != nil && *vi.ID != d.cred.ID {
		return fmt.Errorf("%w: JWT claims and credential disagree (jti vs vc.id)", ErrMalformed)
	}
	if len(vi.Issuer) > 0 {
		var iss verifiable.Issuer
		if err := json.Unmarshal(vi.Issuer, &iss); err != nil {
			return fmt.Errorf("%w: vc.issuer: %v", ErrMalformed, err)
		}
		if iss.ID != "" && iss.ID != d.cred.Issuer.String() {
			return fmt.Errorf("%w: JWT claims and credential disagree (iss vs vc.issuer)", ErrMalformed)
		}
	}

	// The proof of the embedded credential is the JWS signature, which the
	// caller has checked (or, for Inspect, deliberately not) over the exact bytes.
	vc, err := verifiable.ParseCredential([]byte(d.cred.Raw), verifiable.WithDisabledProofCheck())
	if err != nil {
		return fmt.Errorf("%w: verifiable credential: %v", ErrMalformed, err)
	}
	if !slices.Contains(vc.Context, baseContext) {
		return fmt.Errorf("%w: @context lacks %s", ErrMalformed, baseContext)
	}
	if !slices.Contains(vc.Types, "VerifiableCredential") || !slices.Contains(vc.Types, CredentialType) {
		return fmt.Errorf("%w: type %v is not a %s", ErrMalformed, vc.Types, CredentialType)
	}
	subjects, ok := vc.Subject.([]verifiable.Subject)
	if !ok || len(subjects) != 1 {
		return fmt.Errorf("%w: want exactly one credentialSubject", ErrMalformed)
	}
	// VC Data Model 1.1, section 6.3.1: iss, jti and sub stand "instead of,
	// or in addition to" issuer, id and credentialSubject.id. Where the
	// credential repeats one, it must agree (vc.id and vc.issuer are
	// compared above, before aries overwrites them).
	if vc.Issuer.ID != d.cred.Issuer.String() || vc.ID != d.cred.ID {
		return fmt.Errorf("%w: JWT claims and credential disagree (iss/jti)", ErrMalformed)
	}
	if id := subjects[0].ID; id != "" && id != d.cred.Subject.String() {
		return fmt.Errorf("%w: JWT claims and credential disagree (sub vs credentialSubject.id)", ErrMalformed)
	}
	subjects[0].ID = d.cred.Subject.String()
	raw, err := json.Marshal(&subjects[0])
	if err != nil {
		return fmt.Errorf("%w: credentialSubject: %v", ErrMalformed, err)
	}
	var sf subjectFields
	if err := wire.DecodeStrict(raw, &sf); err != nil {
		return fmt.Errorf("%w: credentialSubject: %v", ErrMalformed, err)
	}
	if sf.TrustScore == nil {
		return fmt.Errorf("%w: credentialSubject has no trustScore", ErrMalformed)
	}
	d.cred.Claims = Claims{
		Role:            sf.Role,
		TrustScore:      *sf.TrustScore,
		Zones:           sf.Zones,
		SoftwareVersion: sf.SoftwareVersion,
		Capabilities:    sf.Capabilities,
	}
	return nil
}

// Inspect decodes a credential WITHOUT verifying it: nothing it returns may
// be trusted. It is for showing a credential to a person.
func Inspect(token []byte) (*Credential, error) {
	d, err := decodeJWT(token)
	if err != nil {
		return nil, err
	}
	if err := d.decodeClaims(); err != nil {
		return nil, err
	}
	return &d.cred, nil
}

// Subject returns the subject a credential names, WITHOUT verifying it: the
// cheap first step of a receiver that must know whose credential it holds
// (to look it up, or to verify it with VerifyHolder). It parses only the
// JWS and its registered claims, not the embedded VC.
func Subject(token []byte) (DID, error) {
	d, err := decodeJWT(token)
	if err != nil {
		return DID{}, err
	}
	return d.cred.Subject, nil
}

// PeekZones returns the subject and the zones a credential claims, WITHOUT
// verifying anything: only for a receiver to decide whether the credential
// concerns it at all before paying for its verification. A receiver that
// goes on uses the zones of the verified credential, never these.
func PeekZones(token []byte) (DID, []string, error) {
	d, err := decodeJWT(token)
	if err != nil {
		return DID{}, nil, err
	}
	var vc struct {
		Subject struct {
			Zones []string `json:"zones"`
		} `json:"credentialSubject"`
	}
	if err := json.Unmarshal(d.vc, &vc); err != nil {
		return DID{}, nil, fmt.Errorf("%w: credentialSubject: %v", ErrMalformed, err)
	}
	return d.cred.Subject, vc.Subject.Zones, nil
}
