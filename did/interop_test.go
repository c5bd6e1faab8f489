package did

import (
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"testing"
	"time"
)

// interopSeed is the issuer seed of the committed foreign vectors (32 bytes
// of 0x01); interop/vc.mjs derives the same did:key from it.
var interopSeed = bytes.Repeat([]byte{1}, 32)

// TestForeignCredentialVector verifies a credential that did-jwt-vc 4.0.16
// issued for a ztmesh subject (interop/vc.mjs issue, committed in
// testdata/interop): no kid, and issuer, id and subject only in iss, jti
// and sub, as VC Data Model 1.1 section 6.3.1 allows. The cross-
// implementation run (make test-interop) makes new ones; this vector keeps
// `go test` covering the encoding on its own.
func TestForeignCredentialVector(t *testing.T) {
	issuer, err := IdentityFromSeed(interopSeed)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := os.ReadFile("testdata/interop/did-jwt-vc.jwt")
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier([]DID{issuer.DID()})
	if err != nil {
		t.Fatal(err)
	}
	subject, _ := ParseDID("did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK")
	c, err := v.VerifyHolder(bytes.TrimSpace(tok), subject, time.Unix(1800000000, 0))
	if err != nil {
		t.Fatalf("did-jwt-vc credential refused: %v", err)
	}
	want := Claims{Role: "vehicle", TrustScore: 0.9, Zones: []string{"north"}, SoftwareVersion: "1.4.0"}
	if c.Issuer != issuer.DID() || c.ID != "urn:uuid:1b1a3e6e-0000-4000-8000-000000000001" ||
		c.Claims.Role != want.Role || c.Claims.TrustScore != want.TrustScore || !slices.Equal(c.Claims.Zones, want.Zones) ||
		c.Claims.SoftwareVersion != want.SoftwareVersion {
		t.Fatalf("read as %+v", c)
	}
	// Every byte is covered by the signature: the same vector with its
	// subject changed is refused.
	h, p := splitToken(t, string(bytes.TrimSpace(tok)))
	p["sub"] = "did:key:z6MkvnrVG8FLWMNxmJ5mbGefWFy8Rfx4Q1rMeQkGydDjZ1up"
	hb, _ := json.Marshal(h)
	pb, _ := json.Marshal(p)
	sig := bytes.Split(bytes.TrimSpace(tok), []byte("."))[2]
	forged := b64.EncodeToString(hb) + "." + b64.EncodeToString(pb) + "." + string(sig)
	if _, err := v.Verify([]byte(forged), time.Unix(1800000000, 0)); err == nil {
		t.Fatal("the vector with another sub was accepted")
	}
}

// TestIssuedVCNamesItsIssuer: ztmesh writes vc.issuer equal to iss, never
// the empty string a strict VC validator may refuse.
func TestIssuedVCNamesItsIssuer(t *testing.T) {
	f := newFixture(t)
	_, p := splitToken(t, f.token)
	vc := p["vc"].(map[string]any)
	if got, ok := vc["issuer"].(string); !ok || got != p["iss"] {
		t.Fatalf("vc.issuer = %#v, want iss %v", vc["issuer"], p["iss"])
	}
}
