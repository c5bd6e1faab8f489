package pubsub

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ztmesh/ztmesh/did"
)

func TestTopicNames(t *testing.T) {
	z, err := ZoneTopic("fleet", "north", "maps")
	if err != nil || z.String() != "ztmesh/fleet/zone/north/maps" {
		t.Fatalf("%v %v", z, err)
	}
	if c := ControlTopic("fleet"); c.String() != "ztmesh/fleet/control" || !c.IsControl() {
		t.Fatal(c)
	}
	mt, err := MembersTopic("fleet", "north")
	if err != nil || mt.String() != "ztmesh/fleet/zone/north/_members" || !mt.IsMembers() || mt.IsControl() || z.IsMembers() {
		t.Fatalf("%v %v", mt, err)
	}
	if _, err := ZoneTopic("fleet", "north", MembersChannel); err == nil {
		t.Fatal("a zone channel took the member topic's name")
	}
	for _, s := range []string{"ztmesh/fleet/zone/north/maps", "ztmesh/fleet/control", "ztmesh/fleet/zone/north/_members"} {
		p, err := ParseTopic(s)
		if err != nil || p.String() != s {
			t.Fatalf("ParseTopic(%q) = %v, %v", s, p, err)
		}
	}
	for _, bad := range []string{
		"", "ztmesh/", "ztmesh/fleet/zone/north", "ztmesh/fleet/zone//maps", "ztmesh/fleet/zone/North/maps",
		"ztmesh/fleet/zone/north/maps/extra", "other/fleet/zone/a/b", "ztmesh/fleet/zone/a/" + strings.Repeat("x", 65),
		"ztmesh/fleet/zone/a b/c", "ztmesh/fleet/zone/_control/control", "ztmesh/fleet/zone/_x/_members",
		"ztmesh/fleet/zone/north/_other",
	} {
		if _, err := ParseTopic(bad); err == nil {
			t.Errorf("ParseTopic(%q) accepted", bad)
		}
	}
}

func testKey(t testing.TB, topic string) *senderKey {
	t.Helper()
	k, err := newSenderKey(origin, topic, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

const (
	topicA = "ztmesh/fleet/zone/a/maps"
	topicB = "ztmesh/fleet/zone/b/maps"
)

var (
	origin = peer.ID("origin-peer")
	other  = peer.ID("other-peer")
	t0     = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
)

func TestEnvelopeSealOpen(t *testing.T) {
	k := testKey(t, topicA)
	payload := []byte("collective perception map")
	data, err := sealEnvelope(k, topicA, origin, 42, t0, payload)
	if err != nil {
		t.Fatal(err)
	}
	e, err := parseEnvelope(data)
	if err != nil {
		t.Fatal(err)
	}
	if e.keyID != k.id || e.seq != 42 || !e.time.Equal(t0) {
		t.Fatalf("header %+v", e)
	}
	pt, err := e.open(k, topicA, origin)
	if err != nil || !bytes.Equal(pt, payload) {
		t.Fatalf("open: %q %v", pt, err)
	}
	if bytes.Contains(data, payload) {
		t.Fatal("payload visible in the envelope")
	}
}

func TestEnvelopeBindsEverything(t *testing.T) {
	k := testKey(t, topicA)
	data, _ := sealEnvelope(k, topicA, origin, 7, t0, []byte("hello"))
	flip := func(i int) []byte { d := bytes.Clone(data); d[i] ^= 1; return d }
	cases := []struct {
		name   string
		data   []byte
		topic  string
		origin peer.ID
		key    *senderKey
	}{
		{"other topic", data, topicB, origin, k},
		{"other origin", data, topicA, other, k},
		{"other key", data, topicA, origin, testKey(t, topicA)},
		{"seq changed", flip(17), topicA, origin, k},
		{"time changed", flip(25), topicA, origin, k},
		{"ciphertext bit flipped", flip(headerSize + 1), topicA, origin, k},
		{"tag bit flipped", flip(len(data) - 1), topicA, origin, k},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, err := parseEnvelope(tc.data)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.open(tc.key, tc.topic, tc.origin); !errors.Is(err, errOpen) {
				t.Fatalf("opened: %v", err)
			}
		})
	}
}

func TestParseEnvelopeRejects(t *testing.T) {
	k := testKey(t, topicA)
	good, _ := sealEnvelope(k, topicA, origin, 1, t0, nil)
	for name, data := range map[string][]byte{
		"empty":         nil,
		"short":         good[:headerSize+gcmTagSize-1],
		"wrong version": append([]byte{2}, good[1:]...),
		"wrong kind":    append([]byte{1, 9}, good[2:]...),
		"too large":     make([]byte, MaxPayload+headerSize+gcmTagSize+1),
	} {
		if _, err := parseEnvelope(data); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := sealEnvelope(k, topicA, origin, 1, t0, make([]byte, MaxPayload+1)); !errors.Is(err, ErrPayloadTooLarge) {
		t.Fatalf("oversized payload sealed: %v", err)
	}
}

// TestEnvelopeVector pins the envelope format against a stored vector
// (testdata/envelope.hex), sealed with a fixed key.
func TestEnvelopeVector(t *testing.T) {
	raw := bytes.Repeat([]byte{7}, senderKeySize)
	k, err := senderKeyFrom(KeyID{1, 2, 3, 4, 5, 6, 7, 8}, topicA, raw, t0)
	if err != nil {
		t.Fatal(err)
	}
	data, err := sealEnvelope(k, topicA, origin, 1, t0, []byte("ztmesh"))
	if err != nil {
		t.Fatal(err)
	}
	got := hex.EncodeToString(data)
	stored := readVector(t, "envelope.hex")
	if got != stored {
		t.Fatalf("envelope vector changed:\n got  %s\n want %s", got, stored)
	}
}

func TestKeyPackageAndSenderKeySealing(t *testing.T) {
	for _, suite := range []string{SuiteHybrid, SuiteX25519} {
		t.Run(suite, func(t *testing.T) {
			alice, _ := did.GenerateIdentity(rand.Reader)
			bob, _ := did.GenerateIdentity(rand.Reader)
			km, err := newKeyMaterial(bob, suite, t0)
			if err != nil {
				t.Fatal(err)
			}
			kp, err := ParseKeyPackage(km.enc, bob.DID(), t0)
			if err != nil {
				t.Fatal(err)
			}
			k, err := newSenderKey(alice.PeerID(), topicA, t0)
			if err != nil {
				t.Fatal(err)
			}
			sealed, err := sealSenderKey(k, alice.PeerID(), bob.PeerID(), kp)
			if err != nil {
				t.Fatal(err)
			}
			got, err := openSenderKey(km.priv, sealed, topicA, alice.PeerID(), bob.PeerID(), k.id, t0)
			if err != nil || !bytes.Equal(got.raw, k.raw) {
				t.Fatalf("open: %v", err)
			}
			// Bound to topic, origin, recipient and key ID.
			for name, f := range map[string]func() error{
				"other topic": func() error {
					_, err := openSenderKey(km.priv, sealed, topicB, alice.PeerID(), bob.PeerID(), k.id, t0)
					return err
				},
				"other origin": func() error {
					_, err := openSenderKey(km.priv, sealed, topicA, other, bob.PeerID(), k.id, t0)
					return err
				},
				"other recipient": func() error {
					_, err := openSenderKey(km.priv, sealed, topicA, alice.PeerID(), other, k.id, t0)
					return err
				},
				"other key id": func() error {
					_, err := openSenderKey(km.priv, sealed, topicA, alice.PeerID(), bob.PeerID(), KeyID{9}, t0)
					return err
				},
			} {
				if err := f(); !errors.Is(err, errOpenKey) {
					t.Errorf("%s: %v", name, err)
				}
			}
		})
	}
}

func TestKeyPackageRejects(t *testing.T) {
	bob, _ := did.GenerateIdentity(rand.Reader)
	mallory, _ := did.GenerateIdentity(rand.Reader)
	km, _ := newKeyMaterial(bob, SuiteHybrid, t0)
	if _, err := ParseKeyPackage(km.enc, mallory.DID(), t0); !errors.Is(err, ErrKeyPackage) {
		t.Fatalf("package of bob accepted for mallory: %v", err)
	}
	if _, err := ParseKeyPackage(km.enc, bob.DID(), t0.Add(keyPackageTTL+time.Second)); !errors.Is(err, ErrKeyPackage) {
		t.Fatalf("expired package accepted: %v", err)
	}
	// Mallory signs a package claiming bob's DID with her own public key.
	mkm, _ := newKeyMaterial(mallory, SuiteHybrid, t0)
	forged := *mkm.pkg
	forged.DID = bob.DID()
	if _, err := ParseKeyPackage(forged.Marshal(), bob.DID(), t0); !errors.Is(err, ErrKeyPackage) {
		t.Fatalf("forged package accepted: %v", err)
	}
	tampered := *km.pkg
	tampered.Public = bytes.Clone(km.pkg.Public)
	tampered.Public[10] ^= 1
	if _, err := ParseKeyPackage(tampered.Marshal(), bob.DID(), t0); !errors.Is(err, ErrKeyPackage) {
		t.Fatalf("tampered package accepted: %v", err)
	}
}

func TestReplayWindow(t *testing.T) {
	var w replayWindow
	for _, s := range []uint64{5, 7, 6, 100} {
		if !w.check(s) {
			t.Fatalf("fresh %d refused", s)
		}
	}
	for _, s := range []uint64{5, 6, 7, 100} {
		if w.check(s) {
			t.Fatalf("replay of %d accepted", s)
		}
	}
	if !w.check(99) {
		t.Fatal("late but new 99 refused")
	}
	w.check(100 + replayWindowBits + 5)
	if w.check(100) {
		t.Fatal("sequence number older than the window accepted")
	}
	// A large jump clears the window without false replays.
	if !w.check(100 + replayWindowBits + 4) {
		t.Fatal("fresh number just below the top refused")
	}
}

func FuzzParseEnvelope(f *testing.F) {
	k := testKey(f, topicA)
	good, _ := sealEnvelope(k, topicA, origin, 3, t0, []byte("x"))
	f.Add(good)
	f.Add([]byte{1, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := parseEnvelope(data)
		if err != nil {
			return
		}
		if pt, err := e.open(k, topicA, origin); err == nil && !bytes.Equal(data, good) {
			t.Fatalf("forged envelope opened: %q", pt)
		}
	})
}

func FuzzParseKeyPackage(f *testing.F) {
	bob, _ := did.GenerateIdentity(rand.Reader)
	km, _ := newKeyMaterial(bob, SuiteX25519, t0)
	f.Add(km.enc)
	f.Add([]byte(`{"v":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		kp, err := ParseKeyPackage(data, bob.DID(), t0)
		if err != nil {
			return
		}
		if kp.DID != bob.DID() || !did.VerifyDomain(bob.PublicKey(), labelKeyPackage, kp.signedBytes(), kp.Signature) {
			t.Fatal("accepted an unsigned key package")
		}
	})
}

func FuzzDecodeControl(f *testing.F) {
	f.Add([]byte(`{"v":1,"type":"policy","token":"YQ=="}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cm, err := decodeControl(data)
		if err != nil {
			return
		}
		if cm.V != 1 || len(cm.Token) == 0 {
			t.Fatalf("accepted %+v", cm)
		}
	})
}

// readVector reads a hex test vector from testdata. The vectors were made
// by a separate program that builds the format from docs/PROTOCOL.md with
// the standard library alone, not by this package.
func readVector(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("test vector: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// TestKeyIDVector pins the key ID derivation (testdata/keyid.hex): key =
// 32 × 0x07, origin bytes "origin-peer", topic ztmesh/fleet/zone/a/maps.
func TestKeyIDVector(t *testing.T) {
	id := keyIDOf(origin, topicA, bytes.Repeat([]byte{7}, senderKeySize))
	if got, want := hex.EncodeToString(id[:]), readVector(t, "keyid.hex"); got != want {
		t.Fatalf("key ID vector changed:\n got  %s\n want %s", got, want)
	}
	// Origin, topic and key each change the ID.
	for name, other := range map[string]KeyID{
		"other origin": keyIDOf(other, topicA, bytes.Repeat([]byte{7}, senderKeySize)),
		"other topic":  keyIDOf(origin, topicB, bytes.Repeat([]byte{7}, senderKeySize)),
		"other key":    keyIDOf(origin, topicA, bytes.Repeat([]byte{8}, senderKeySize)),
	} {
		if other == id {
			t.Errorf("%s: same key ID", name)
		}
	}
}

// TestEquivocatedKeyRefused: a key sealed under an ID that does not name it
// opens (the HPKE info is right) but is refused as an equivocation.
func TestEquivocatedKeyRefused(t *testing.T) {
	alice, _ := did.GenerateIdentity(rand.Reader)
	bob, _ := did.GenerateIdentity(rand.Reader)
	km, err := newKeyMaterial(bob, SuiteX25519, t0)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := ParseKeyPackage(km.enc, bob.DID(), t0)
	if err != nil {
		t.Fatal(err)
	}
	honest, err := newSenderKey(alice.PeerID(), topicA, t0)
	if err != nil {
		t.Fatal(err)
	}
	// Another key under the honest key's ID.
	forged, err := senderKeyFrom(honest.id, topicA, bytes.Repeat([]byte{9}, senderKeySize), t0)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := sealSenderKey(forged, alice.PeerID(), bob.PeerID(), kp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := openSenderKey(km.priv, sealed, topicA, alice.PeerID(), bob.PeerID(), honest.id, t0); !errors.Is(err, errKeyEquivocation) {
		t.Fatalf("equivocated key: %v", err)
	}
}
