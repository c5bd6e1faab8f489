package crdt

import (
	"crypto/ed25519"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/ztmesh/ztmesh/did"
)

// Benchmarks report absolute numbers and a baseline measured in the same
// run; compare ratios, not absolutes, across machines.

// benchDeltas returns n encoded one-put deltas from four writers, each
// newer than the last, over 10k keys with 64-byte values.
func benchDeltas(b *testing.B, n int) []message {
	ft := newFakeTime(t0)
	writers := make([]*Replica, 4)
	for i := range writers {
		writers[i] = newReplica(b, replicaConfig{id: ident(b, byte(i+1)), now: ft.Now})
	}
	value := make([]byte, 64)
	out := make([]message, n)
	for i := range out {
		ft.Advance(time.Microsecond)
		d := must(writers[i%4].Put(bg, fmt.Sprint("key-", i%10_000), value))
		out[i] = message{from: d.Origin, data: must(d.Encode())}
	}
	return out
}

// BenchmarkMergeDeltas measures receiving deltas: decode, check (drift,
// signature, authorization) and merge, in memory and committed to bbolt
// (one synced transaction per delta). The baseline is the Ed25519
// verification alone, which bounds the rest.
func BenchmarkMergeDeltas(b *testing.B) {
	b.Run("baseline-ed25519-verify", func(b *testing.B) {
		id := ident(b, 1)
		msg := make([]byte, 200)
		sig := id.Sign(EntryContext, msg)
		pub := id.PublicKey()
		b.ResetTimer()
		for range b.N {
			if !did.VerifyDomain(pub, EntryContext, msg, sig) {
				b.Fatal("bad signature")
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deltas/s")
	})
	for _, withStore := range []bool{false, true} {
		name := "memory"
		if withStore {
			name = "bbolt"
		}
		b.Run(name, func(b *testing.B) {
			deltas := benchDeltas(b, b.N)
			var store *Store
			if withStore {
				store = must(OpenStore(filepath.Join(b.TempDir(), "state.db")))
				defer store.Close()
			}
			r := newReplica(b, replicaConfig{id: ident(b, 9), now: newFakeTime(t0.Add(time.Second)).Now, store: store})
			b.ResetTimer()
			for i := range b.N {
				d, err := DecodeDelta(deltas[i].data)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := r.Apply(deltas[i].from, d); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deltas/s")
		})
	}
}

// BenchmarkMemoryPer10kKeys measures the heap a replica holds for 10k keys
// of an LWW map with 32-byte values (a position, a status), against a
// plain map[string][]byte of the same keys and values.
func BenchmarkMemoryPer10kKeys(b *testing.B) {
	const keys = 10_000
	writers := []did.DID{ident(b, 1).DID(), ident(b, 2).DID(), ident(b, 3).DID()}
	rng := rand.New(rand.NewPCG(1, 2))
	entries := make([]Entry, keys)
	for i := range entries {
		w := writers[i%len(writers)]
		key := fmt.Sprintf("%s/agent-%d", w, i)
		value := make([]byte, 32)
		sig := make([]byte, ed25519.SignatureSize)
		for j := range sig {
			sig[j] = byte(rng.Uint32())
		}
		entries[i] = Entry{Key: key, Value: value, TS: Timestamp{Wall: t0.UnixNano() + int64(i), Origin: w}, Sig: sig}
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	measure := func(b *testing.B, build func() any) {
		var total uint64
		for range b.N {
			before := heap()
			keep := build()
			after := heap()
			runtime.KeepAlive(keep)
			total += after - before
		}
		b.ReportMetric(float64(total)/float64(b.N), "bytes/10k-keys")
	}
	b.Run("baseline-map", func(b *testing.B) {
		measure(b, func() any {
			m := make(map[string][]byte)
			for _, e := range entries {
				m[string([]byte(e.Key))] = append([]byte(nil), e.Value...)
			}
			return m
		})
	})
	b.Run("lww-replica", func(b *testing.B) {
		measure(b, func() any {
			r, err := NewReplica("bench", LWWMap, ident(b, 9), NewClock(nil, 0), nil, allowAll)
			if err != nil {
				b.Fatal(err)
			}
			r.mu.Lock()
			for i := range entries {
				// Own copies of the keys, as decoding a delta makes.
				e := entries[i]
				e.Key = string([]byte(e.Key))
				if _, err := r.commitLocked([]Entry{e}, minCutoff); err != nil {
					b.Fatal(err)
				}
			}
			r.mu.Unlock()
			return r
		})
	})
}

// BenchmarkEncodeDecodeDelta measures the codec on a one-put delta with a
// 64-byte value, against encoding/json on the same wire struct without
// the checks.
func BenchmarkEncodeDecodeDelta(b *testing.B) {
	r := newReplica(b, replicaConfig{})
	d := must(r.Put(bg, ident(b, 1).DID().String()+"/pos", make([]byte, 64)))
	data := must(d.Encode())
	b.Run("encode", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for range b.N {
			if _, err := d.Encode(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for range b.N {
			if _, err := DecodeDelta(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkAntiEntropy10k measures a digest of 10k keys, and answering it
// from a replica that differs in 10 keys.
func BenchmarkAntiEntropy10k(b *testing.B) {
	writer := ident(b, 1)
	a := newReplica(b, replicaConfig{id: writer})
	c := newReplica(b, replicaConfig{id: ident(b, 2)})
	sig := make([]byte, ed25519.SignatureSize)
	a.mu.Lock()
	c.mu.Lock()
	for i := range 10_000 {
		e := Entry{Key: fmt.Sprint("key-", i), Value: make([]byte, 32), TS: Timestamp{Wall: t0.UnixNano() + int64(i), Origin: writer.DID()}, Sig: sig}
		a.commitLocked([]Entry{e}, minCutoff)
		if i%1000 != 0 {
			c.commitLocked([]Entry{e}, minCutoff)
		}
	}
	c.mu.Unlock()
	a.mu.Unlock()
	b.Run("digest", func(b *testing.B) {
		for range b.N {
			if _, err := c.Digest(); err != nil {
				b.Fatal(err)
			}
		}
	})
	digest := must(c.Digest())
	b.Run("missing", func(b *testing.B) {
		var entries int
		for range b.N {
			entries = 0
			if err := a.Missing(digest, 0, func(ch []byte) error {
				entries += len(must(decodeChunk(ch)).Entries)
				return nil
			}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(digest)), "digest-bytes")
		b.ReportMetric(float64(entries), "entries-sent")
	})
}
