package crdt

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/ztmesh/ztmesh/did"
)

// fuzzReplicas returns an LWW map and an OR-set with a little state, and
// the encodings of the deltas that made it.
func fuzzReplicas(f *testing.F) (m, s *Replica, deltas [][]byte) {
	m = newReplica(f, replicaConfig{name: "m", kind: LWWMap})
	s = newReplica(f, replicaConfig{name: "s", kind: ORSet})
	for _, d := range []*Delta{
		must(m.Put(bg, "k", []byte("value"))),
		must(m.Put(bg, "k2", nil)),
		must(m.Delete(bg, "k")),
		must(s.Add(bg, "x")),
		must(s.Add(bg, "x")),
		must(s.Remove(bg, "x")),
	} {
		deltas = append(deltas, must(d.Encode()))
	}
	return m, s, deltas
}

func FuzzDecodeDelta(f *testing.F) {
	m, s, deltas := fuzzReplicas(f)
	for _, d := range deltas {
		f.Add(d)
	}
	f.Add([]byte(`{"v":1}`))
	f.Add([]byte(`{"v":2,"state":"m"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := DecodeDelta(data)
		if err != nil {
			return
		}
		again, err := d.Encode()
		if err != nil {
			t.Fatalf("a decoded delta does not encode: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("decode then encode changed the bytes:\n%q\n%q", data, again)
		}
		for _, r := range []*Replica{m, s} {
			r.Apply(d.Origin, d) // must not panic; a forged entry is refused
		}
	})
}

func FuzzDecodeChunk(f *testing.F) {
	m, s, _ := fuzzReplicas(f)
	for _, r := range []*Replica{m, s} {
		f.Add(chunkOf2(f, r))
	}
	f.Add([]byte(`{"v":1,"state":"m","kind":"lww","entries":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := decodeChunk(data)
		if err != nil {
			return
		}
		var n names
		w := wireChunk{V: formatVersion, State: c.State, Kind: c.Kind}
		for i := range c.Entries {
			w.Entries = append(w.Entries, n.toWire(c.Kind, &c.Entries[i]))
		}
		again, err := json.Marshal(&w)
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("decode then encode changed the bytes (%v):\n%q\n%q", err, data, again)
		}
		for _, r := range []*Replica{m, s} {
			r.ApplyChunk(data) // must not panic
		}
	})
}

func FuzzDecodeDigest(f *testing.F) {
	m, s, _ := fuzzReplicas(f)
	for _, r := range []*Replica{m, s} {
		f.Add(must(r.Digest()))
	}
	f.Add([]byte(`{"v":1,"state":"m","kind":"lww","bits":0,"hashes":"AAAAAAAAAAAAAAAAAAAAAA=="}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := decodeDigest(data)
		if err != nil {
			return
		}
		again, err := json.Marshal(d)
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("decode then encode changed the bytes (%v):\n%q\n%q", err, data, again)
		}
		for _, r := range []*Replica{m, s} {
			r.Missing(data, 256, func(c []byte) error { // must not panic, and send good chunks
				if _, err := decodeChunk(c); err != nil {
					t.Fatalf("Missing sent a bad chunk: %v", err)
				}
				return nil
			})
		}
	})
}

// chunkOf2 is chunkOf for a fuzz target's setup.
func chunkOf2(f *testing.F, r *Replica) []byte {
	empty := newReplica(f, replicaConfig{name: r.name, kind: r.kind, id: ident(f, 9)})
	var out []byte
	if err := r.Missing(must(empty.Digest()), 0, func(c []byte) error { out = c; return nil }); err != nil {
		f.Fatal(err)
	}
	return out
}

// TestEd25519DIDShape backs the shortcut in names.parse: every Ed25519
// did:key is ed25519DIDLen characters and starts with did:key:z6Mk.
func TestEd25519DIDShape(t *testing.T) {
	keys := [][]byte{bytes.Repeat([]byte{0}, 32), bytes.Repeat([]byte{0xff}, 32)}
	for i := range 200 {
		keys = append(keys, ident(t, byte(i)).PublicKey())
	}
	for _, k := range keys {
		s := did.DIDFromPublicKey(k).String()
		if len(s) != ed25519DIDLen || !strings.HasPrefix(s, "did:key:z6Mk") {
			t.Errorf("%s: %d characters", s, len(s))
		}
	}
}
