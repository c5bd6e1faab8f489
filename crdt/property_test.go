package crdt

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ztmesh/ztmesh/did"
)

// The merge laws are checked on the merge itself (commitLocked), with
// entries made up at random, including the ones no honest writer makes:
// one writer reusing a timestamp for two values, removes older than their
// add. Signatures are random bytes: the laws do not depend on them.

// randomEntries returns n random entries of kind k over a few keys and
// writers.
func randomEntries(t *testing.T, rng *rand.Rand, k Kind, n int) []Entry {
	writers := []did.DID{ident(t, 1).DID(), ident(t, 2).DID(), ident(t, 3).DID()}
	ts := func() Timestamp {
		return Timestamp{Wall: 1 + rng.Int64N(8), Logical: rng.Uint32N(2), Origin: writers[rng.IntN(len(writers))]}
	}
	sig := func() []byte {
		b := make([]byte, 64)
		for i := range b {
			b[i] = byte(rng.IntN(2)) // few values, so ties on the signature happen too
		}
		return b
	}
	keys := []string{"a", "b", "c", "d"}
	var out, adds []Entry
	for range n {
		e := Entry{Key: keys[rng.IntN(len(keys))], TS: ts(), Sig: sig()}
		switch {
		case k == LWWMap && rng.IntN(4) == 0:
			e.Deleted = true
		case k == LWWMap:
			e.Value = []byte{"xyz"[rng.IntN(3)]}
		case len(adds) > 0 && rng.IntN(3) == 0:
			add := adds[rng.IntN(len(adds))]
			e.Key, e.Deleted, e.Dot = add.Key, true, add.Dot
		default:
			e.Dot = e.TS
			adds = append(adds, e)
		}
		out = append(out, e)
	}
	return out
}

// join merges states (or delta entries) in order into a fresh replica and
// returns its state.
func join(t *testing.T, k Kind, parts ...[]Entry) []Entry {
	r := newReplica(t, replicaConfig{kind: k})
	r.mu.Lock()
	for _, p := range parts {
		if _, err := r.commitLocked(p, minCutoff); err != nil {
			t.Fatal(err)
		}
	}
	r.mu.Unlock()
	return stateOf(r)
}

func subset(rng *rand.Rand, pool []Entry) []Entry {
	var out []Entry
	for _, e := range pool {
		if rng.IntN(2) == 0 {
			out = append(out, e)
		}
	}
	return out
}

func TestMergeLaws(t *testing.T) {
	for _, k := range []Kind{LWWMap, ORSet} {
		t.Run(string(k), func(t *testing.T) {
			for seed := range uint64(150) {
				rng := rand.New(rand.NewPCG(seed, 1))
				pool := randomEntries(t, rng, k, 30)
				a := join(t, k, subset(rng, pool))
				b := join(t, k, subset(rng, pool))
				c := join(t, k, subset(rng, pool))
				check := func(law string, x, y []Entry) {
					t.Helper()
					if !sameState(x, y) {
						t.Fatalf("seed %d: %s fails:\n%s\nvs\n%s", seed, law, describe(x), describe(y))
					}
				}
				check("commutativity a⊔b = b⊔a", join(t, k, a, b), join(t, k, b, a))
				check("associativity (a⊔b)⊔c = a⊔(b⊔c)", join(t, k, join(t, k, a, b), c), join(t, k, a, join(t, k, b, c)))
				check("idempotence a⊔a = a", join(t, k, a, a), a)
				check("absorption (a⊔b)⊔b = a⊔b", join(t, k, join(t, k, a, b), b), join(t, k, a, b))

				// Deltas in any order, duplicated, one at a time or all
				// at once, give the same state.
				var shuffled []Entry
				for _, e := range pool {
					for range 1 + rng.IntN(3) {
						shuffled = append(shuffled, e)
					}
				}
				rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
				var single [][]Entry
				for _, e := range shuffled {
					single = append(single, []Entry{e})
				}
				check("order and duplication", join(t, k, pool), join(t, k, single...))
			}
		})
	}
}

// TestConvergence runs random histories on a few replicas: local writes
// broadcast to the others through a network that drops, duplicates and
// reorders deltas and is partitioned at times, with occasional
// anti-entropy between replicas that can reach each other. When the
// partitions heal and anti-entropy has run, every replica must hold the
// same state, and that state must be the join of every write ever made:
// nothing acknowledged is lost.
func TestConvergence(t *testing.T) {
	histories := 12
	if testing.Short() {
		histories = 4
	}
	for _, k := range []Kind{LWWMap, ORSet} {
		for seed := range uint64(histories) {
			t.Run(fmt.Sprintf("%s/%d", k, seed), func(t *testing.T) { runHistory(t, k, seed) })
		}
	}
}

type message struct {
	from did.DID
	data []byte
}

func runHistory(t *testing.T, k Kind, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 2))
	var vt atomic.Int64
	vt.Store(t0.UnixNano())
	n := 3 + rng.IntN(3)
	replicas := make([]*Replica, n)
	for i := range replicas {
		skew := time.Duration(rng.IntN(10_000)-5_000) * time.Millisecond
		replicas[i] = newReplica(t, replicaConfig{name: "s", kind: k, id: ident(t, byte(i+1)),
			now: func() time.Time { return time.Unix(0, vt.Load()).Add(skew) }})
	}
	inbox := make([][]message, n)
	group := make([]int, n)
	var all []message
	keys := make([]string, 24)
	for i := range keys {
		keys[i] = fmt.Sprint("k", i)
	}

	write := func(i int) {
		r, key := replicas[i], keys[rng.IntN(len(keys))]
		var d *Delta
		var err error
		switch {
		case k == LWWMap && rng.IntN(4) == 0:
			d, err = r.Delete(bg, key)
		case k == LWWMap:
			d, err = r.Put(bg, key, []byte(fmt.Sprint(rng.IntN(100))))
		case rng.IntN(3) == 0:
			d, err = r.Remove(bg, key)
		default:
			d, err = r.Add(bg, key)
		}
		if err != nil {
			t.Fatal(err)
		}
		if d == nil {
			return
		}
		m := message{from: d.Origin, data: must(d.Encode())}
		all = append(all, m)
		for j := range replicas {
			if j == i || group[i] != group[j] || rng.IntN(5) == 0 { // 20% loss
				continue
			}
			for range 1 + rng.IntN(2) { // duplicates
				inbox[j] = append(inbox[j], m)
			}
		}
	}
	deliver := func(j int) {
		if len(inbox[j]) == 0 {
			return
		}
		x := rng.IntN(len(inbox[j])) // any queued message: reordering
		m := inbox[j][x]
		inbox[j] = append(inbox[j][:x], inbox[j][x+1:]...)
		d, err := DecodeDelta(m.data)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := replicas[j].Apply(m.from, d); err != nil {
			t.Fatalf("replica %d: %v", j, err)
		}
	}

	for range 60 {
		vt.Add(int64(rng.IntN(50)) * int64(time.Millisecond))
		switch x := rng.IntN(100); {
		case x < 45:
			write(rng.IntN(n))
		case x < 90:
			deliver(rng.IntN(n))
		case x < 95: // anti-entropy within a partition
			i, j := rng.IntN(n), rng.IntN(n)
			if i != j && group[i] == group[j] {
				pull(t, replicas[i], replicas[j], 512)
			}
		default: // partition or heal
			for i := range group {
				group[i] = rng.IntN(2)
			}
		}
	}
	// Heal. Half of what is still in flight is lost; the rest arrives in
	// any order. Then one round of anti-entropy over a ring, both ways.
	for j := range inbox {
		for len(inbox[j]) > 0 {
			if rng.IntN(2) == 0 {
				deliver(j)
			} else {
				inbox[j] = inbox[j][1:]
			}
		}
	}
	for round := range 2 {
		for i := range replicas {
			pull(t, replicas[i], replicas[(i+1+round)%n], 512)
		}
	}
	for i := range replicas {
		pull(t, replicas[i], replicas[(i+1)%n], 512)
	}

	reference := newReplica(t, replicaConfig{name: "s", kind: k, id: ident(t, 100),
		now: func() time.Time { return time.Unix(0, vt.Load()).Add(time.Minute) }})
	for _, m := range all {
		if _, err := reference.Apply(m.from, must(DecodeDelta(m.data))); err != nil {
			t.Fatal(err)
		}
	}
	want := stateOf(reference)
	for i, r := range replicas {
		if got := stateOf(r); !sameState(got, want) {
			t.Fatalf("replica %d of %d did not converge to the join of all %d writes:\n%s\nwant\n%s", i, n, len(all), describe(got), describe(want))
		}
		if fmt.Sprint(r.Snapshot()) != fmt.Sprint(reference.Snapshot()) {
			t.Fatalf("replica %d: snapshot %v, want %v", i, r.Snapshot(), reference.Snapshot())
		}
	}
}
