package attest

import (
	"encoding/hex"
	"regexp"
	"testing"
	"time"

	"github.com/google/go-tpm/legacy/tpm2"
)

// problems runs Verify and checks that its problems match the patterns,
// one pattern per problem, in order.
func checkProblems(t *testing.T, r Result, want ...string) {
	t.Helper()
	if r.OK != (len(want) == 0) {
		t.Errorf("OK = %v with problems %q", r.OK, r.Problems)
	}
	if len(r.Problems) != len(want) {
		t.Fatalf("problems %q, want %d matching %q", r.Problems, len(want), want)
	}
	for i, p := range want {
		if !regexp.MustCompile(p).MatchString(r.Problems[i]) {
			t.Errorf("problem %d is %q, want it to match %q", i, r.Problems[i], p)
		}
	}
}

func TestVerify(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(m *Measurement)
		ref   func(r *Reference)
		nonce []byte
		want  []string
	}{
		{name: "everything allowed"},
		{name: "nonce matches the challenge", nonce: testNonce(7)},
		{name: "nonce mismatch", nonce: testNonce(8), want: []string{"nonce does not match"}},
		{name: "binary not allowed", edit: func(m *Measurement) { m.BinarySHA256 = hash("rebuilt") },
			want: []string{"binary " + hash("rebuilt") + " is not an allowed binary"}},
		{name: "dependency below min version",
			ref:  func(r *Reference) { r.MinVersions["golang.org/x/crypto"] = "v0.58.0" },
			want: []string{`module golang\.org/x/crypto v0\.57\.0 is below the minimum v0\.58\.0`}},
		{name: "semver is numeric: v1.10.0 satisfies v1.9.0",
			edit: func(m *Measurement) { m.Deps[0].Version = "v1.10.0" },
			ref:  func(r *Reference) { r.MinVersions["filippo.io/age"] = "v1.9.0" }},
		{name: "semver is numeric: v1.9.0 is below v1.10.0",
			edit: func(m *Measurement) { m.Deps[0].Version = "v1.9.0" },
			ref:  func(r *Reference) { r.MinVersions["filippo.io/age"] = "v1.10.0" },
			want: []string{`filippo\.io/age v1\.9\.0 is below the minimum v1\.10\.0`}},
		{name: "pseudo-version before the minimum release",
			edit: func(m *Measurement) { m.Deps[0].Version = "v1.3.0-20260101000000-abcdefabcdef" },
			ref:  func(r *Reference) { r.MinVersions["filippo.io/age"] = "v1.3.0" },
			want: []string{`below the minimum v1\.3\.0`}},
		{name: "module not in the build is not checked",
			ref: func(r *Reference) { r.MinVersions["example.com/unused"] = "v9.0.0" }},
		{name: "main module below min version",
			ref:  func(r *Reference) { r.MinVersions[MainModuleKey] = "v1.5.0" },
			want: []string{`main module github\.com/ztmesh/ztmesh v1\.4\.0 is below the minimum v1\.5\.0`}},
		{name: "main module by its path",
			ref:  func(r *Reference) { r.MinVersions["github.com/ztmesh/ztmesh"] = "v1.5.0" },
			want: []string{`main module .* below the minimum v1\.5\.0`}},
		{name: "development build of the main module has no version",
			edit: func(m *Measurement) { m.MainModule.Version = "(devel)" },
			ref:  func(r *Reference) { r.MinVersions[""] = "v1.0.0" },
			want: []string{`main module .* has version "\(devel\)", not a semantic version`}},
		{name: "Go below min version",
			ref:  func(r *Reference) { r.MinVersions[GoKey] = "go1.26.9" },
			want: []string{`built with go1\.26\.8, below the minimum go1\.26\.9`}},
		{name: "Go version with experiment suffix",
			edit: func(m *Measurement) { m.GoVersion = "go1.26.8 X:boringcrypto" }},
		{name: "development Go toolchain",
			edit: func(m *Measurement) { m.GoVersion = "devel go1.27-abcdef" },
			want: []string{`built with Go "devel go1\.27-abcdef", not a release`}},
		{name: "forbidden module, any version",
			edit: func(m *Measurement) {
				m.Deps = append(m.Deps, Module{Path: "github.com/evil/backdoor", Version: "v0.0.1"})
				sortDeps(m)
			},
			want: []string{`forbidden module github\.com/evil/backdoor v0\.0\.1 is linked in`}},
		{name: "forbidden module version",
			ref:  func(r *Reference) { r.Forbidden = []Module{{Path: "golang.org/x/crypto", Version: "v0.57.0"}} },
			want: []string{`forbidden module golang\.org/x/crypto v0\.57\.0`}},
		{name: "other version of a forbidden module version is fine",
			ref: func(r *Reference) { r.Forbidden = []Module{{Path: "golang.org/x/crypto", Version: "v0.56.0"}} }},
		{name: "forbidden module hidden behind a replace directive",
			edit: func(m *Measurement) {
				m.Deps[2].Replace = &Module{Path: "github.com/evil/backdoor", Version: "v0.57.0", Sum: "h1:x"}
			},
			want: []string{`forbidden module golang\.org/x/crypto v0\.57\.0 is linked in`}},
		{name: "module replaced by a local directory cannot prove a min version",
			edit: func(m *Measurement) { m.Deps[2].Replace = &Module{Path: "../crypto"} },
			want: []string{`golang\.org/x/crypto is replaced by the local directory \.\./crypto`}},
		{name: "hardware required but absent",
			ref:  func(r *Reference) { r.RequireHardware = true },
			want: []string{"hardware root of trust required, but the evidence is software-only"}},
		{name: "pinned PCRs do not apply to software-only evidence",
			ref: func(r *Reference) { r.PCRs = map[int]string{7: hash("x")} }},
		{name: "every problem reported, not only the first",
			edit: func(m *Measurement) { m.BinarySHA256 = hash("rebuilt"); m.Deps[0].Version = "v1.0.0" },
			ref: func(r *Reference) {
				r.MinVersions["filippo.io/age"] = "v1.3.0"
				r.RequireHardware = true
			},
			nonce: testNonce(1),
			want:  []string{"nonce", "hardware", "binary", "filippo.io/age v1.0.0 is below"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := testMeasurement()
			if tc.edit != nil {
				tc.edit(m)
			}
			ref := testReference()
			if tc.ref != nil {
				tc.ref(ref)
			}
			e := parsed(t, signed(t, m, nil))
			r := Verify(e, ref, tc.nonce)
			checkProblems(t, r, tc.want...)
			if r.Hardware {
				t.Error("software-only evidence reported as hardware")
			}
			if r.ReferenceVersion != ref.Version {
				t.Errorf("reference version %d, want %d", r.ReferenceVersion, ref.Version)
			}
		})
	}
}

func sortDeps(m *Measurement) {
	for i := 1; i < len(m.Deps); i++ {
		for j := i; j > 0 && m.Deps[j].Path < m.Deps[j-1].Path; j-- {
			m.Deps[j], m.Deps[j-1] = m.Deps[j-1], m.Deps[j]
		}
	}
}

func TestVerifyWithoutReference(t *testing.T) {
	r := Verify(parsed(t, signed(t, testMeasurement(), nil)), nil, nil)
	checkProblems(t, r, "no reference values")
}

// TestVerifyQuote checks the hardware path with a TPM in software (the
// tpmsim tests repeat the important cases with a TPM 2.0 simulator).
func TestVerifyQuote(t *testing.T) {
	tpm := newSoftTPM(t)
	otherTPM := newSoftTPM(t)
	// A quote for other evidence: the same node, an earlier nonce.
	earlier, err := Sign(testIdentity(t, 1), testMeasurement(), testNonce(6), t0, tpm)
	if err != nil {
		t.Fatal(err)
	}
	earlierQuote := parsed(t, earlier).Hardware

	for _, tc := range []struct {
		name   string
		tpm    TPM
		editE  func(e *Evidence)
		ref    func(r *Reference)
		nonce  []byte
		want   []string
		wantHW bool
	}{
		{name: "quote verified", tpm: tpm, wantHW: true},
		{name: "quote verified, hardware required", tpm: tpm, ref: func(r *Reference) { r.RequireHardware = true }, wantHW: true},
		{name: "quote verified, pinned PCRs match", tpm: tpm, wantHW: true,
			ref: func(r *Reference) { r.PCRs = map[int]string{0: pcrHex(tpm, 0), 7: pcrHex(tpm, 7)} }},
		{name: "wrong nonce", tpm: tpm, nonce: testNonce(8), wantHW: true, want: []string{"nonce does not match"}},
		{name: "altered PCR value", tpm: lyingTPM{tpm, func(q *TPMQuote) { q.PCRs[3].Value[0] ^= 1 }},
			ref:  func(r *Reference) { r.RequireHardware = true },
			want: []string{"TPM quote invalid: given PCRs digest not matching", "hardware root of trust required, but the TPM quote was not accepted"}},
		{name: "PCR left out", tpm: lyingTPM{tpm, func(q *TPMQuote) { q.PCRs = q.PCRs[1:] }},
			want: []string{"TPM quote invalid: given PCRs and Quote do not have the same PCR selection"}},
		{name: "pinned PCR differs", tpm: tpm, wantHW: true,
			ref:  func(r *Reference) { r.PCRs = map[int]string{7: hash("expected boot")} },
			want: []string{"PCR 7 is [0-9a-f]{64}, the reference values require " + hash("expected boot")}},
		{name: "pinned PCR not quoted", tpm: tpm, wantHW: true,
			ref:  func(r *Reference) { r.PCRs = map[int]string{9: hash("kernel")} },
			want: []string{"PCR 9 is pinned but not in the quote"}},
		{name: "quote replayed from earlier evidence", tpm: replayTPMOf(earlierQuote),
			want: []string{"TPM quote invalid: quote extraData"}},
		{name: "quote signed by another TPM's key", tpm: lyingTPM{tpm, func(q *TPMQuote) {
			o, _ := otherTPM.Quote([]byte("x"))
			q.AKPublic = o.AKPublic
		}}, want: []string{"TPM quote invalid: ECC signature verification failed"}},
		{name: "attestation key not certified by the subject", tpm: tpm,
			editE: func(e *Evidence) {
				e.Hardware.AKCertification = testIdentity(t, 2).Sign(AKContext, e.Hardware.AKPublic)
			},
			want: []string{"TPM quote invalid: the attestation key is not certified by did:key:"}},
		{name: "AK certification under another context", tpm: tpm,
			editE: func(e *Evidence) {
				e.Hardware.AKCertification = testIdentity(t, 1).Sign(EvidenceContext, e.Hardware.AKPublic)
			},
			want: []string{"not certified"}},
		{name: "unrestricted signing key is not an attestation key",
			tpm:  newSoftTPMAttrs(t, tpm2.FlagSign|tpm2.FlagFixedTPM|tpm2.FlagFixedParent|tpm2.FlagSensitiveDataOrigin|tpm2.FlagUserWithAuth),
			want: []string{"attributes .* lack restricted"}},
		{name: "evidence edited after the quote", tpm: tpm,
			editE: func(e *Evidence) { e.Uptime += time.Second },
			want:  []string{"TPM quote invalid: quote extraData"}},
		{name: "attestation key enrolled", tpm: tpm, wantHW: true,
			ref: func(r *Reference) {
				r.RequireHardware = true
				r.AttestationKeys = []string{hash("another machine"), HashBytes(tpm.pub)}
			}},
		{name: "attestation key not enrolled: a DID-certified key is not enough",
			tpm: newSoftTPM(t),
			ref: func(r *Reference) {
				r.RequireHardware = true
				r.AttestationKeys = []string{HashBytes(tpm.pub)}
			},
			want: []string{"TPM attestation key [0-9a-f]{64} is not enrolled", "hardware root of trust required, but the TPM quote was not accepted"}},
		{name: "garbage AK public area", tpm: lyingTPM{tpm, func(q *TPMQuote) { q.AKPublic = []byte{0, 1, 2} }},
			want: []string{"TPM quote invalid: attestation key: "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := parsed(t, signed(t, testMeasurement(), tc.tpm))
			if tc.editE != nil {
				tc.editE(e)
			}
			ref := testReference()
			if tc.ref != nil {
				tc.ref(ref)
			}
			r := Verify(e, ref, tc.nonce)
			checkProblems(t, r, tc.want...)
			if r.Hardware != tc.wantHW {
				t.Errorf("Hardware = %v, want %v", r.Hardware, tc.wantHW)
			}
		})
	}
}

func pcrHex(tpm *softTPM, i int) string {
	for _, p := range tpm.pcrs {
		if p.Index == i {
			return hex.EncodeToString(p.Value)
		}
	}
	return ""
}

func replayTPMOf(q *TPMQuote) TPM { return fixedTPM{q} }

// fixedTPM returns the same quote every time.
type fixedTPM struct{ q *TPMQuote }

func (f fixedTPM) Quote([]byte) (*TPMQuote, error) {
	c := f.q.clone()
	c.AKCertification = nil
	return c, nil
}
func (fixedTPM) Close() error { return nil }
