package attest

import (
	"crypto/ed25519"
	"testing"
	"time"
)

// The evidence benchmarks use a daemon-sized build (200 dependency modules,
// about 40 KB of evidence) and sit next to a bare Ed25519 verify of a
// message of the same size, measured in the same run: report the ratios.
// The TPM variants use the software TPM of the tests: they measure our
// verification of a quote (one ECDSA P-256 verify more), not a TPM.

const benchDeps = 200

func BenchmarkEd25519VerifyBaseline(b *testing.B) {
	id := testIdentity(b, 1)
	msg := signed(b, bigMeasurement(benchDeps), nil)
	priv := ed25519.NewKeyFromSeed(id.Seed())
	sig := ed25519.Sign(priv, msg)
	pub := id.PublicKey()
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if !ed25519.Verify(pub, msg, sig) {
			b.Fatal("verify")
		}
	}
}

func BenchmarkSign(b *testing.B) {
	id, m, nonce := testIdentity(b, 1), bigMeasurement(benchDeps), testNonce(7)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Sign(id, m, nonce, t0, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseEvidence(b *testing.B) {
	ev := signed(b, bigMeasurement(benchDeps), nil)
	now := t0.Add(time.Second)
	b.SetBytes(int64(len(ev)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseEvidence(ev, now, time.Minute); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	e := parsed(b, signed(b, bigMeasurement(benchDeps), nil))
	ref := testReference()
	ref.AllowedBinaries = append(ref.AllowedBinaries, e.BinarySHA256)
	for i := range 50 {
		ref.MinVersions[e.Deps[i*4].Path] = "v1.0.0"
	}
	nonce := testNonce(7)
	b.ReportAllocs()
	for b.Loop() {
		if r := Verify(e, ref, nonce); !r.OK {
			b.Fatal(r.Problems)
		}
	}
}

func BenchmarkVerifyWithQuote(b *testing.B) {
	e := parsed(b, signed(b, bigMeasurement(benchDeps), newSoftTPM(b)))
	ref := testReference()
	ref.RequireHardware = true
	nonce := testNonce(7)
	b.ReportAllocs()
	for b.Loop() {
		if r := Verify(e, ref, nonce); !r.Hardware {
			b.Fatal(r.Problems)
		}
	}
}
