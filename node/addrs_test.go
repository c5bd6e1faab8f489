package node

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/ztmesh/ztmesh/pubsub"
)

// A member relays another member's announcement with an address of its
// own choosing. The receiver must not dial it: it pulls the origin's key
// through the address the origin signed, and reads the zone; the forged
// address reaches neither its peerstore nor what it hands on.
func TestRelayedAnnouncementCannotRedirectKeyPulls(t *testing.T) {
	m := newMesh(t)
	zone := []string{"north"}
	origin, relayer, receiver, hub := m.startIn(zone), m.startIn(zone), m.startIn(zone), m.startIn(zone)
	verifiedMesh(t, receiver, relayer)
	verifiedMesh(t, receiver, hub)

	// The relayer (a member with a valid credential) hands on the origin's
	// announcement, authentic in its signed parts, with a bogus address:
	// a port where nothing listens.
	bogus := ma.StringCast("/ip4/127.0.0.1/tcp/1")
	forged, err := json.Marshal(announcement{V: 1, Credential: origin.Credential().Raw,
		KeyPackage: origin.Mesh().KeyPackage(), Addrs: []string{bogus.String()}})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the receiver holds the origin from the forged copy", func() bool {
		if _, ok := receiver.roster.announced(origin.host.ID()); ok {
			return true
		}
		_ = relayer.Mesh().PublishMember(context.Background(), forged)
		time.Sleep(50 * time.Millisecond) // pacing of the re-publication, not a wait for a result
		return false
	})

	// The origin joins through the hub only: its messages reach the
	// receiver through the hub, and the receiver must pull its key.
	connect(t, origin, hub)
	eventually(t, 5*time.Second, "hub verifies origin", func() bool { return verifiedBy(hub, origin.host.ID()) })
	got := collect(t, receiver, "north", "maps")
	collect(t, hub, "north", "maps")
	publishUntil(t, origin, "north", "maps", "signed address", func(s string) bool { return got.has(s) })

	if slices.ContainsFunc(receiver.host.Peerstore().Addrs(origin.host.ID()), bogus.Equal) {
		t.Fatalf("the forged address reached the receiver's peerstore: %v", receiver.host.Peerstore().Addrs(origin.host.ID()))
	}
	e, _ := receiver.roster.announced(origin.host.ID())
	for _, tok := range receiver.roster.MemberTokens([]pubsub.MemberHash{e.hash}) {
		if addrs := tokenAddrs(t, tok); slices.ContainsFunc(addrs, bogus.Equal) {
			t.Fatalf("the receiver hands on the forged address: %v", addrs)
		}
	}
}

// tokenAddrs lists every address an announcement carries: the unsigned
// ones and those of its peer record.
func tokenAddrs(t *testing.T, tok []byte) []ma.Multiaddr {
	t.Helper()
	var a struct {
		Addrs      []string `json:"addrs"`
		PeerRecord []byte   `json:"peer_record"`
	}
	if err := json.Unmarshal(tok, &a); err != nil {
		t.Fatal(err)
	}
	var out []ma.Multiaddr
	for _, s := range a.Addrs {
		out = append(out, ma.StringCast(s))
	}
	if a.PeerRecord != nil {
		_, rec, err := record.ConsumeEnvelope(a.PeerRecord, peer.PeerRecordEnvelopeDomain)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rec.(*peer.PeerRecord).Addrs...)
	}
	return out
}

// TestAnnouncementAddressesAreSignedByTheMember: whatever a relayer does
// to the addresses in a copy of an announcement, the receiver keeps only
// a peer record the member signed, the newest it has seen.
func TestAnnouncementAddressesAreSignedByTheMember(t *testing.T) {
	m := newMesh(t)
	a, b, relayer := m.start(), m.start(), m.start()
	tok, err := b.roster.Announcement()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.roster.ApplyMember("", tok); err != nil {
		t.Fatal(err)
	}
	genuine := b.host.Addrs()[0]
	if !slices.ContainsFunc(a.host.Peerstore().Addrs(b.host.ID()), genuine.Equal) {
		t.Fatalf("b's signed address is not in a's peerstore: %v", a.host.Peerstore().Addrs(b.host.ID()))
	}
	var held announcement
	if err := json.Unmarshal(tok, &held); err != nil {
		t.Fatal(err)
	}
	seal := func(key crypto.PrivKey, id peer.ID, seq uint64, addrs ...ma.Multiaddr) []byte {
		env, err := record.Seal(&peer.PeerRecord{PeerID: id, Addrs: addrs, Seq: seq}, key)
		if err != nil {
			t.Fatal(err)
		}
		b, err := env.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	bogus := ma.StringCast("/ip4/10.9.9.9/tcp/4001")
	newer := ma.StringCast("/ip4/127.0.0.1/tcp/4002")
	many := make([]ma.Multiaddr, maxRecordAddrs+1)
	for i := range many {
		many[i] = ma.StringCast(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 5000+i))
	}
	for _, c := range []struct {
		name         string
		v            int
		addrs        []string
		record       []byte
		wantErr      bool
		want, absent ma.Multiaddr
	}{
		{name: "version 1 copy with unsigned addresses: read, never kept", v: 1, addrs: []string{bogus.String()}, absent: bogus, want: genuine},
		{name: "record for the member signed by the relayer", v: 2, record: seal(relayer.id.LibP2PKey(), b.host.ID(), 1<<62, bogus), wantErr: true, absent: bogus},
		{name: "the relayer's own record in the member's announcement", v: 2, record: seal(relayer.id.LibP2PKey(), relayer.host.ID(), 1<<62, bogus), wantErr: true, absent: bogus},
		{name: "record of too many addresses", v: 2, record: seal(b.id.LibP2PKey(), b.host.ID(), 1<<62, many...), wantErr: true, absent: many[0]},
		{name: "an older record of the member does not replace the newer", v: 2, record: seal(b.id.LibP2PKey(), b.host.ID(), 1, bogus), absent: bogus, want: genuine},
		{name: "a newer record of the member replaces the older", v: 2, record: seal(b.id.LibP2PKey(), b.host.ID(), 1<<62, newer), want: newer, absent: genuine},
	} {
		t.Run(c.name, func(t *testing.T) {
			cp := held
			cp.V, cp.Addrs, cp.PeerRecord = c.v, c.addrs, c.record
			tok, _ := json.Marshal(cp)
			_, err := a.roster.ApplyMember("", tok)
			if (err != nil) != c.wantErr {
				t.Fatalf("ApplyMember: %v, want error %v", err, c.wantErr)
			}
			got := a.host.Peerstore().Addrs(b.host.ID())
			if c.absent != nil && slices.ContainsFunc(got, c.absent.Equal) {
				t.Fatalf("%s reached the peerstore: %v", c.absent, got)
			}
			if c.want != nil && !slices.ContainsFunc(got, c.want.Equal) {
				t.Fatalf("%s is not in the peerstore: %v", c.want, got)
			}
			e, _ := a.roster.announced(b.host.ID())
			for _, tok := range a.roster.MemberTokens([]pubsub.MemberHash{e.hash}) {
				if addrs := tokenAddrs(t, tok); c.absent != nil && slices.ContainsFunc(addrs, c.absent.Equal) {
					t.Fatalf("a hands on %s: %v", c.absent, addrs)
				}
			}
		})
	}
}

func FuzzDecodeAnnouncement(f *testing.F) {
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		f.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(key)
	env, err := record.Seal(&peer.PeerRecord{PeerID: id, Addrs: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/4001")}, Seq: 7}, key)
	if err != nil {
		f.Fatal(err)
	}
	rec, _ := env.Marshal()
	v2, _ := json.Marshal(announcement{V: 2, Credential: "eyJ.eyJ.sig", KeyPackage: []byte("kp"), PeerRecord: rec})
	v1, _ := json.Marshal(announcement{V: 1, Credential: "eyJ.eyJ.sig", KeyPackage: []byte("kp"), Addrs: []string{"/ip4/127.0.0.1/tcp/1"}})
	f.Add(v2)
	f.Add(v1)
	f.Add([]byte(`{"v":2,"credential":"x","key_package":"","peer_record":"AAAA"}`))
	f.Add([]byte(`{"v":1,"credential":"x","key_package":"","addrs":["/ip4/1.2.3.4/tcp/1"],"peer_record":"AAAA"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := decodeAnnouncement(data)
		if err != nil {
			return
		}
		if len(a.PeerRecord) > maxPeerRecord || a.V == 1 && a.PeerRecord != nil || a.V != 1 && a.Addrs != nil {
			t.Fatalf("accepted %+v", a)
		}
		env, err := verifyPeerRecord(a.PeerRecord, id)
		if err != nil || env == nil {
			return
		}
		r, err := env.Record()
		if err != nil {
			t.Fatal(err)
		}
		if pr := r.(*peer.PeerRecord); pr.PeerID != id || len(pr.Addrs) > maxRecordAddrs {
			t.Fatalf("accepted a record of %s with %d addresses", pr.PeerID, len(pr.Addrs))
		}
	})
}
