package did

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func goodClaims() Claims {
	return Claims{Role: "vehicle", TrustScore: 0.92, Zones: []string{"district-1", "district-2"}, SoftwareVersion: "1.4.0"}
}

// fixture is an issuer, a holder, a verifier that trusts the issuer and a
// credential issued at t0 for 12h.
type fixture struct {
	issuer, holder, stranger *Identity
	v                        *Verifier
	token                    string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{issuer: testIdentity(t, 10), holder: testIdentity(t, 11), stranger: testIdentity(t, 12)}
	var err error
	f.v, err = NewVerifier([]DID{f.issuer.DID()})
	if err != nil {
		t.Fatal(err)
	}
	f.token, err = Issue(f.issuer, f.holder.DID(), goodClaims(), IssueOptions{Now: t0, ID: "urn:uuid:00000000-0000-4000-8000-000000000001"})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestIssueVerify(t *testing.T) {
	f := newFixture(t)
	c, err := f.v.VerifyHolder([]byte(f.token), f.holder.DID(), t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if c.Issuer != f.issuer.DID() || c.Subject != f.holder.DID() {
		t.Errorf("issuer/subject = %s/%s", c.Issuer, c.Subject)
	}
	if c.ID != "urn:uuid:00000000-0000-4000-8000-000000000001" {
		t.Errorf("ID = %s", c.ID)
	}
	want := goodClaims()
	if c.Claims.Role != want.Role || c.Claims.TrustScore != want.TrustScore ||
		strings.Join(c.Claims.Zones, ",") != strings.Join(want.Zones, ",") || c.Claims.SoftwareVersion != want.SoftwareVersion {
		t.Errorf("claims = %+v, want %+v", c.Claims, want)
	}
	if !c.NotBefore.Equal(t0) || !c.Expires.Equal(t0.Add(DefaultTTL)) {
		t.Errorf("validity %s..%s", c.NotBefore, c.Expires)
	}
	// The header aries wrote is what our parser expects.
	h, _ := splitToken(t, f.token)
	if h["alg"] != "EdDSA" || h["kid"] != f.issuer.DID().KeyID() {
		t.Errorf("header = %v", h)
	}
}

func TestIssueRandomIDsAreUnique(t *testing.T) {
	f := newFixture(t)
	seen := map[string]bool{}
	for i := 0; i < 20; i++ {
		tok, err := Issue(f.issuer, f.holder.DID(), goodClaims(), IssueOptions{Now: t0})
		if err != nil {
			t.Fatal(err)
		}
		c, err := f.v.Verify([]byte(tok), t0)
		if err != nil {
			t.Fatal(err)
		}
		if seen[c.ID] || !strings.HasPrefix(c.ID, "urn:uuid:") {
			t.Fatalf("credential ID %q repeated or malformed", c.ID)
		}
		seen[c.ID] = true
	}
}

func TestIssueRefusesBadClaims(t *testing.T) {
	f := newFixture(t)
	c := goodClaims()
	c.TrustScore = 1.5
	if _, err := Issue(f.issuer, f.holder.DID(), c, IssueOptions{}); !errors.Is(err, ErrInvalidClaim) {
		t.Fatalf("trust 1.5: %v", err)
	}
	if _, err := Issue(f.issuer, DID{}, goodClaims(), IssueOptions{}); !errors.Is(err, ErrInvalidClaim) {
		t.Fatalf("zero subject: %v", err)
	}
}

// splitToken decodes a compact JWS's header and payload into maps.
func splitToken(t testing.TB, tok string) (header, payload map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	for i, dst := range []*map[string]any{&header, &payload} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			t.Fatal(err)
		}
	}
	return header, payload
}

// craft signs an arbitrary header and payload with signer: a hostile but
// correctly signed token, as an attacker holding some key could make.
func craft(t testing.TB, signer *Identity, header, payload map[string]any) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	p, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	input := b64.EncodeToString(h) + "." + b64.EncodeToString(p)
	return input + "." + b64.EncodeToString(signer.signJWS([]byte(input)))
}

// mutate re-signs f.token after edit changes its header and payload.
func (f *fixture) mutate(t testing.TB, signer *Identity, edit func(h, p, subject map[string]any)) string {
	t.Helper()
	h, p := splitToken(t, f.token)
	subject := p["vc"].(map[string]any)["credentialSubject"].(map[string]any)
	edit(h, p, subject)
	return craft(t, signer, h, p)
}

func TestVerifyRejects(t *testing.T) {
	f := newFixture(t)
	now := t0.Add(time.Hour)
	strangerDID := f.stranger.DID().String()

	goodParts := strings.Split(f.token, ".")
	flipSig := []byte(goodParts[2])
	flipSig[5] ^= 1

	tests := []struct {
		name  string
		token string
		now   time.Time
		want  error
		words string // must appear in the message
	}{
		{"empty", "", now, ErrMalformed, "malformed"},
		{"not a JWT", "hello", now, ErrMalformed, "malformed"},
		{"two parts", goodParts[0] + "." + goodParts[1], now, ErrMalformed, "malformed"},
		{"four parts", f.token + ".x", now, ErrMalformed, "malformed"},
		{"SD-JWT disclosures appended", f.token + "~WyJhIiwiYiJd~", now, ErrMalformed, "malformed"},
		{"padding in base64", goodParts[0] + "=." + goodParts[1] + "." + goodParts[2], now, ErrMalformed, "malformed"},
		{"too large", f.token + strings.Repeat("A", MaxCredentialSize), now, ErrTooLarge, "too large"},
		{"flipped signature bit", goodParts[0] + "." + goodParts[1] + "." + string(flipSig), now, ErrBadSignature, "signature"},
		{"empty signature (unsecured JWT)", goodParts[0] + "." + goodParts[1] + ".", now, ErrBadSignature, "signature"},
		{"payload swapped from another credential", goodParts[0] + "." +
			strings.Split(f.mutate(t, f.issuer, func(_, p, s map[string]any) { s["trustScore"] = 1.0 }), ".")[1] + "." + goodParts[2],
			now, ErrBadSignature, "signature"},
		{"forged: claims trusted issuer, signed by another key",
			f.mutate(t, f.stranger, func(h, p, s map[string]any) {}), now, ErrBadSignature, "signature"},
		{"forged: kid of signer, iss of trusted issuer",
			f.mutate(t, f.stranger, func(h, p, s map[string]any) { h["kid"] = f.stranger.DID().KeyID() }), now, ErrBadSignature, "signature"},
		{"untrusted issuer, self-consistent",
			f.mutate(t, f.stranger, func(h, p, s map[string]any) { h["kid"] = f.stranger.DID().KeyID(); p["iss"] = strangerDID }),
			now, ErrUntrustedIssuer, "untrusted issuer"},
		{"alg none", f.mutate(t, f.issuer, func(h, p, s map[string]any) { h["alg"] = "none" }), now, ErrMalformed, "EdDSA"},
		{"alg HS256", f.mutate(t, f.issuer, func(h, p, s map[string]any) { h["alg"] = "HS256" }), now, ErrMalformed, "EdDSA"},
		{"alg missing", f.mutate(t, f.issuer, func(h, p, s map[string]any) { delete(h, "alg") }), now, ErrMalformed, "malformed"},
		// VC Data Model 1.1 section 6.3.1, as did-jwt-vc writes credentials:
		// no kid (the issuer's did:key has one key), iss/jti/sub instead of
		// vc.issuer, vc.id and credentialSubject.id, typ JWT or none.
		{"kid missing: the issuer's own key", f.mutate(t, f.issuer, func(h, p, s map[string]any) { delete(h, "kid") }), now, nil, ""},
		{"iss/jti/sub only", f.mutate(t, f.issuer, func(h, p, s map[string]any) {
			delete(h, "kid")
			h["typ"] = "JWT"
			vc := p["vc"].(map[string]any)
			delete(vc, "issuer")
			delete(vc, "id")
			delete(s, "id")
		}), now, nil, ""},
		{"kid missing, signed by another key", f.mutate(t, f.stranger, func(h, p, s map[string]any) { delete(h, "kid") }), now, ErrBadSignature, "signature"},
		{"kid missing, iss/jti/sub only, signed by another key", f.mutate(t, f.stranger, func(h, p, s map[string]any) {
			delete(h, "kid")
			vc := p["vc"].(map[string]any)
			delete(vc, "issuer")
			delete(vc, "id")
			delete(s, "id")
		}), now, ErrBadSignature, "signature"},
		{"kid empty", f.mutate(t, f.stranger, func(h, p, s map[string]any) { h["kid"] = "" }), now, ErrBadSignature, "signature"},
		{"typ vc+ld+json", f.mutate(t, f.issuer, func(h, p, s map[string]any) { h["typ"] = "vc+ld+json" }), now, ErrMalformed, "typ"},
		{"kid with wrong fragment", f.mutate(t, f.issuer, func(h, p, s map[string]any) { h["kid"] = f.issuer.DID().String() + "#key-2" }), now, ErrMalformed, "kid"},
		{"jwk header injected", f.mutate(t, f.issuer, func(h, p, s map[string]any) { h["jwk"] = map[string]any{"kty": "OKP"} }), now, ErrMalformed, "malformed"},
		{"crit header", f.mutate(t, f.issuer, func(h, p, s map[string]any) { h["crit"] = []string{"exp"} }), now, ErrMalformed, "malformed"},
		{"revocation-list typ", f.mutate(t, f.issuer, func(h, p, s map[string]any) { h["typ"] = RevocationListType }), now, ErrMalformed, "typ"},
		{"huge header", f.mutate(t, f.issuer, func(h, p, s map[string]any) { h["typ"] = strings.Repeat("x", 2000) }), now, ErrMalformed, "header"},
		{"expired", f.token, t0.Add(13 * time.Hour), ErrExpired, "expired"},
		{"not yet valid", f.token, t0.Add(-time.Hour), ErrNotYetValid, "not yet valid"},
		{"exp missing", f.mutate(t, f.issuer, func(h, p, s map[string]any) { delete(p, "exp") }), now, ErrMalformed, "exp"},
		{"nbf missing", f.mutate(t, f.issuer, func(h, p, s map[string]any) { delete(p, "nbf") }), now, ErrMalformed, "nbf"},
		{"exp as string", f.mutate(t, f.issuer, func(h, p, s map[string]any) { p["exp"] = "tomorrow" }), now, ErrMalformed, "malformed"},
		{"exp before nbf", f.mutate(t, f.issuer, func(h, p, s map[string]any) { p["exp"] = p["nbf"].(float64) - 1 }), t0, ErrInvalidClaim, "not after"},
		{"sub differs from credentialSubject.id",
			f.mutate(t, f.issuer, func(h, p, s map[string]any) { s["id"] = strangerDID }), now, ErrMalformed, "disagree"},
		{"jti differs from vc.id",
			f.mutate(t, f.issuer, func(h, p, s map[string]any) { p["vc"].(map[string]any)["id"] = "urn:uuid:other" }), now, ErrMalformed, "disagree"},
		{"vc issuer differs from iss",
			f.mutate(t, f.issuer, func(h, p, s map[string]any) { p["vc"].(map[string]any)["issuer"] = map[string]any{"id": strangerDID} }),
			now, ErrMalformed, "disagree"},
		{"two subjects", f.mutate(t, f.issuer, func(h, p, s map[string]any) {
			p["vc"].(map[string]any)["credentialSubject"] = []any{s, s}
		}), now, ErrMalformed, "one credentialSubject"},
		{"wrong type", f.mutate(t, f.issuer, func(h, p, s map[string]any) {
			p["vc"].(map[string]any)["type"] = []string{"VerifiableCredential"}
		}), now, ErrMalformed, "type"},
		{"no vc claim", f.mutate(t, f.issuer, func(h, p, s map[string]any) { delete(p, "vc") }), now, ErrMalformed, "vc"},
		{"unknown subject field", f.mutate(t, f.issuer, func(h, p, s map[string]any) { s["admin"] = true }), now, ErrMalformed, "admin"},
		{"trust score missing", f.mutate(t, f.issuer, func(h, p, s map[string]any) { delete(s, "trustScore") }), now, ErrMalformed, "trustScore"},
		{"trust score as string", f.mutate(t, f.issuer, func(h, p, s map[string]any) { s["trustScore"] = "high" }), now, ErrMalformed, "malformed"},
		{"trust score 1.5", f.mutate(t, f.issuer, func(h, p, s map[string]any) { s["trustScore"] = 1.5 }), now, ErrInvalidClaim, "outside 0..1"},
		{"trust score negative", f.mutate(t, f.issuer, func(h, p, s map[string]any) { s["trustScore"] = -0.1 }), now, ErrInvalidClaim, "outside 0..1"},
		{"empty role", f.mutate(t, f.issuer, func(h, p, s map[string]any) { s["role"] = "" }), now, ErrInvalidClaim, "role is empty"},
		{"zone with slash", f.mutate(t, f.issuer, func(h, p, s map[string]any) { s["zones"] = []string{"a/b"} }), now, ErrInvalidClaim, "zone"},
		{"no zones", f.mutate(t, f.issuer, func(h, p, s map[string]any) { s["zones"] = []string{} }), now, ErrInvalidClaim, "no zones"},
		{"bad software version", f.mutate(t, f.issuer, func(h, p, s map[string]any) { s["softwareVersion"] = "latest" }), now, ErrInvalidClaim, "semantic"},
		{"subject not a DID", f.mutate(t, f.issuer, func(h, p, s map[string]any) { p["sub"] = "bob"; s["id"] = "bob" }), now, ErrMalformed, "sub"},
		{"trailing JSON in payload", func() string {
			parts := strings.Split(f.token, ".")
			p, _ := b64.DecodeString(parts[1])
			input := parts[0] + "." + b64.EncodeToString(append(p, []byte(` {}`)...))
			return input + "." + b64.EncodeToString(f.issuer.signJWS([]byte(input)))
		}(), now, ErrMalformed, "malformed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := f.v.Verify([]byte(tc.token), tc.now)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				if c.Issuer != f.issuer.DID() {
					t.Fatalf("issuer %s", c.Issuer)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted: %+v", c)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %q does not wrap %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.words) {
				t.Fatalf("error %q does not say %q", err, tc.words)
			}
		})
	}
}

func TestVerifyReportsEveryProblem(t *testing.T) {
	f := newFixture(t)
	tok := f.mutate(t, f.issuer, func(h, p, s map[string]any) { s["trustScore"] = 2.0; s["role"] = "" })
	_, err := f.v.VerifyHolder([]byte(tok), f.stranger.DID(), t0.Add(24*time.Hour))
	for _, want := range []error{ErrExpired, ErrInvalidClaim, ErrSubjectMismatch} {
		if !errors.Is(err, want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	for _, words := range []string{"expired", "outside 0..1", "role is empty", "subject mismatch"} {
		if !strings.Contains(err.Error(), words) {
			t.Errorf("error %q does not say %q", err, words)
		}
	}
}

func TestClockSkew(t *testing.T) {
	f := newFixture(t)
	exp := t0.Add(DefaultTTL)
	if _, err := f.v.Verify([]byte(f.token), exp.Add(DefaultClockSkew-time.Second)); err != nil {
		t.Errorf("inside the skew after exp: %v", err)
	}
	if _, err := f.v.Verify([]byte(f.token), exp.Add(DefaultClockSkew+time.Second)); !errors.Is(err, ErrExpired) {
		t.Errorf("past the skew after exp: %v", err)
	}
	if _, err := f.v.Verify([]byte(f.token), t0.Add(-DefaultClockSkew+time.Second)); err != nil {
		t.Errorf("inside the skew before nbf: %v", err)
	}
	strict, err := NewVerifier([]DID{f.issuer.DID()}, WithClockSkew(0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := strict.Verify([]byte(f.token), exp.Add(time.Second)); !errors.Is(err, ErrExpired) {
		t.Errorf("zero skew: %v", err)
	}
	if _, err := NewVerifier([]DID{f.issuer.DID()}, WithClockSkew(time.Hour)); err == nil {
		t.Error("skew of an hour accepted")
	}
}

func TestSubjectMismatch(t *testing.T) {
	f := newFixture(t)
	_, err := f.v.VerifyHolder([]byte(f.token), f.stranger.DID(), t0)
	if !errors.Is(err, ErrSubjectMismatch) || !strings.Contains(err.Error(), "subject mismatch") {
		t.Fatalf("got %v", err)
	}
}

func TestNewVerifierNeedsIssuers(t *testing.T) {
	if _, err := NewVerifier(nil); err == nil {
		t.Fatal("verifier without issuers")
	}
	if _, err := NewVerifier([]DID{{}}); err == nil {
		t.Fatal("verifier with zero DID")
	}
}

func TestInspectDoesNotVerify(t *testing.T) {
	f := newFixture(t)
	forged := f.mutate(t, f.stranger, func(h, p, s map[string]any) {})
	c, err := Inspect([]byte(forged))
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != f.holder.DID() {
		t.Fatal("inspect decoded the wrong subject")
	}
	sub, err := Subject([]byte(forged))
	if err != nil || sub != f.holder.DID() {
		t.Fatalf("Subject = %v, %v; want %s", sub, err, f.holder.DID())
	}
	if _, err := Subject([]byte("eyJhbGciOiJFZERTQSJ9.e30.")); err == nil {
		t.Fatal("Subject of a token without claims")
	}
	sub, zones, err := PeekZones([]byte(forged))
	if err != nil || sub != f.holder.DID() || !slices.Equal(zones, goodClaims().Zones) {
		t.Fatalf("PeekZones = %v, %v, %v; want %s in %v", sub, zones, err, f.holder.DID(), goodClaims().Zones)
	}
}

func TestSharesZone(t *testing.T) {
	for _, tc := range []struct {
		a, b []string
		want bool
	}{
		{[]string{"north"}, []string{"north", "south"}, true},
		{[]string{"north"}, []string{"south"}, false},
		{[]string{AllZones}, []string{"south"}, true},
		{[]string{"north"}, []string{AllZones}, true},
		{nil, []string{"south"}, false},
		{[]string{"north"}, nil, false},
	} {
		if got := SharesZone(tc.a, tc.b); got != tc.want {
			t.Errorf("SharesZone(%v, %v) = %v", tc.a, tc.b, got)
		}
	}
}

func FuzzVerifyCredential(f *testing.F) {
	fx := newFixture(f)
	f.Add([]byte(fx.token))
	f.Add([]byte(fx.mutate(f, fx.issuer, func(h, p, s map[string]any) { s["zones"] = []any{1, 2} })))
	f.Add([]byte(fx.mutate(f, fx.issuer, func(h, p, s map[string]any) { p["vc"] = "x" })))
	f.Add([]byte(fx.mutate(f, fx.issuer, func(h, p, s map[string]any) { s["id"] = nil })))
	f.Add([]byte("eyJhbGciOiJFZERTQSJ9.e30."))
	f.Fuzz(func(t *testing.T, tok []byte) {
		peekSub, peekZones, peekErr := PeekZones(tok) // must not panic, whatever tok is
		c, err := fx.v.Verify(tok, t0.Add(time.Hour))
		if err != nil {
			return
		}
		if peekErr != nil || peekSub != c.Subject || !slices.Equal(peekZones, c.Claims.Zones) {
			t.Fatalf("verified %s in %v, PeekZones says %s in %v (%v)", c.Subject, c.Claims.Zones, peekSub, peekZones, peekErr)
		}
		// Whatever was accepted must be what the issuer signed.
		if c.Issuer != fx.issuer.DID() || c.Claims.Validate() != nil {
			t.Fatalf("accepted an invalid credential: %+v", c)
		}
		if _, err := Inspect(tok); err != nil {
			t.Fatalf("verified but cannot be inspected: %v", err)
		}
		if sub, err := Subject(tok); err != nil || sub != c.Subject {
			t.Fatalf("verified subject %s, Subject says %v, %v", c.Subject, sub, err)
		}
	})
}
