package crdt

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ztmesh/ztmesh/did"
)

// t0 is the start of every fake timeline.
var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

// fakeTime is an injected physical clock.
type fakeTime struct{ ns atomic.Int64 }

func newFakeTime(at time.Time) *fakeTime {
	f := &fakeTime{}
	f.ns.Store(at.UnixNano())
	return f
}

func (f *fakeTime) Now() time.Time          { return time.Unix(0, f.ns.Load()).UTC() }
func (f *fakeTime) Advance(d time.Duration) { f.ns.Add(int64(d)) }

var (
	identitiesMu sync.Mutex
	identities   = map[byte]*did.Identity{}
)

// ident returns the test identity whose seed is 32 bytes of i.
func ident(t testing.TB, i byte) *did.Identity {
	t.Helper()
	identitiesMu.Lock()
	defer identitiesMu.Unlock()
	if id, ok := identities[i]; ok {
		return id
	}
	id, err := did.IdentityFromSeed(bytes.Repeat([]byte{i}, 32))
	if err != nil {
		t.Fatal(err)
	}
	identities[i] = id
	return id
}

func allowAll(did.DID, string, string) error { return nil }

// ownKeys is the default policy's rule: a writer writes keys under its DID.
func ownKeys(origin did.DID, _, key string) error {
	if len(key) > len(origin.String())+1 && key[:len(origin.String())+1] == origin.String()+"/" {
		return nil
	}
	return fmt.Errorf("key %q is not under %s/", key, origin)
}

type replicaConfig struct {
	name  string
	kind  Kind
	id    *did.Identity
	now   func() time.Time
	store *Store
	auth  Authorizer
	opts  []Option
}

func newReplica(t testing.TB, c replicaConfig) *Replica {
	t.Helper()
	if c.name == "" {
		c.name = "positions"
	}
	if c.kind == "" {
		c.kind = LWWMap
	}
	if c.id == nil {
		c.id = ident(t, 1)
	}
	if c.now == nil {
		c.now = newFakeTime(t0).Now
	}
	if c.auth == nil {
		c.auth = allowAll
	}
	r, err := NewReplica(c.name, c.kind, c.id, NewClock(c.now, 0), c.store, c.auth, c.opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// stateOf returns every entry a replica keeps, tombstones included, sorted
// by key and dot: the full CRDT state, for comparisons.
func stateOf(r *Replica) []Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Entry
	for _, slots := range r.slots {
		out = append(out, slots...)
	}
	slices.SortFunc(out, func(a, b Entry) int {
		if c := strings.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		return a.Dot.Compare(b.Dot)
	})
	return out
}

func sameState(a, b []Entry) bool {
	return slices.EqualFunc(a, b, func(x, y Entry) bool {
		return x.Key == y.Key && x.Dot == y.Dot && x.TS == y.TS && x.Deleted == y.Deleted &&
			bytes.Equal(x.Value, y.Value) && bytes.Equal(x.Sig, y.Sig)
	})
}

func describe(s []Entry) string {
	var b bytes.Buffer
	for _, e := range s {
		fmt.Fprintf(&b, "  %q del=%v val=%q dot=%d/%d ts=%d/%d\n", e.Key, e.Deleted, e.Value, e.Dot.Wall, e.Dot.Logical, e.TS.Wall, e.TS.Logical)
	}
	return b.String()
}

// pull runs one anti-entropy exchange: dst sends its digest to src, src
// answers with chunks of at most maxBytes, dst applies them. It returns
// the number of chunks.
func pull(t testing.TB, dst, src *Replica, maxBytes int) int {
	t.Helper()
	digest, err := dst.Digest()
	if err != nil {
		t.Fatal(err)
	}
	chunks := 0
	err = src.Missing(digest, maxBytes, func(c []byte) error {
		chunks++
		_, skipped, err := dst.ApplyChunk(c)
		if len(skipped) > 0 {
			return fmt.Errorf("skipped: %v", skipped)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return chunks
}

// must returns v, or panics (failing the test) if err is set.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// roundTrip encodes and decodes a delta, as the network does.
func roundTrip(t testing.TB, d *Delta) *Delta {
	t.Helper()
	b, err := d.Encode()
	if err != nil {
		t.Fatal(err)
	}
	out, err := DecodeDelta(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var bg = context.Background()
