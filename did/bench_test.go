package did

import (
	"crypto/ed25519"
	"testing"
	"time"
)

// The credential benchmarks sit next to a bare Ed25519 sign and verify of a
// message of the same size, measured in the same run: report the ratio.

func BenchmarkEd25519SignBaseline(b *testing.B) {
	f := newFixture(b)
	msg := []byte(f.token)
	priv := ed25519.NewKeyFromSeed(f.issuer.Seed())
	b.ReportAllocs()
	for b.Loop() {
		ed25519.Sign(priv, msg)
	}
}

func BenchmarkEd25519VerifyBaseline(b *testing.B) {
	f := newFixture(b)
	msg := []byte(f.token)
	priv := ed25519.NewKeyFromSeed(f.issuer.Seed())
	sig := ed25519.Sign(priv, msg)
	pub := f.issuer.PublicKey()
	b.ReportAllocs()
	for b.Loop() {
		if !ed25519.Verify(pub, msg, sig) {
			b.Fatal("verify")
		}
	}
}

func BenchmarkIssueCredential(b *testing.B) {
	f := newFixture(b)
	claims := goodClaims()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Issue(f.issuer, f.holder.DID(), claims, IssueOptions{Now: t0}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyCredential is a credential's first verification: a
// new verifier each time, so that nothing is remembered.
func BenchmarkVerifyCredential(b *testing.B) {
	f := newFixture(b)
	tok := []byte(f.token)
	now := t0.Add(time.Hour)
	issuers := []DID{f.issuer.DID()}
	b.ReportAllocs()
	for b.Loop() {
		v, err := NewVerifier(issuers)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := v.VerifyHolder(tok, f.holder.DID(), now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyCredentialAgain verifies a credential the verifier has
// authenticated before: time, holder and revocation checks only.
func BenchmarkVerifyCredentialAgain(b *testing.B) {
	f := newFixture(b)
	tok := []byte(f.token)
	now := t0.Add(time.Hour)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.v.VerifyHolder(tok, f.holder.DID(), now); err != nil {
			b.Fatal(err)
		}
	}
}
