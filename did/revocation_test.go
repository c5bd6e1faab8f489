package did

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func signList(t testing.TB, issuer *Identity, version uint64, creds []string, subjects []DID) string {
	t.Helper()
	tok, err := SignRevocationList(issuer, &RevocationList{Version: version, Credentials: creds, Subjects: subjects}, t0)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestRevocationByIDAndSubject(t *testing.T) {
	f := newFixture(t)
	now := t0.Add(time.Hour)
	c, err := f.v.Verify([]byte(f.token), now)
	if err != nil {
		t.Fatal(err)
	}

	// Revoke by credential ID.
	if _, changed, err := f.v.Revocations().Update([]byte(signList(t, f.issuer, 1, []string{c.ID}, nil))); err != nil || !changed {
		t.Fatalf("update: changed=%v err=%v", changed, err)
	}
	_, err = f.v.Verify([]byte(f.token), now)
	if !errors.Is(err, ErrRevoked) || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("revoked by ID: %v", err)
	}

	// A new list that no longer names the credential un-revokes it (the
	// issuer's newest list is the whole truth), then one naming the subject
	// revokes every credential of the holder, including new ones.
	if _, _, err := f.v.Revocations().Update([]byte(signList(t, f.issuer, 2, nil, nil))); err != nil {
		t.Fatal(err)
	}
	if _, err := f.v.Verify([]byte(f.token), now); err != nil {
		t.Fatalf("after list v2: %v", err)
	}
	if _, _, err := f.v.Revocations().Update([]byte(signList(t, f.issuer, 3, nil, []DID{f.holder.DID()}))); err != nil {
		t.Fatal(err)
	}
	fresh, err := Issue(f.issuer, f.holder.DID(), goodClaims(), IssueOptions{Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.v.Verify([]byte(fresh), now); !errors.Is(err, ErrRevoked) {
		t.Fatalf("revoked subject, new credential: %v", err)
	}
	if !f.v.Revocations().SubjectRevoked(f.holder.DID()) {
		t.Fatal("SubjectRevoked false")
	}
}

func TestRevocationListRejects(t *testing.T) {
	f := newFixture(t)
	r := f.v.Revocations()
	v5 := signList(t, f.issuer, 5, []string{"urn:uuid:a"}, nil)
	if _, _, err := r.Update([]byte(v5)); err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(v5, ".")
	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"rollback to older version", signList(t, f.issuer, 4, nil, nil), ErrRollback},
		{"different list under the same version", signList(t, f.issuer, 5, nil, nil), ErrRollback},
		{"untrusted issuer", signList(t, f.stranger, 9, nil, nil), ErrUntrustedIssuer},
		{"signed by another key", craft(t, f.stranger, map[string]any{"alg": "EdDSA", "kid": f.issuer.DID().KeyID(), "typ": RevocationListType},
			map[string]any{"iss": f.issuer.DID().String(), "iat": 1, "version": 9, "revokedCredentials": []string{}, "revokedSubjects": []string{}}),
			ErrBadSignature},
		{"a credential is not a revocation list", f.token, ErrMalformed},
		{"version 0", craft(t, f.issuer, map[string]any{"alg": "EdDSA", "kid": f.issuer.DID().KeyID(), "typ": RevocationListType},
			map[string]any{"iss": f.issuer.DID().String(), "iat": 1, "version": 0}), ErrMalformed},
		{"negative version", craft(t, f.issuer, map[string]any{"alg": "EdDSA", "kid": f.issuer.DID().KeyID(), "typ": RevocationListType},
			map[string]any{"iss": f.issuer.DID().String(), "iat": 1, "version": -1}), ErrMalformed},
		{"bad subject DID", craft(t, f.issuer, map[string]any{"alg": "EdDSA", "kid": f.issuer.DID().KeyID(), "typ": RevocationListType},
			map[string]any{"iss": f.issuer.DID().String(), "iat": 1, "version": 9, "revokedSubjects": []string{"bob"}}), ErrMalformed},
		{"tampered payload", parts[0] + "." + strings.Split(signList(t, f.issuer, 9, nil, nil), ".")[1] + "." + parts[2], ErrBadSignature},
		{"too large", strings.Repeat("a", MaxRevocationListSize+1), ErrTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := r.Update([]byte(tc.token)); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	// The held list is unchanged by every refused update.
	if ls := r.Lists(); len(ls) != 1 || ls[0].Version != 5 {
		t.Fatalf("lists after refusals: %+v", ls)
	}
	// Re-applying the same list is harmless.
	if _, changed, err := r.Update([]byte(v5)); err != nil || changed {
		t.Fatalf("re-apply: changed=%v err=%v", changed, err)
	}
}

func TestRevocationListsPerIssuer(t *testing.T) {
	a, b, holder := testIdentity(t, 20), testIdentity(t, 21), testIdentity(t, 22)
	v, err := NewVerifier([]DID{a.DID(), b.DID()})
	if err != nil {
		t.Fatal(err)
	}
	r := v.Revocations()
	if _, _, err := r.Update([]byte(signList(t, a, 7, nil, nil))); err != nil {
		t.Fatal(err)
	}
	// Issuer b's versions are independent of a's.
	if _, _, err := r.Update([]byte(signList(t, b, 1, nil, []DID{holder.DID()}))); err != nil {
		t.Fatal(err)
	}
	tok, err := Issue(a, holder.DID(), goodClaims(), IssueOptions{Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify([]byte(tok), t0); !errors.Is(err, ErrRevoked) {
		t.Fatalf("subject revoked by another pinned issuer: %v", err)
	}
}

func FuzzParseRevocationList(f *testing.F) {
	issuer := testIdentity(f, 30)
	trusted := func(d DID) bool { return d == issuer.DID() }
	f.Add([]byte(signList(f, issuer, 3, []string{"urn:uuid:x"}, []DID{testIdentity(f, 31).DID()})))
	f.Add([]byte(craft(f, issuer, map[string]any{"alg": "EdDSA", "kid": issuer.DID().KeyID(), "typ": RevocationListType},
		map[string]any{"iss": issuer.DID().String(), "version": 1, "revokedCredentials": []any{nil, 3}})))
	f.Add([]byte("e30.e30.e30"))
	meshList, err := SignRevocationList(issuer, &RevocationList{Version: 2, Credentials: []string{"urn:uuid:y"}, Mesh: "fleet"}, time.Unix(1800000000, 0))
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(meshList))
	f.Fuzz(func(t *testing.T, tok []byte) {
		l, err := ParseRevocationList(tok, trusted)
		if err != nil {
			return
		}
		if l.Issuer != issuer.DID() || l.Version == 0 {
			t.Fatalf("accepted %+v", l)
		}
	})
}

// TestRevocationListSignerBeforeBody: a list from an unpinned signer is
// refused for its signer before its body is parsed, so junk subjects cost
// nothing (issue 15, item 3: on main the subjects were parsed first and
// this list was refused as malformed).
func TestRevocationListSignerBeforeBody(t *testing.T) {
	f := newFixture(t)
	junk := make([]string, 2000)
	for i := range junk {
		junk[i] = "not a did"
	}
	tok := craft(t, f.stranger, map[string]any{"alg": "EdDSA", "kid": f.stranger.DID().KeyID(), "typ": RevocationListType},
		map[string]any{"iss": f.stranger.DID().String(), "iat": 1, "version": 9, "revokedSubjects": junk})
	_, _, err := f.v.Revocations().Update([]byte(tok))
	if !errors.Is(err, ErrUntrustedIssuer) || errors.Is(err, ErrMalformed) {
		t.Fatalf("junk list from an unpinned signer: got %v, want %v before any parse of its subjects", err, ErrUntrustedIssuer)
	}
	// An unparseable payload (not even JSON) under a pinned issuer's kid
	// but another key's signature fails on the signature, not the body.
	forged := craft(t, f.stranger, map[string]any{"alg": "EdDSA", "kid": f.issuer.DID().KeyID(), "typ": RevocationListType},
		map[string]any{"iss": 7})
	if _, _, err := f.v.Revocations().Update([]byte(forged)); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("forged list under a pinned kid: got %v, want %v", err, ErrBadSignature)
	}
}
