package crdt

import (
	"bytes"
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var updateVectors = flag.Bool("update", false, "rewrite testdata/vectors from the code")

// TestVectors holds the encoder to the examples in docs/CRDT.md, stored in
// testdata/vectors: alice is the identity whose seed is 32 bytes of 0x01,
// bob's is 32 bytes of 0x02, and time starts at 2026-11-27T10:00:00Z.
// Ed25519 signatures are deterministic, so every byte is fixed. Each
// message must also decode and verify.
func TestVectors(t *testing.T) {
	alice, bob := ident(t, 1), ident(t, 2)
	ft := newFakeTime(t0)
	m := newReplica(t, replicaConfig{name: "positions", kind: LWWMap, id: alice, now: ft.Now})
	s := newReplica(t, replicaConfig{name: "tasks", kind: ORSet, id: alice, now: ft.Now})
	bm := newReplica(t, replicaConfig{name: "positions", kind: LWWMap, id: bob, now: ft.Now})

	key := alice.DID().String() + "/position"
	put := must(m.Put(bg, key, []byte(`{"lat":48.85,"lon":2.35}`)))
	ft.Advance(time.Second)
	del := must(m.Delete(bg, key))
	add := must(s.Add(bg, "job-7"))
	ft.Advance(time.Second)
	remove := must(s.Remove(bg, "job-7"))

	digest := must(bm.Digest())
	var chunks [][]byte
	if err := m.Missing(digest, 0, func(c []byte) error { chunks = append(chunks, c); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(chunks) != 1 {
		t.Fatalf("%d chunks", len(chunks))
	}

	vectors := map[string][]byte{
		"delta-lww-put.json":      must(put.Encode()),
		"delta-lww-delete.json":   must(del.Encode()),
		"delta-orset-add.json":    must(add.Encode()),
		"delta-orset-remove.json": must(remove.Encode()),
		"digest-empty.json":       digest,
		"chunk.json":              chunks[0],
		"signed-lww-put.hex":      []byte(hex.EncodeToString(signedBytes("positions", LWWMap, &put.Entries[0]))),
	}
	dir := filepath.Join("testdata", "vectors")
	for name, got := range vectors {
		path := filepath.Join(dir, name)
		if *updateVectors {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, append(got, '\n'), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, bytes.TrimSuffix(want, []byte("\n"))) {
			t.Errorf("%s: the code produces\n%s\nthe vector is\n%s", name, got, want)
		}
	}

	// The vectors decode, verify and apply.
	r := newReplica(t, replicaConfig{name: "positions", id: bob, now: ft.Now})
	for _, name := range []string{"delta-lww-put.json", "delta-lww-delete.json"} {
		d, err := DecodeDelta(vectors[name])
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := r.Apply(alice.DID(), d); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if _, skipped, err := bm.ApplyChunk(vectors["chunk.json"]); err != nil || skipped != nil {
		t.Fatalf("chunk: %v %v", skipped, err)
	}
	if !sameState(stateOf(bm), stateOf(r)) {
		t.Error("the chunk and the deltas give different states")
	}
}
