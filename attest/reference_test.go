package attest

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ztmesh/ztmesh/did"
)

func trustOnly(ds ...did.DID) func(did.DID) bool {
	return func(d did.DID) bool {
		for _, x := range ds {
			if x == d {
				return true
			}
		}
		return false
	}
}

func signRef(t testing.TB, issuer *did.Identity, ref *Reference) []byte {
	t.Helper()
	data, err := SignReference(issuer, ref, t0)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestReferenceRoundTrip(t *testing.T) {
	issuer := testIdentity(t, 9)
	ref := testReference()
	ref.Forbidden = append(ref.Forbidden, Module{Path: "golang.org/x/crypto", Version: "v0.30.0"})
	ref.MinVersions[MainModuleKey] = "v1.4.0"
	ref.RequireHardware = true
	ref.PCRs = map[int]string{0: hash("firmware"), 7: hash("secure boot")}
	ref.AttestationKeys = []string{hash("ak 1"), hash("ak 2")}
	slices.Sort(ref.AttestationKeys)
	data := signRef(t, issuer, ref)
	got, err := VerifyReference(data, trustOnly(issuer.DID()))
	if err != nil {
		t.Fatal(err)
	}
	if got.Issuer != issuer.DID() || !got.IssuedAt.Equal(t0) || !bytes.Equal(got.Raw, data) {
		t.Errorf("issuer, time or raw: %v %v", got.Issuer, got.IssuedAt)
	}
	got.Issuer, got.IssuedAt, got.Raw = ref.Issuer, ref.IssuedAt, ref.Raw
	if !reflect.DeepEqual(got, ref) {
		t.Errorf("reference values changed:\n got %+v\nwant %+v", got, ref)
	}
}

func TestReferenceVector(t *testing.T) {
	path := filepath.Join("testdata", "reference-v1.json")
	ref := testReference()
	ref.PCRs = map[int]string{7: hash("secure boot")}
	data := signRef(t, testIdentity(t, 9), ref)
	if *update {
		if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, bytes.TrimSpace(want)) {
		t.Errorf("SignReference no longer produces %s:\n got %s\nwant %s", path, data, want)
	}
}

func TestVerifyReferenceRejects(t *testing.T) {
	issuer, mallory := testIdentity(t, 9), testIdentity(t, 10)
	good := signRef(t, issuer, testReference())
	tamper := func(edit func(p map[string]any)) []byte {
		var env quarantineEnvelope
		json.Unmarshal(good, &env)
		payload, _ := b64.DecodeString(env.Payload)
		var p map[string]any
		json.Unmarshal(payload, &p)
		edit(p)
		payload, _ = json.Marshal(p)
		env.Payload = b64.EncodeToString(payload)
		out, _ := json.Marshal(env)
		return out
	}
	for _, tc := range []struct {
		name string
		data []byte
		want error
	}{
		{"untrusted reference issuer", signRef(t, mallory, testReference()), ErrUntrustedIssuer},
		{"names a pinned issuer, signed by another key", func() []byte {
			var env quarantineEnvelope
			json.Unmarshal(good, &env)
			payload, _ := b64.DecodeString(env.Payload)
			env.Signature = b64.EncodeToString(mallory.Sign(ReferenceContext, payload))
			out, _ := json.Marshal(env)
			return out
		}(), ErrBadSignature},
		{"payload re-encoded (keys reordered)", tamper(func(p map[string]any) {}), ErrBadSignature},
		{"tampered: binary added", tamper(func(p map[string]any) { p["allowed_binaries"] = []string{hash("evil")} }), ErrBadSignature},
		{"tampered: hardware requirement dropped", func() []byte {
			ref := testReference()
			ref.RequireHardware = true
			data := signRef(t, issuer, ref)
			var env quarantineEnvelope
			json.Unmarshal(data, &env)
			payload, _ := b64.DecodeString(env.Payload)
			payload = bytes.Replace(payload, []byte(`"require_hardware":true`), []byte(`"require_hardware":false`), 1)
			env.Payload = b64.EncodeToString(payload)
			out, _ := json.Marshal(env)
			return out
		}(), ErrBadSignature},
		{"signed under the evidence context", func() []byte {
			var env quarantineEnvelope
			json.Unmarshal(good, &env)
			payload, _ := b64.DecodeString(env.Payload)
			env.Signature = b64.EncodeToString(issuer.Sign(EvidenceContext, payload))
			out, _ := json.Marshal(env)
			return out
		}(), ErrBadSignature},
		{"oversized", append(bytes.Clone(good), bytes.Repeat([]byte(" "), MaxReferenceSize)...), ErrTooLarge},
		{"unknown field", tamper(func(p map[string]any) { p["allow_all"] = true }), ErrMalformed},
		{"version 0", tamper(func(p map[string]any) { p["version"] = 0 }), ErrMalformed},
		{"no allowed binaries", tamper(func(p map[string]any) { p["allowed_binaries"] = []string{} }), ErrMalformed},
		{"allowed binary not a hash", tamper(func(p map[string]any) { p["allowed_binaries"] = []string{"latest"} }), ErrMalformed},
		{"minimum version not semver", tamper(func(p map[string]any) { p["min_versions"] = map[string]string{"golang.org/x/crypto": "0.31"} }), ErrMalformed},
		{"minimum Go version not a Go version", tamper(func(p map[string]any) { p["min_versions"] = map[string]string{GoKey: "1.26"} }), ErrMalformed},
		{"PCR index out of range", tamper(func(p map[string]any) { p["pcrs"] = map[string]string{"24": hash("x")} }), ErrMalformed},
		{"attestation key not a hash", tamper(func(p map[string]any) { p["attestation_keys"] = []string{"ak"} }), ErrMalformed},
		{"PCR index not canonical", tamper(func(p map[string]any) { p["pcrs"] = map[string]string{"07": hash("x")} }), ErrMalformed},
		{"not JSON", []byte("allow everything"), ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := VerifyReference(tc.data, trustOnly(issuer.DID()))
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := VerifyReference(good, nil); !errors.Is(err, ErrUntrustedIssuer) {
		t.Errorf("nil trust function: got %v, want ErrUntrustedIssuer", err)
	}
}

func TestSignReferenceRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(r *Reference)
	}{
		{"version 0", func(r *Reference) { r.Version = 0 }},
		{"no allowed binaries", func(r *Reference) { r.AllowedBinaries = nil }},
		{"forbidden module without a path", func(r *Reference) { r.Forbidden = []Module{{Version: "v1.0.0"}} }},
		{"minimum version not semver", func(r *Reference) { r.MinVersions = map[string]string{"x.org/y": "latest"} }},
		{"PCR value not a SHA-256", func(r *Reference) { r.PCRs = map[int]string{0: "00"} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ref := testReference()
			tc.edit(ref)
			if _, err := SignReference(testIdentity(t, 9), ref, t0); !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
		})
	}
}

func TestReferencesUpdate(t *testing.T) {
	issuer, second := testIdentity(t, 9), testIdentity(t, 11)
	refs := NewReferences(trustOnly(issuer.DID(), second.DID()))
	if refs.Current() != nil {
		t.Fatal("a new holder has reference values")
	}
	version := func(v uint64, binary string) []byte {
		ref := testReference()
		ref.Version = v
		ref.AllowedBinaries = []string{hash(binary)}
		return signRef(t, issuer, ref)
	}
	v2 := version(2, "a")
	steps := []struct {
		name        string
		data        []byte
		wantErr     error
		wantChanged bool
		wantVersion uint64
	}{
		{"first values", v2, nil, true, 2},
		{"same values again: a no-op", v2, nil, false, 2},
		{"rollback of reference values to version 1", version(1, "a"), ErrRollback, false, 2},
		{"different values under the same version", version(2, "b"), ErrRollback, false, 2},
		{"untrusted issuer cannot bump the version", func() []byte {
			ref := testReference()
			ref.Version = 99
			return signRef(t, testIdentity(t, 10), ref)
		}(), ErrUntrustedIssuer, false, 2},
		{"newer values", version(3, "c"), nil, true, 3},
		{"another pinned issuer continues the sequence", func() []byte {
			ref := testReference()
			ref.Version = 4
			return signRef(t, second, ref)
		}(), nil, true, 4},
		{"older values from the first issuer after that", version(3, "c"), ErrRollback, false, 4},
	}
	for _, s := range steps {
		_, changed, err := refs.Update(s.data)
		if !errors.Is(err, s.wantErr) || (s.wantErr == nil) != (err == nil) {
			t.Fatalf("%s: got %v, want %v", s.name, err, s.wantErr)
		}
		if changed != s.wantChanged || refs.Current().Version != s.wantVersion {
			t.Fatalf("%s: changed %v, version %d; want %v, %d", s.name, changed, refs.Current().Version, s.wantChanged, s.wantVersion)
		}
	}
}

func TestReferencesConcurrentUpdates(t *testing.T) {
	issuer := testIdentity(t, 9)
	refs := NewReferences(trustOnly(issuer.DID()))
	var lists [][]byte
	for v := uint64(1); v <= 16; v++ {
		ref := testReference()
		ref.Version = v
		lists = append(lists, signRef(t, issuer, ref))
	}
	var wg sync.WaitGroup
	for _, l := range lists {
		wg.Go(func() {
			refs.Update(l)
			_ = refs.Current()
		})
	}
	wg.Wait()
	if v := refs.Current().Version; v != 16 {
		t.Errorf("version in force %d, want the highest, 16", v)
	}
}

func TestReferenceString(t *testing.T) {
	ref := testReference()
	ref.RequireHardware = true
	if s := ref.String(); !strings.Contains(s, "v1") || !strings.Contains(s, "hardware required") {
		t.Errorf("String() = %q", s)
	}
}
