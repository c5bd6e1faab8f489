package crdt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestAntiEntropyChunks(t *testing.T) {
	ft := newFakeTime(t0)
	a := newReplica(t, replicaConfig{id: ident(t, 1), now: ft.Now})
	b := newReplica(t, replicaConfig{id: ident(t, 2), now: ft.Now})
	value := bytes.Repeat([]byte("x"), 1000)
	for i := range 200 {
		must(a.Put(bg, fmt.Sprint("k", i), value))
	}
	const maxBytes = 16 << 10
	digest := must(b.Digest())
	var chunks int
	err := a.Missing(digest, maxBytes, func(c []byte) error {
		chunks++
		if len(c) > maxBytes {
			t.Errorf("chunk of %d bytes, limit %d", len(c), maxBytes)
		}
		_, skipped, err := b.ApplyChunk(c)
		if len(skipped) > 0 {
			t.Errorf("skipped %v", skipped)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if chunks < 10 {
		t.Errorf("200 KB of state in %d chunks of at most 16 KiB", chunks)
	}
	if !sameState(stateOf(a), stateOf(b)) {
		t.Fatal("states differ after anti-entropy")
	}
	if !bytes.Equal(must(a.Digest()), must(b.Digest())) {
		t.Error("digests differ between equal states")
	}
	if n := pull(t, b, a, maxBytes); n != 0 {
		t.Errorf("second pull sent %d chunks, want none", n)
	}
}

// TestAntiEntropySendsLittle checks that reconciling two states that differ
// in a few keys sends those keys' buckets, not the state.
func TestAntiEntropySendsLittle(t *testing.T) {
	ft := newFakeTime(t0)
	a := newReplica(t, replicaConfig{id: ident(t, 1), now: ft.Now})
	b := newReplica(t, replicaConfig{id: ident(t, 2), now: ft.Now})
	for i := range 400 {
		must(a.Put(bg, fmt.Sprint("k", i), []byte("v")))
	}
	pull(t, b, a, 0)
	for i := range 3 {
		must(a.Put(bg, fmt.Sprint("new", i), []byte("v")))
	}
	must(a.Delete(bg, "k7"))
	sent := 0
	if err := a.Missing(must(b.Digest()), 0, func(c []byte) error {
		ch, err := decodeChunk(c)
		if err != nil {
			return err
		}
		sent += len(ch.Entries)
		_, _, err = b.ApplyChunk(c)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// 400 entries in 128 buckets: about 3 per bucket, 4 buckets differ.
	if sent > 40 {
		t.Errorf("sent %d entries to repair 4 keys", sent)
	}
	if !sameState(stateOf(a), stateOf(b)) {
		t.Error("states differ")
	}
}

func TestApplyChunkChecksEachEntry(t *testing.T) {
	alice, mallory := ident(t, 1), ident(t, 2)
	ft := newFakeTime(t0)
	aw := newReplica(t, replicaConfig{id: alice, now: ft.Now})
	mw := newReplica(t, replicaConfig{id: mallory, now: ft.Now})
	ahead := newReplica(t, replicaConfig{id: alice, now: newFakeTime(t0.Add(time.Hour)).Now})
	aliceKey := func(s string) string { return alice.DID().String() + "/" + s }

	good := must(aw.Put(bg, aliceKey("good"), []byte("v"))).Entries[0]
	tampered := must(aw.Put(bg, aliceKey("tampered"), []byte("v"))).Entries[0]
	tampered.Value = []byte("forged")
	relayed := must(mw.Put(bg, aliceKey("mallory"), []byte("v"))).Entries[0] // mallory writing alice's key
	forged := must(mw.Put(bg, aliceKey("forged"), []byte("v"))).Entries[0]
	forged.TS.Origin = alice.DID() // claims alice wrote it
	future := must(ahead.Put(bg, aliceKey("future"), []byte("v"))).Entries[0]

	second := must(aw.Put(bg, aliceKey("second"), []byte("v"))).Entries[0]
	chunkOf := func(es ...Entry) []byte {
		var n names
		w := wireChunk{V: formatVersion, State: "positions", Kind: LWWMap}
		for _, e := range es {
			w.Entries = append(w.Entries, n.toWire(LWWMap, &e))
		}
		return must(json.Marshal(&w))
	}
	r := newReplica(t, replicaConfig{id: ident(t, 3), now: ft.Now, auth: ownKeys})
	// Entries another replica may judge otherwise (policy, clock) are
	// skipped one by one; the others are applied.
	changed, skipped, err := r.ApplyChunk(chunkOf(good, relayed, future))
	if err != nil {
		t.Fatal(err)
	}
	if len(changed) != 1 || changed[0].Key != aliceKey("good") {
		t.Errorf("changed %+v, want only the good entry", changed)
	}
	for i, want := range []error{ErrUnauthorized, ErrClockDrift} {
		if i >= len(skipped) || !errors.Is(skipped[i], want) {
			t.Errorf("skipped = %v; entry %d should fail with %v", skipped, i+1, want)
		}
	}
	// An entry whose signature fails is junk from the sender: the whole
	// chunk is refused at it, nothing applied (not even the good entry
	// before it).
	for _, bad := range []Entry{tampered, forged} {
		changed, skipped, err = r.ApplyChunk(chunkOf(second, bad, good))
		if !errors.Is(err, ErrBadSignature) || !strings.Contains(err.Error(), "entry 2 of 3") || changed != nil || skipped != nil {
			t.Errorf("chunk with a bad signature: changed %v, skipped %v, err %v; want ErrBadSignature at entry 2", changed, skipped, err)
		}
	}
	if s := stateOf(r); len(s) != 1 {
		t.Errorf("state:\n%s", describe(s))
	}
}

func TestAntiEntropyRejects(t *testing.T) {
	r := newReplica(t, replicaConfig{})
	must(r.Put(bg, "k", []byte("v")))
	other := newReplica(t, replicaConfig{name: "other", id: ident(t, 2)})
	set := newReplica(t, replicaConfig{kind: ORSet, id: ident(t, 3)})
	digest := func(f func(*wireDigest)) []byte {
		var w wireDigest
		if err := json.Unmarshal(must(r.Digest()), &w); err != nil {
			t.Fatal(err)
		}
		f(&w)
		return must(json.Marshal(&w))
	}
	noop := func([]byte) error { return nil }
	tests := []struct {
		name   string
		digest []byte
		want   error
	}{
		{"another state", must(other.Digest()), ErrWrongState},
		{"another kind", must(set.Digest()), ErrWrongState},
		{"too many buckets", digest(func(w *wireDigest) { w.Bits = 13; w.Hashes = make([]byte, 16<<13) }), ErrTooLarge},
		{"bits out of range", digest(func(w *wireDigest) { w.Bits = 13 }), ErrMalformed},
		{"negative bits", digest(func(w *wireDigest) { w.Bits = -1 }), ErrMalformed},
		{"hashes short", digest(func(w *wireDigest) { w.Hashes = w.Hashes[1:] }), ErrMalformed},
		{"version 2", digest(func(w *wireDigest) { w.V = 2 }), ErrVersion},
		{"not JSON", []byte("{"), ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := r.Missing(tc.digest, 0, noop); !errors.Is(err, tc.want) {
				t.Errorf("Missing: %v, want %v", err, tc.want)
			}
		})
	}

	// A chunk for another state, and malformed chunks.
	chunk := chunkOf(t, r)
	if _, _, err := other.ApplyChunk(chunk); !errors.Is(err, ErrWrongState) {
		t.Errorf("chunk of another state: %v", err)
	}
	for name, c := range map[string][]byte{
		"empty":         []byte(`{"v":1,"state":"positions","kind":"lww","entries":[]}`),
		"not JSON":      chunk[:len(chunk)-1],
		"non-canonical": bytes.Replace(chunk, []byte(`"v":1`), []byte(`"v":1.0`), 1),
	} {
		if _, _, err := newReplica(t, replicaConfig{id: ident(t, 4)}).ApplyChunk(c); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s chunk: %v, want ErrMalformed", name, err)
		}
	}
}

// TestAntiEntropyAfterReordering is the case a per-origin "highest
// timestamp seen" vector gets wrong: b saw alice's second write but not her
// first, so such a vector would say b is up to date with alice. The digest
// hashes what b holds, so the first write is found missing and sent.
func TestAntiEntropyAfterReordering(t *testing.T) {
	ft := newFakeTime(t0)
	a := newReplica(t, replicaConfig{id: ident(t, 1), now: ft.Now})
	b := newReplica(t, replicaConfig{id: ident(t, 2), now: ft.Now})
	must(a.Put(bg, "first", []byte("1"))) // lost on the way to b
	second := must(a.Put(bg, "second", []byte("2")))
	if _, err := b.Apply(second.Origin, roundTrip(t, second)); err != nil {
		t.Fatal(err)
	}
	pull(t, b, a, 0)
	if v, ok := b.Get("first"); !ok || string(v) != "1" {
		t.Errorf("after anti-entropy, first = %q, %v", v, ok)
	}
}
