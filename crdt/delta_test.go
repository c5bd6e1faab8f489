package crdt

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestDeltaRoundTrip(t *testing.T) {
	m := newReplica(t, replicaConfig{kind: LWWMap})
	s := newReplica(t, replicaConfig{name: "tasks", kind: ORSet})
	var deltas []*Delta
	deltas = append(deltas, must(m.Put(bg, "k", []byte("v"))))
	deltas = append(deltas, must(m.Put(bg, "empty", nil)))
	deltas = append(deltas, must(m.Delete(bg, "k")))
	deltas = append(deltas, must(s.Add(bg, "job")))
	deltas = append(deltas, must(s.Add(bg, "job"))) // replaces the first add
	deltas = append(deltas, must(s.Remove(bg, "job")))
	for _, d := range deltas {
		b, err := d.Encode()
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeDelta(b)
		if err != nil {
			t.Fatalf("DecodeDelta(%s): %v", b, err)
		}
		if got.State != d.State || got.Kind != d.Kind || got.Origin != d.Origin || !sameState(got.Entries, d.Entries) {
			t.Errorf("round trip of %s changed the delta:\n%+v\n%+v", b, got, d)
		}
		again, _ := got.Encode()
		if !bytes.Equal(again, b) {
			t.Errorf("re-encoding differs:\n%s\n%s", b, again)
		}
	}
	if n := len(deltas[4].Entries); n != 2 {
		t.Errorf("a re-add has %d entries, want the add and a remove of the first add", n)
	}
}

// validWire returns a valid encoded LWW delta and OR-set remove delta, as
// wire structs to mutate.
func validWire(t *testing.T) (lww, orset wireDelta) {
	m := newReplica(t, replicaConfig{kind: LWWMap})
	s := newReplica(t, replicaConfig{name: "tasks", kind: ORSet})
	must(s.Add(bg, "job"))
	for _, c := range []struct {
		d   *Delta
		out *wireDelta
	}{
		{must(m.Put(bg, "k", []byte("v"))), &lww},
		{must(s.Remove(bg, "job")), &orset},
	} {
		b, err := c.d.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, c.out); err != nil {
			t.Fatal(err)
		}
	}
	return lww, orset
}

func TestDecodeDeltaRejects(t *testing.T) {
	other := ident(t, 2).DID().String()
	enc := func(w wireDelta) []byte {
		b, err := json.Marshal(&w)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	lww := func(f func(w *wireDelta)) []byte {
		w, _ := validWire(t)
		f(&w)
		return enc(w)
	}
	orset := func(f func(w *wireDelta)) []byte {
		_, w := validWire(t)
		f(&w)
		return enc(w)
	}
	good := lww(func(*wireDelta) {})
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"over 1 MiB", append(good, bytes.Repeat([]byte(" "), MaxDeltaSize)...), ErrTooLarge},
		{"not JSON", []byte("hello"), ErrMalformed},
		{"empty", nil, ErrMalformed},
		{"trailing data", append(append([]byte{}, good...), "{}"...), ErrMalformed},
		{"unknown field", bytes.Replace(good, []byte(`{"v":1,`), []byte(`{"v":1,"extra":0,`), 1), ErrMalformed},
		{"whitespace", bytes.Replace(good, []byte(`{"v":1,`), []byte(`{"v": 1,`), 1), ErrMalformed},
		{"field case", bytes.Replace(good, []byte(`"state"`), []byte(`"STATE"`), 1), ErrMalformed},
		{"duplicate field", bytes.Replace(good, []byte(`{"v":1,`), []byte(`{"v":1,"v":1,`), 1), ErrMalformed},
		{"explicit default", bytes.Replace(good, []byte(`"ts":`), []byte(`"deleted":false,"ts":`), 1), ErrMalformed},
		{"version 2", lww(func(w *wireDelta) { w.V = 2 }), ErrVersion},
		{"version 2 with new fields", []byte(`{"v":2,"future":true}`), ErrVersion},
		{"bad state name", lww(func(w *wireDelta) { w.State = "Positions!" }), ErrMalformed},
		{"unknown kind", lww(func(w *wireDelta) { w.Kind = "counter" }), ErrMalformed},
		{"origin not a DID", lww(func(w *wireDelta) { w.Origin = "did:key:zNope" }), ErrMalformed},
		{"no entries", lww(func(w *wireDelta) { w.Entries = nil }), ErrMalformed},
		{"too many entries", lww(func(w *wireDelta) {
			for len(w.Entries) <= MaxEntries {
				w.Entries = append(w.Entries, w.Entries[0])
			}
		}), ErrTooLarge},
		{"entry by another writer", lww(func(w *wireDelta) { w.Entries[0].TS.Origin = other }), ErrAttribution},
		{"empty key", lww(func(w *wireDelta) { w.Entries[0].Key = "" }), ErrInvalid},
		{"key over 256 bytes", lww(func(w *wireDelta) { w.Entries[0].Key = strings.Repeat("k", MaxKeySize+1) }), ErrTooLarge},
		{"value over 256 KiB", lww(func(w *wireDelta) { w.Entries[0].Value = make([]byte, MaxValueSize+1) }), ErrTooLarge},
		{"delete with a value", lww(func(w *wireDelta) { w.Entries[0].Deleted = true }), ErrMalformed},
		{"map entry with a dot", lww(func(w *wireDelta) { w.Entries[0].Dot = &w.Entries[0].TS }), ErrMalformed},
		{"zero wall time", lww(func(w *wireDelta) { w.Entries[0].TS.Wall = 0 }), ErrMalformed},
		{"short signature", lww(func(w *wireDelta) { w.Entries[0].Sig = w.Entries[0].Sig[:63] }), ErrMalformed},
		{"set entry with a value", orset(func(w *wireDelta) { w.Entries[0].Value = []byte("x") }), ErrMalformed},
		{"set remove without dot", orset(func(w *wireDelta) { w.Entries[0].Dot = nil }), ErrMalformed},
		{"set add with dot", orset(func(w *wireDelta) { w.Entries[0].Deleted = false }), ErrMalformed},
		{"set dot not a DID", orset(func(w *wireDelta) { w.Entries[0].Dot.Origin = "x" }), ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := DecodeDelta(tc.data)
			if !errors.Is(err, tc.want) {
				t.Fatalf("DecodeDelta = %+v, %v; want %v", d, err, tc.want)
			}
		})
	}
	if _, err := DecodeDelta(good); err != nil {
		t.Fatalf("the unmodified delta: %v", err)
	}
}
