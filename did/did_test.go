package did

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/hyperledger/aries-framework-go/pkg/vdr/fingerprint"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// testIdentity returns a deterministic identity for seed byte b.
func testIdentity(t testing.TB, b byte) *Identity {
	t.Helper()
	id, err := IdentityFromSeed(bytes.Repeat([]byte{b}, ed25519.SeedSize))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestDIDPeerIDRoundTrip(t *testing.T) {
	for i := 0; i < 50; i++ {
		id, err := GenerateIdentity(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		d := id.DID()
		pid, err := d.PeerID()
		if err != nil {
			t.Fatal(err)
		}
		// The peer ID libp2p derives from the same key must be the one we derive.
		want, err := peer.IDFromPrivateKey(id.LibP2PKey())
		if err != nil {
			t.Fatal(err)
		}
		if pid != want || id.PeerID() != want {
			t.Fatalf("peer ID %s, libp2p says %s", pid, want)
		}
		back, err := DIDFromPeerID(pid)
		if err != nil {
			t.Fatal(err)
		}
		if back != d {
			t.Fatalf("DID -> peer ID -> DID: got %s, want %s", back, d)
		}
		parsed, err := ParseDID(d.String())
		if err != nil || parsed != d {
			t.Fatalf("ParseDID(%s) = %v, %v", d, parsed, err)
		}
		if !strings.HasPrefix(d.String(), "did:key:z6Mk") {
			t.Fatalf("Ed25519 did:key should start with z6Mk: %s", d)
		}
	}
}

// TestKnownVector pins one DID and peer ID so that a change of encoding
// anywhere (aries, libp2p, ours) shows up as a failure, not a silent fork.
// The expected strings were computed outside Go from the public key of seed
// 0x01 x 32: base58btc(0xed01 || pub) for the DID, and
// base58btc(identity multihash of the protobuf key 0x0801 0x1220 || pub) for
// the peer ID.
func TestKnownVector(t *testing.T) {
	id := testIdentity(t, 1)
	const wantDID = "did:key:z6Mkon3Necd6NkkyfoGoHxid2znGc59LU3K7mubaRcFbLfLX"
	if got := id.DID().String(); got != wantDID {
		t.Errorf("DID = %s, want %s", got, wantDID)
	}
	const wantPeer = "12D3KooWK99VoVxNE7XzyBwXEzW7xhK7Gpv85r9F3V3fyKSUKPH5"
	if got := id.PeerID().String(); got != wantPeer {
		t.Errorf("peer ID = %s, want %s", got, wantPeer)
	}
}

func TestDIDFromPeerIDRejectsOtherKeyTypes(t *testing.T) {
	priv, _, err := crypto.GenerateSecp256k1Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DIDFromPeerID(pid); err == nil {
		t.Fatal("secp256k1 peer ID accepted as a ztmesh DID")
	}
	if _, err := DIDFromPeerID(peer.ID("not a peer id")); err == nil {
		t.Fatal("garbage peer ID accepted")
	}
}

func TestParseDIDRejects(t *testing.T) {
	ed := testIdentity(t, 2).DID().String()
	x25519DID, _ := fingerprint.CreateDIDKeyByCode(fingerprint.X25519PubKeyMultiCodec, bytes.Repeat([]byte{9}, 32))
	p256DID, _ := fingerprint.CreateDIDKeyByCode(fingerprint.P256PubKeyMultiCodec, bytes.Repeat([]byte{3}, 33))
	for name, s := range map[string]string{
		"empty":                                "",
		"other method":                         "did:web:example.com",
		"no multibase":                         "did:key:",
		"x25519 key":                           x25519DID,
		"p256 key":                             p256DID,
		"truncated":                            ed[:len(ed)-3],
		"bad base58":                           "did:key:z6Mk0OIl",
		"fragment":                             ed + "#key-1",
		"too long":                             "did:key:z" + strings.Repeat("a", 200),
		"upper-case method":                    strings.Replace(ed, "did:key", "DID:KEY", 1),
		"trailing character":                   ed + "x",
		"non-ASCII (panicked btcutil base58)":  "did:key:z6Mk\xff\xfe\u00e9",
		"short BLS12-381 key (panicked aries)": "did:key:z62koyyN7AC1111111111111111111111111111111111111",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseDID(s); err == nil {
				t.Fatalf("ParseDID(%q) accepted", s)
			}
		})
	}
}

func TestKeyAgreementMatchesDIDDocument(t *testing.T) {
	for i := byte(1); i < 10; i++ {
		id := testIdentity(t, i)
		fromDoc, err := id.DID().KeyAgreementKey()
		if err != nil {
			t.Fatal(err)
		}
		priv := id.KeyAgreement()
		if !priv.PublicKey().Equal(fromDoc) {
			t.Fatalf("identity %d: X25519 public key from the private key differs from the did:key document's keyAgreement", i)
		}
	}
	// And the key agreement works: two identities agree on a shared secret.
	a, b := testIdentity(t, 1), testIdentity(t, 2)
	bPub, _ := b.DID().KeyAgreementKey()
	aPub, _ := a.DID().KeyAgreementKey()
	s1, err := a.KeyAgreement().ECDH(bPub)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := b.KeyAgreement().ECDH(aPub)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s1, s2) {
		t.Fatal("ECDH secrets differ")
	}
}

func TestDomainSeparatedSignatures(t *testing.T) {
	id := testIdentity(t, 3)
	msg := []byte("hello")
	sig := id.Sign("ztmesh/test-a", msg)
	if !VerifyDomain(id.PublicKey(), "ztmesh/test-a", msg, sig) {
		t.Fatal("signature does not verify in its own domain")
	}
	if VerifyDomain(id.PublicKey(), "ztmesh/test-b", msg, sig) {
		t.Fatal("signature verifies in another domain")
	}
	if ed25519.Verify(id.PublicKey(), msg, sig) {
		t.Fatal("domain signature verifies as a bare signature")
	}
}

func TestDIDTextMarshaling(t *testing.T) {
	d := testIdentity(t, 4).DID()
	b, err := d.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	var back DID
	if err := back.UnmarshalText(b); err != nil || back != d {
		t.Fatalf("text round trip: %v, %v", back, err)
	}
	if err := back.UnmarshalText([]byte("did:key:nope")); err == nil {
		t.Fatal("bad DID text accepted")
	}
	var zero DID
	if !zero.IsZero() || zero.String() != "" {
		t.Fatal("zero DID not zero")
	}
}

func FuzzParseDID(f *testing.F) {
	f.Add(testIdentity(f, 1).DID().String())
	f.Add("did:key:z6Mk")
	f.Add("did:key:zQ3s")
	f.Add("did:key:z62koyyN7AC1111111111111111111111111111111111111")
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDID(s)
		if err != nil {
			return
		}
		if d.String() != s {
			t.Fatalf("accepted %q but prints %q", s, d.String())
		}
		if _, err := d.PeerID(); err != nil {
			t.Fatalf("accepted DID has no peer ID: %v", err)
		}
	})
}
