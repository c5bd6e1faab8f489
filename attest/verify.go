package attest

import (
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"go/version"
	"maps"
	"slices"
	"sort"
	"strings"

	"golang.org/x/mod/semver"
)

// Result is the outcome of checking evidence against reference values.
type Result struct {
	// OK is true when there are no problems.
	OK bool
	// Hardware is true when the evidence carries a TPM quote that verified
	// (from an enrolled attestation key, if the reference values enroll
	// any): a policy can tell hardware-rooted evidence from software-only.
	Hardware bool
	// ReferenceVersion is the version of the reference values checked
	// against (0 if there were none): a quarantine announcement names it.
	ReferenceVersion uint64
	// Problems lists every problem found, in a stable order, each saying
	// what is wrong.
	Problems []string
}

// Verify checks parsed evidence (see ParseEvidence) against reference
// values and reports every problem it finds, not only the first:
//
//   - the nonce differs from expectedNonce (nil: not checked, the evidence
//     is then only as fresh as ParseEvidence's maximum age);
//   - the TPM quote is invalid: its attestation key is not certified by the
//     subject, its signature does not verify, it is not bound to this
//     evidence (QuoteExtraData) or the PCR values do not match it;
//   - no reference values (ref is nil);
//   - the quote's attestation key is not one of the enrolled keys, if the
//     reference values list any;
//   - hardware is required but the evidence is software-only, or a pinned
//     PCR has another value;
//   - the binary is not an allowed one;
//   - a module, the main module or Go is below its minimum version;
//   - a forbidden module or version is linked in.
func Verify(e *Evidence, ref *Reference, expectedNonce []byte) Result {
	var r Result
	problem := func(format string, args ...any) { r.Problems = append(r.Problems, fmt.Sprintf(format, args...)) }

	if expectedNonce != nil && subtle.ConstantTimeCompare(e.Nonce, expectedNonce) != 1 {
		problem("nonce does not match the challenge: the evidence was made for another request")
	}
	if e.Hardware != nil {
		payload, err := e.payload()
		if err == nil {
			err = verifyQuote(e.Subject, e.Hardware, QuoteExtraData(payload))
		}
		if err != nil {
			problem("TPM quote invalid: %v", err)
		} else {
			r.Hardware = true
		}
	}
	if ref == nil {
		problem("no reference values to check against")
		return r
	}
	r.ReferenceVersion = ref.Version

	if r.Hardware && len(ref.AttestationKeys) > 0 && !slices.Contains(ref.AttestationKeys, e.Hardware.AKFingerprint()) {
		problem("TPM attestation key %s is not enrolled in the reference values", e.Hardware.AKFingerprint())
		r.Hardware = false
	}
	switch {
	case ref.RequireHardware && e.Hardware == nil:
		problem("hardware root of trust required, but the evidence is software-only (no TPM quote)")
	case ref.RequireHardware && !r.Hardware:
		problem("hardware root of trust required, but the TPM quote was not accepted")
	}
	if r.Hardware {
		for _, i := range slices.Sorted(maps.Keys(ref.PCRs)) {
			want := ref.PCRs[i]
			j := slices.IndexFunc(e.Hardware.PCRs, func(p PCR) bool { return p.Index == i })
			switch {
			case j < 0:
				problem("PCR %d is pinned but not in the quote", i)
			case hex.EncodeToString(e.Hardware.PCRs[j].Value) != want:
				problem("PCR %d is %x, the reference values require %s", i, e.Hardware.PCRs[j].Value, want)
			}
		}
	}

	if !slices.Contains(ref.AllowedBinaries, e.BinarySHA256) {
		problem("binary %s is not an allowed binary", e.BinarySHA256)
	}

	for _, path := range slices.Sorted(maps.Keys(ref.MinVersions)) {
		min := ref.MinVersions[path]
		switch path {
		case GoKey:
			goVersion, _, _ := strings.Cut(e.GoVersion, " ") // "go1.26.8 X:boringcrypto"
			if !version.IsValid(goVersion) {
				problem("built with Go %q, not a release; the minimum is %s", e.GoVersion, min)
			} else if version.Compare(goVersion, min) < 0 {
				problem("built with %s, below the minimum %s", goVersion, min)
			}
		case "", MainModuleKey:
			checkMinVersion(problem, "main module", e.MainModule, min)
		default:
			if e.MainModule.Path == path {
				checkMinVersion(problem, "main module", e.MainModule, min)
			}
			if d, ok := findDep(e.Deps, path); ok {
				checkMinVersion(problem, "module", d, min)
			}
		}
	}

	for _, f := range ref.Forbidden {
		if forbids(f, e.MainModule) {
			problem("forbidden module %s %s is linked in", e.MainModule.Path, e.MainModule.EffectiveVersion())
		}
		for _, m := range e.Deps {
			if forbids(f, m) {
				problem("forbidden module %s %s is linked in", m.Path, m.EffectiveVersion())
			}
		}
	}
	r.OK = len(r.Problems) == 0
	return r
}

func checkMinVersion(problem func(string, ...any), what string, m Module, min string) {
	v := m.EffectiveVersion()
	switch {
	case m.Replace != nil && v == "":
		problem("%s %s is replaced by the local directory %s, which has no version; the minimum is %s", what, m.Path, m.Replace.Path, min)
	case !semver.IsValid(v):
		problem("%s %s has version %q, not a semantic version; the minimum is %s", what, m.Path, v, min)
	case semver.Compare(v, min) < 0:
		problem("%s %s %s is below the minimum %s", what, m.Path, v, min)
	}
}

// findDep finds a module by path in deps, which is sorted by path.
func findDep(deps []Module, path string) (Module, bool) {
	i := sort.Search(len(deps), func(i int) bool { return deps[i].Path >= path })
	if i < len(deps) && deps[i].Path == path {
		return deps[i], true
	}
	return Module{}, false
}

// forbids reports whether the forbidden entry f matches module m: by m's
// path or its replacement's, and by any version if f has none, else by m's
// declared or effective version.
func forbids(f, m Module) bool {
	if f.Path != m.Path && (m.Replace == nil || f.Path != m.Replace.Path) {
		return false
	}
	return f.Version == "" || f.Version == m.Version || f.Version == m.EffectiveVersion()
}
