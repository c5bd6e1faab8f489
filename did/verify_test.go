package did

import (
	"errors"
	"testing"
	"time"
)

func (v *Verifier) authenticCount() int {
	v.authentic.mu.Lock()
	defer v.authentic.mu.Unlock()
	return len(v.authentic.m)
}

// TestVerifyRemembersOnlyTheAuthentic checks the cache of authenticated
// credentials: a credential seen before is still judged against the time,
// the holder and the revocations of each call, a token that failed is
// checked in full again, and callers cannot change what is cached.
func TestVerifyRemembersOnlyTheAuthentic(t *testing.T) {
	f := newFixture(t)
	now := t0.Add(time.Hour)
	c, err := f.v.VerifyHolder([]byte(f.token), f.holder.DID(), now)
	if err != nil {
		t.Fatal(err)
	}
	if n := f.v.authenticCount(); n != 1 {
		t.Fatalf("%d cached after one good credential, want 1", n)
	}

	// What the cache holds is a copy: a caller's change does not reach it.
	c.Claims.Role = "operator"
	again, err := f.v.VerifyHolder([]byte(f.token), f.holder.DID(), now)
	if err != nil || again.Claims.Role != "vehicle" {
		t.Fatalf("second verification: role %q, %v", again.Claims.Role, err)
	}

	// Time and holder are judged per call.
	if _, err := f.v.Verify([]byte(f.token), t0.Add(DefaultTTL+DefaultClockSkew+time.Second)); !errors.Is(err, ErrExpired) {
		t.Fatalf("cached credential after expiry: %v", err)
	}
	if _, err := f.v.Verify([]byte(f.token), t0.Add(-DefaultClockSkew-time.Second)); !errors.Is(err, ErrNotYetValid) {
		t.Fatalf("cached credential before nbf: %v", err)
	}
	if _, err := f.v.VerifyHolder([]byte(f.token), f.stranger.DID(), now); !errors.Is(err, ErrSubjectMismatch) {
		t.Fatalf("cached credential presented by another: %v", err)
	}
	// So are revocations (TestRevocationByIDAndSubject too).
	if _, _, err := f.v.Revocations().Update([]byte(signList(t, f.issuer, 1, nil, []DID{f.holder.DID()}))); err != nil {
		t.Fatal(err)
	}
	if _, err := f.v.Verify([]byte(f.token), now); !errors.Is(err, ErrRevoked) {
		t.Fatalf("cached credential after revocation: %v", err)
	}

	// Tokens that fail are not kept, and fail every time.
	forged := f.mutate(t, f.stranger, func(h, p, s map[string]any) {}) // issuer's kid, stranger's signature
	untrusted, err := Issue(f.stranger, f.holder.DID(), goodClaims(), IssueOptions{Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := f.v.Verify([]byte(forged), now); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("forged: %v", err)
		}
		if _, err := f.v.Verify([]byte(untrusted), now); !errors.Is(err, ErrUntrustedIssuer) {
			t.Fatalf("untrusted issuer: %v", err)
		}
	}
	if n := f.v.authenticCount(); n != 1 {
		t.Fatalf("%d cached after failed tokens, want 1", n)
	}
}

// TestAuthenticCacheBounded fills the cache past its size.
func TestAuthenticCacheBounded(t *testing.T) {
	f := newFixture(t)
	for i := range authenticCacheSize + 10 {
		tok, err := Issue(f.issuer, f.holder.DID(), goodClaims(), IssueOptions{Now: t0, ID: "urn:uuid:" + time.Duration(i).String()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.v.Verify([]byte(tok), t0); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.v.authenticCount(); n != authenticCacheSize {
		t.Fatalf("%d cached, want the bound %d", n, authenticCacheSize)
	}
}

// TestRecheck checks a held credential against the time and the
// revocation set, as the node does for the members it holds.
func TestRecheck(t *testing.T) {
	f := newFixture(t)
	c, err := f.v.VerifyHolder([]byte(f.token), f.holder.DID(), t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		now    time.Time
		revoke bool
		want   error
	}{
		{"valid", t0.Add(time.Hour), false, nil},
		{"expired within the skew", c.Expires.Add(DefaultClockSkew), false, nil},
		{"expired past the skew", c.Expires.Add(DefaultClockSkew + time.Second), false, ErrExpired},
		{"revoked", t0.Add(time.Hour), true, ErrRevoked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.revoke {
				if _, _, err := f.v.Revocations().Update([]byte(signList(t, f.issuer, 1, nil, []DID{f.holder.DID()}))); err != nil {
					t.Fatal(err)
				}
			}
			err := f.v.Recheck(c, tt.now)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Recheck at %s: %v, want %v", tt.now, err, tt.want)
			}
		})
	}
	if err := f.v.Recheck(nil, t0); err == nil {
		t.Fatal("Recheck(nil) passed")
	}
}
