package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ztmesh/ztmesh/did"
)

var update = flag.Bool("update", false, "rewrite testdata/bundle-v1.json")

func identity(t testing.TB, b byte) *did.Identity {
	t.Helper()
	id, err := did.IdentityFromSeed(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func pinned(ids ...*did.Identity) func(did.DID) bool {
	return func(d did.DID) bool {
		for _, id := range ids {
			if id.DID() == d {
				return true
			}
		}
		return false
	}
}

func sign(t testing.TB, issuer *did.Identity, modules map[string]string, version uint64) []byte {
	t.Helper()
	tok, err := SignBundle(issuer, modules, version, Scope{}, t0)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// seal signs an arbitrary payload as a bundle, bypassing SignBundle's checks.
func seal(t testing.TB, issuer *did.Identity, payload any) []byte {
	t.Helper()
	p, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := sealBundle(issuer, p)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func payloadOf(issuer *did.Identity, version uint64, modules map[string]string) map[string]any {
	return map[string]any{
		"issuer":    issuer.DID().String(),
		"version":   version,
		"issued_at": t0.Format(time.RFC3339),
		"modules":   modules,
	}
}

func unwrap(t testing.TB, tok []byte) (payload, sig []byte) {
	t.Helper()
	var env bundleEnvelope
	if err := json.Unmarshal(tok, &env); err != nil {
		t.Fatal(err)
	}
	payload, _ = b64.DecodeString(env.Payload)
	sig, _ = b64.DecodeString(env.Signature)
	return payload, sig
}

func wrap(t testing.TB, payload, sig []byte) []byte {
	t.Helper()
	tok, err := json.Marshal(bundleEnvelope{Payload: b64.EncodeToString(payload), Signature: b64.EncodeToString(sig)})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestSignVerifyBundle(t *testing.T) {
	issuer := identity(t, 1)
	modules := map[string]string{"open.rego": allowAll, "lib/util.rego": "package ztmesh.util\nx := 1\n"}
	tok := sign(t, issuer, modules, 3)
	b, err := VerifyBundle(append([]byte("  "), append(tok, '\n')...), pinned(issuer))
	if err != nil {
		t.Fatal(err)
	}
	if b.Issuer != issuer.DID() || b.Version != 3 || !b.IssuedAt.Equal(t0) || !bytes.Equal(b.Raw, tok) ||
		len(b.Modules) != 2 || b.Modules["open.rego"] != allowAll {
		t.Fatalf("bundle %+v", b)
	}
}

// TestBundleVector checks the wire format against testdata/bundle-v1.json:
// Ed25519 signatures are deterministic, so signing the same modules with the
// same key at the same time gives the same bytes.
func TestBundleVector(t *testing.T) {
	path := filepath.Join("testdata", "bundle-v1.json")
	tok := sign(t, identity(t, 1), map[string]string{"open.rego": allowAll}, 1)
	if *update {
		if err := os.WriteFile(path, append(tok, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(tok, bytes.TrimSpace(want)) {
		t.Fatalf("SignBundle output changed; the wire format is in docs/POLICY.md\n got %s\nwant %s", tok, want)
	}
	payload, _ := unwrap(t, want)
	const wantPayload = `{"issuer":"did:key:z6Mkon3Necd6NkkyfoGoHxid2znGc59LU3K7mubaRcFbLfLX","version":1,"issued_at":"2026-11-27T10:00:00Z","modules":{"open.rego":"package ztmesh.authz\nallow := true\n"}}`
	if string(payload) != wantPayload {
		t.Errorf("payload\n got %s\nwant %s", payload, wantPayload)
	}
	if _, err := VerifyBundle(want, pinned(identity(t, 1))); err != nil {
		t.Fatal(err)
	}
}

// TestScopedBundleVector checks the second bundle format, with mesh and
// expires, against testdata/bundle-v2-scoped.json, and that CheckScope
// refuses it in another mesh and after its expiry.
func TestScopedBundleVector(t *testing.T) {
	path := filepath.Join("testdata", "bundle-v2-scoped.json")
	expires := t0.Add(30 * 24 * time.Hour)
	tok, err := SignBundle(identity(t, 1), map[string]string{"open.rego": allowAll}, 2, Scope{Mesh: "fleet", Expires: expires}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(path, append(tok, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(tok, bytes.TrimSpace(want)) {
		t.Fatalf("SignBundle output changed; the wire format is in docs/POLICY.md\n got %s\nwant %s", tok, want)
	}
	payload, _ := unwrap(t, want)
	const wantPayload = `{"issuer":"did:key:z6Mkon3Necd6NkkyfoGoHxid2znGc59LU3K7mubaRcFbLfLX","version":2,"issued_at":"2026-11-27T10:00:00Z","mesh":"fleet","expires":"2026-12-27T10:00:00Z","modules":{"open.rego":"package ztmesh.authz\nallow := true\n"}}`
	if string(payload) != wantPayload {
		t.Errorf("payload\n got %s\nwant %s", payload, wantPayload)
	}
	b, err := VerifyBundle(want, pinned(identity(t, 1)))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		mesh string
		now  time.Time
		want error
	}{
		{"in scope", "fleet", t0, nil},
		{"another mesh", "other", t0, ErrOtherMesh},
		{"at expiry", "fleet", expires, ErrExpired},
	} {
		if err := b.CheckScope(tc.mesh, tc.now); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: CheckScope: %v, want %v", tc.name, err, tc.want)
		}
	}
	legacy, err := VerifyBundle(sign(t, identity(t, 1), map[string]string{"open.rego": allowAll}, 1), pinned(identity(t, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := legacy.CheckScope("default", t0); !errors.Is(err, ErrOtherMesh) {
		t.Errorf("first-format bundle in scope: %v", err)
	}
	if _, err := SignBundle(identity(t, 1), map[string]string{"open.rego": allowAll}, 2, Scope{Mesh: "fleet"}, t0); !errors.Is(err, ErrMalformed) {
		t.Errorf("mesh without expiry signed: %v", err)
	}
}

func TestApplyBundle(t *testing.T) {
	issuer := identity(t, 1)
	e := newEngine(t)
	in := zoneInput(ActionSubscribe, "nowhere", member())
	if d := e.Decide(t.Context(), in); d.Allow {
		t.Fatal("the default policy allowed a non-member")
	}
	b, err := e.ApplyBundle(sign(t, issuer, map[string]string{"open.rego": allowAll}, 5), pinned(issuer))
	if err != nil {
		t.Fatal(err)
	}
	if b.Version != 5 || e.Version() != 5 || e.Source() != "bundle:"+issuer.DID().String() {
		t.Fatalf("after the bundle: version %d, source %s", e.Version(), e.Source())
	}
	if d := e.Decide(t.Context(), in); !d.Allow || d.Version != 5 {
		t.Fatalf("bundle policy not in force: %+v", d)
	}
}

func TestApplyBundleRefusals(t *testing.T) {
	issuer, other, mallory := identity(t, 1), identity(t, 2), identity(t, 3)
	trusted := pinned(issuer, other)
	open := map[string]string{"open.rego": allowAll}
	current := sign(t, issuer, open, 5)

	tamperPayload := func() []byte {
		p, sig := unwrap(t, sign(t, issuer, open, 9))
		return wrap(t, bytes.Replace(p, []byte(`"version":9`), []byte(`"version":8`), 1), sig)
	}
	flipSig := func() []byte {
		p, sig := unwrap(t, sign(t, issuer, open, 9))
		sig[10] ^= 1
		return wrap(t, p, sig)
	}
	otherContext := func() []byte {
		p, _ := unwrap(t, sign(t, issuer, open, 9))
		return wrap(t, p, issuer.Sign("ztmesh/revocations/v1", p))
	}
	impersonate := func() []byte {
		p, _ := unwrap(t, sign(t, issuer, open, 9))
		return wrap(t, p, mallory.Sign(BundleContext, p))
	}
	withField := func(k string, v any) []byte {
		p := payloadOf(issuer, 9, open)
		p[k] = v
		return seal(t, issuer, p)
	}
	without := func(k string) []byte {
		p := payloadOf(issuer, 9, open)
		delete(p, k)
		return seal(t, issuer, p)
	}

	for _, tc := range []struct {
		name  string
		token []byte
		want  error
	}{
		{"tampered payload", tamperPayload(), ErrBadSignature},
		{"flipped signature bit", flipSig(), ErrBadSignature},
		{"signature made for another kind of object", otherContext(), ErrBadSignature},
		{"signed by someone else in the issuer's name", impersonate(), ErrBadSignature},
		{"untrusted issuer", sign(t, mallory, open, 9), ErrUntrustedIssuer},
		{"rolled back", sign(t, issuer, open, 4), ErrRollback},
		{"current bundle replayed", current, ErrRollback},
		{"same version re-signed", sign(t, issuer, map[string]string{"x.rego": allowAll}, 5), ErrRollback},
		{"another pinned issuer's lower version", sign(t, other, open, 2), ErrRollback},
		{"does not compile", seal(t, issuer, payloadOf(issuer, 9, map[string]string{"p.rego": "package ztmesh.authz\nallow if {"})), ErrCompile},
		{"no allow rule", seal(t, issuer, payloadOf(issuer, 9, map[string]string{"p.rego": "package ztmesh.other\nallow := true"})), ErrCompile},
		{"calls http.send", seal(t, issuer, payloadOf(issuer, 9, map[string]string{"p.rego": "package ztmesh.authz\nallow if http.send({}).status_code == 200"})), ErrCompile},
		{"too large", append(bytes.Repeat([]byte(" "), MaxBundleSize), current...), ErrTooLarge},
		{"not JSON", []byte("ztmesh"), ErrMalformed},
		{"empty", nil, ErrMalformed},
		{"JSON null", []byte("null"), ErrMalformed},
		{"unknown envelope field", []byte(strings.Replace(string(current), `{"payload"`, `{"alg":"none","payload"`, 1)), ErrMalformed},
		{"trailing data", append(bytes.Clone(current), []byte(`{}`)...), ErrMalformed},
		{"trailing brace", append(bytes.Clone(current), '}'), ErrMalformed},
		{"payload not base64", []byte(`{"payload":"%%%","signature":""}`), ErrMalformed},
		{"unpadded base64", []byte(strings.Replace(string(current), `=="}`, `"}`, 1)), ErrMalformed},
		{"short signature", wrap(t, []byte(`{}`), []byte{1, 2, 3}), ErrMalformed},
		{"unknown payload field", withField("expires", "2030-01-01T00:00:00Z"), ErrMalformed},
		{"version 0", withField("version", 0), ErrMalformed},
		{"negative version", withField("version", -1), ErrMalformed},
		{"issued_at not RFC 3339", withField("issued_at", "yesterday"), ErrMalformed},
		{"issuer not a DID", withField("issuer", "did:web:example.com"), ErrMalformed},
		{"no modules", withField("modules", map[string]string{}), ErrMalformed},
		{"modules missing", without("modules"), ErrMalformed},
		{"module name escapes", withField("modules", map[string]string{"../etc/x.rego": allowAll}), ErrMalformed},
		{"module name absolute", withField("modules", map[string]string{"/x.rego": allowAll}), ErrMalformed},
		{"module name not .rego", withField("modules", map[string]string{"x.json": allowAll}), ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t)
			if _, err := e.ApplyBundle(current, trusted); err != nil {
				t.Fatal(err)
			}
			_, err := e.ApplyBundle(tc.token, trusted)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			// The old policy still decides.
			if e.Version() != 5 || e.Source() != "bundle:"+issuer.DID().String() {
				t.Fatalf("policy in force: version %d from %s, want 5 from the issuer", e.Version(), e.Source())
			}
			if d := e.Decide(t.Context(), zoneInput(ActionSubscribe, "nowhere", member())); !d.Allow || d.Version != 5 {
				t.Fatalf("old policy no longer decides: %+v", d)
			}
			// And a good newer bundle still applies.
			if _, err := e.ApplyBundle(sign(t, issuer, open, 6), trusted); err != nil || e.Version() != 6 {
				t.Fatalf("next bundle: err %v, version %d", err, e.Version())
			}
		})
	}
}

func TestBundleVersionIgnoresFiles(t *testing.T) {
	issuer := identity(t, 1)
	e := newEngine(t)
	if _, err := e.ApplyBundle(sign(t, issuer, map[string]string{"open.rego": allowAll}, 3), pinned(issuer)); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "deny.rego")
	if err := os.WriteFile(file, []byte(denyAll), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := e.LoadPath(file); err != nil || e.Version() != 1 {
		t.Fatalf("file after bundle: err %v, version %d", err, e.Version())
	}
	if _, err := e.ApplyBundle(sign(t, issuer, map[string]string{"open.rego": allowAll}, 2), pinned(issuer)); !errors.Is(err, ErrRollback) {
		t.Fatalf("bundle 2 after bundle 3 and a file: err = %v, want ErrRollback", err)
	}
	if _, err := e.ApplyBundle(sign(t, issuer, map[string]string{"open.rego": allowAll}, 4), pinned(issuer)); err != nil {
		t.Fatal(err)
	}
}

func TestSignBundleRefuses(t *testing.T) {
	issuer := identity(t, 1)
	for _, tc := range []struct {
		name    string
		modules map[string]string
		version uint64
		want    error
	}{
		{"version 0", map[string]string{"open.rego": allowAll}, 0, ErrMalformed},
		{"no modules", nil, 1, ErrMalformed},
		{"bad module name", map[string]string{"open": allowAll}, 1, ErrMalformed},
		{"does not compile", map[string]string{"open.rego": "package ztmesh.authz\nallow if {"}, 1, ErrCompile},
		{"too large", map[string]string{"open.rego": allowAll + strings.Repeat("# comment\n", 80_000)}, 1, ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := SignBundle(issuer, tc.modules, tc.version, Scope{}, t0); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

var sentinels = []error{ErrMalformed, ErrTooLarge, ErrBadSignature, ErrUntrustedIssuer}

func FuzzVerifyBundle(f *testing.F) {
	issuer := identity(f, 1)
	good := sign(f, issuer, map[string]string{"open.rego": allowAll}, 1)
	f.Add(good)
	f.Add(sign(f, identity(f, 3), map[string]string{"open.rego": allowAll}, 2))
	f.Add(seal(f, issuer, payloadOf(issuer, 2, map[string]string{"../x.rego": ""})))
	f.Add([]byte(`{"payload":"","signature":""}`))
	f.Add([]byte(`{}`))
	scoped, err := SignBundle(issuer, map[string]string{"open.rego": allowAll}, 2, Scope{Mesh: "fleet", Expires: t0.Add(time.Hour)}, t0)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(scoped)
	trusted := pinned(issuer)
	f.Fuzz(func(t *testing.T, token []byte) {
		b, err := VerifyBundle(token, trusted)
		if err != nil {
			for _, s := range sentinels {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("error wraps no sentinel: %v", err)
		}
		if b.Issuer != issuer.DID() || b.Version == 0 || len(b.Modules) == 0 || !bytes.Equal(b.Raw, bytes.TrimSpace(token)) {
			t.Fatalf("accepted bundle %+v", b)
		}
		payload, sig := unwrap(t, b.Raw)
		if !did.VerifyDomain(issuer.PublicKey(), BundleContext, payload, sig) {
			t.Fatalf("accepted a bundle whose signature does not verify")
		}
	})
}
