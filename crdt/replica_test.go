package crdt

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ztmesh/ztmesh/did"
)

func TestLWWMap(t *testing.T) {
	ft := newFakeTime(t0)
	a := newReplica(t, replicaConfig{id: ident(t, 1), now: ft.Now})
	b := newReplica(t, replicaConfig{id: ident(t, 2), now: ft.Now})
	apply := func(to *Replica, d *Delta) []Change {
		t.Helper()
		ch, err := to.Apply(d.Origin, roundTrip(t, d))
		if err != nil {
			t.Fatal(err)
		}
		return ch
	}

	d1 := must(a.Put(bg, "k", []byte("from a")))
	ft.Advance(time.Millisecond)
	d2 := must(b.Put(bg, "k", []byte("from b"))) // later: wins everywhere
	if ch := apply(b, d1); len(ch) != 0 {
		t.Errorf("an older write changed b: %+v", ch)
	}
	if ch := apply(a, d2); len(ch) != 1 || string(ch[0].Value) != "from b" || ch[0].TS.Origin != ident(t, 2).DID() {
		t.Errorf("a newer write: changes %+v", ch)
	}
	for _, r := range []*Replica{a, b} {
		if v, ok := r.Get("k"); !ok || string(v) != "from b" {
			t.Errorf("Get = %q, %v; want the later write", v, ok)
		}
	}

	d3 := must(a.Delete(bg, "k"))
	ch := apply(b, d3)
	if len(ch) != 1 || !ch[0].Deleted || ch[0].Value != nil {
		t.Errorf("delete: changes %+v", ch)
	}
	if _, ok := b.Get("k"); ok {
		t.Error("deleted key still present")
	}
	if ch := apply(b, d2); len(ch) != 0 {
		t.Errorf("replaying an overwritten put after the delete: changes %+v", ch)
	}
	if _, ok := b.Get("k"); ok || len(b.Snapshot()) != 0 {
		t.Error("a replayed put resurrected a deleted key")
	}
}

func TestORSet(t *testing.T) {
	ft := newFakeTime(t0)
	a := newReplica(t, replicaConfig{name: "tasks", kind: ORSet, id: ident(t, 1), now: ft.Now})
	b := newReplica(t, replicaConfig{name: "tasks", kind: ORSet, id: ident(t, 2), now: ft.Now})
	sync := func(to *Replica, ds ...*Delta) {
		t.Helper()
		for _, d := range ds {
			if _, err := to.Apply(d.Origin, roundTrip(t, d)); err != nil {
				t.Fatal(err)
			}
		}
	}

	add := must(a.Add(bg, "x"))
	sync(b, add)
	if !b.Contains("x") {
		t.Fatal("b did not see the add")
	}
	// Concurrent: b removes the add it saw while a adds x again. The
	// re-add is not observed by the remove, so x stays.
	rm := must(b.Remove(bg, "x"))
	readd := must(a.Add(bg, "x"))
	sync(a, rm)
	sync(b, readd)
	for _, r := range []*Replica{a, b} {
		if !r.Contains("x") {
			t.Errorf("replica %s: a concurrent add lost to a remove", r.selfDID)
		}
	}
	if !sameState(stateOf(a), stateOf(b)) {
		t.Errorf("diverged:\n%s\n%s", describe(stateOf(a)), describe(stateOf(b)))
	}

	// A remove of everything observed removes the element everywhere.
	rm2 := must(b.Remove(bg, "x"))
	sync(a, rm2)
	if a.Contains("x") || b.Contains("x") || len(a.Elements()) != 0 {
		t.Error("removing every observed add left the element")
	}
	if d, err := b.Remove(bg, "x"); d != nil || err != nil {
		t.Errorf("removing an absent element = %v, %v; want nil, nil", d, err)
	}

	// A remove that arrives before its add wins over it.
	c := newReplica(t, replicaConfig{name: "tasks", kind: ORSet, id: ident(t, 3), now: ft.Now})
	sync(c, rm, readd, add)
	if !c.Contains("x") {
		t.Error("c: re-add lost")
	}
	sync(c, rm2)
	if c.Contains("x") {
		t.Error("c: remove arriving late did not remove")
	}
	if got := must(a.Add(bg, "y")); len(got.Entries) != 1 {
		t.Errorf("first add of y has %d entries", len(got.Entries))
	}
	if got := a.Elements(); !slices.Equal(got, []string{"y"}) {
		t.Errorf("Elements = %v", got)
	}
}

func TestWrongKind(t *testing.T) {
	m := newReplica(t, replicaConfig{kind: LWWMap})
	s := newReplica(t, replicaConfig{name: "tasks", kind: ORSet})
	if _, err := m.Add(bg, "x"); !errors.Is(err, ErrWrongKind) {
		t.Errorf("Add on a map: %v", err)
	}
	if _, err := s.Put(bg, "x", nil); !errors.Is(err, ErrWrongKind) {
		t.Errorf("Put on a set: %v", err)
	}
	if _, err := s.Delete(bg, "x"); !errors.Is(err, ErrWrongKind) {
		t.Errorf("Delete on a set: %v", err)
	}
}

func TestLocalWriteRejects(t *testing.T) {
	id := ident(t, 1)
	r := newReplica(t, replicaConfig{id: id, auth: ownKeys})
	mine := id.DID().String() + "/pos"
	tests := []struct {
		name  string
		key   string
		value []byte
		want  error
	}{
		{"someone else's key", ident(t, 2).DID().String() + "/pos", nil, ErrUnauthorized},
		{"empty key", "", nil, ErrInvalid},
		{"key not UTF-8", mine + "\xff", nil, ErrInvalid},
		{"key over 256 bytes", mine + string(make([]byte, MaxKeySize)), nil, ErrTooLarge},
		{"value over 256 KiB", mine, make([]byte, MaxValueSize+1), ErrTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := r.Put(bg, tc.key, tc.value); !errors.Is(err, tc.want) {
				t.Errorf("Put: %v, want %v", err, tc.want)
			}
		})
	}
	if len(stateOf(r)) != 0 {
		t.Error("a refused write changed the state")
	}
	if _, err := r.Put(bg, mine, []byte("ok")); err != nil {
		t.Errorf("own key: %v", err)
	}
}

func TestApplyRejects(t *testing.T) {
	alice, bob, mallory := ident(t, 1), ident(t, 2), ident(t, 3)
	ft := newFakeTime(t0)
	writer := func(id *did.Identity, now func() time.Time) *Replica {
		return newReplica(t, replicaConfig{id: id, now: now})
	}
	aliceKey := alice.DID().String() + "/pos"
	put := func(r *Replica, key string) *Delta { return roundTrip(t, must(r.Put(bg, key, []byte("v")))) }

	tests := []struct {
		name  string
		from  did.DID
		delta func() *Delta
		want  error
	}{
		{"sender is not the origin", mallory.DID(), func() *Delta { return put(writer(alice, ft.Now), aliceKey) }, ErrAttribution},
		{"entry by another writer", mallory.DID(), func() *Delta {
			d := put(writer(alice, ft.Now), aliceKey)
			d.Origin = mallory.DID()
			return d
		}, ErrAttribution},
		{"key outside the writer's prefix", mallory.DID(), func() *Delta { return put(writer(mallory, ft.Now), aliceKey) }, ErrUnauthorized},
		{"one unauthorized entry among many", alice.DID(), func() *Delta {
			w := writer(alice, ft.Now)
			d := put(w, aliceKey)
			d.Entries = append(d.Entries, put(w, bob.DID().String()+"/pos").Entries...)
			return d
		}, ErrUnauthorized},
		{"timestamp 2 minutes ahead", alice.DID(), func() *Delta {
			return put(writer(alice, newFakeTime(t0.Add(2*time.Minute)).Now), aliceKey)
		}, ErrClockDrift},
		{"value changed after signing", alice.DID(), func() *Delta {
			d := put(writer(alice, ft.Now), aliceKey)
			d.Entries[0].Value = []byte("forged")
			return d
		}, ErrBadSignature},
		{"signed by someone else", alice.DID(), func() *Delta {
			d := put(writer(alice, ft.Now), aliceKey)
			sign(mallory, "positions", LWWMap, &d.Entries[0])
			return d
		}, ErrBadSignature},
		{"signed for another state", alice.DID(), func() *Delta {
			d := put(newReplica(t, replicaConfig{name: "other", id: alice, now: ft.Now}), aliceKey)
			d.State = "positions"
			return d
		}, ErrBadSignature},
		{"another state", alice.DID(), func() *Delta {
			return put(newReplica(t, replicaConfig{name: "other", id: alice, now: ft.Now}), aliceKey)
		}, ErrWrongState},
		{"another kind", alice.DID(), func() *Delta {
			return roundTrip(t, must(newReplica(t, replicaConfig{kind: ORSet, id: alice, now: ft.Now}).Add(bg, aliceKey)))
		}, ErrWrongState},
		{"no entries", alice.DID(), func() *Delta {
			d := put(writer(alice, ft.Now), aliceKey)
			d.Entries = nil
			return d
		}, ErrMalformed},
		{"nil", alice.DID(), func() *Delta { return nil }, ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newReplica(t, replicaConfig{id: bob, now: ft.Now, auth: ownKeys})
			var watched []Change
			ctx, cancel := context.WithCancel(bg)
			defer cancel()
			w := r.Watch(ctx)
			ch, err := r.Apply(tc.from, tc.delta())
			if !errors.Is(err, tc.want) {
				t.Fatalf("Apply = %v, %v; want %v", ch, err, tc.want)
			}
			select {
			case c := <-w:
				watched = append(watched, c)
			default:
			}
			if len(stateOf(r)) != 0 || len(watched) != 0 {
				t.Errorf("a refused delta changed the state")
			}
		})
	}
}

func TestWatch(t *testing.T) {
	r := newReplica(t, replicaConfig{opts: []Option{WithWatchBuffer(2)}})
	ctx, cancel := context.WithCancel(bg)
	fast := r.Watch(ctx)
	slow := r.Watch(bg)
	for i := range 3 {
		must(r.Put(bg, fmt.Sprint("k", i), []byte("v")))
		c := <-fast
		if c.Key != fmt.Sprint("k", i) || string(c.Value) != "v" || c.State != "positions" {
			t.Errorf("change %d: %+v", i, c)
		}
	}
	// slow did not read: two changes fit, the third was dropped.
	if n := r.DroppedChanges(); n != 1 {
		t.Errorf("DroppedChanges = %d, want 1", n)
	}
	if c := <-slow; c.Key != "k0" {
		t.Errorf("slow watcher's first change: %+v", c)
	}
	cancel()
	waitClosed(t, fast)
	r.Close()
	<-slow
	waitClosed(t, slow)
	if _, ok := <-r.Watch(bg); ok {
		t.Error("Watch on a closed replica: channel open")
	}
	if _, err := r.Put(bg, "k", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Put after Close: %v", err)
	}
}

func waitClosed(t *testing.T, ch <-chan Change) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-timeout:
			t.Fatal("watch channel not closed")
		}
	}
}

type fakeTransport struct {
	sent [][]byte
	err  error
}

func (f *fakeTransport) Broadcast(_ context.Context, state string, delta []byte) error {
	if f.err != nil {
		return f.err
	}
	f.sent = append(f.sent, delta)
	return nil
}

func TestTransport(t *testing.T) {
	tr := &fakeTransport{}
	r := newReplica(t, replicaConfig{opts: []Option{WithTransport(tr)}})
	d := must(r.Put(bg, "k", []byte("v")))
	if len(tr.sent) != 1 {
		t.Fatalf("%d broadcasts, want 1", len(tr.sent))
	}
	if got, err := DecodeDelta(tr.sent[0]); err != nil || !sameState(got.Entries, d.Entries) {
		t.Errorf("broadcast %s is not the returned delta (%v)", tr.sent[0], err)
	}

	tr.err = errors.New("no peers")
	d, err := r.Put(bg, "k", []byte("v2"))
	if !errors.Is(err, ErrBroadcast) || d == nil {
		t.Errorf("failed broadcast: %v, %v; want the delta and ErrBroadcast", d, err)
	}
	if v, _ := r.Get("k"); string(v) != "v2" {
		t.Error("a write whose broadcast failed was not committed")
	}
}

func TestCollectGarbage(t *testing.T) {
	ft := newFakeTime(t0)
	a := newReplica(t, replicaConfig{id: ident(t, 1), now: ft.Now, opts: []Option{WithTombstoneHorizon(time.Hour)}})
	b := newReplica(t, replicaConfig{id: ident(t, 2), now: ft.Now, opts: []Option{WithTombstoneHorizon(time.Hour)}})
	put := must(a.Put(bg, "k", []byte("v")))
	must(a.Put(bg, "live", []byte("v")))
	del := must(a.Delete(bg, "k"))
	if n, err := a.CollectGarbage(); n != 0 || err != nil {
		t.Errorf("before the horizon: collected %d, %v", n, err)
	}
	ft.Advance(time.Hour + time.Second)
	if n, err := a.CollectGarbage(); n != 1 || err != nil {
		t.Errorf("after the horizon: collected %d, %v; want the tombstone", n, err)
	}
	if s := stateOf(a); len(s) != 1 || s[0].Key != "live" {
		t.Errorf("state after collection:\n%s", describe(s))
	}

	// b saw the put but not the delete, which has expired meanwhile: the
	// delete still removes the key, and is not kept.
	if _, err := b.Apply(put.Origin, put); err != nil {
		t.Fatal(err)
	}
	ch, err := b.Apply(del.Origin, del)
	if err != nil || len(ch) != 1 || !ch[0].Deleted {
		t.Fatalf("expired delete: %v, %v", ch, err)
	}
	if s := stateOf(b); len(s) != 0 {
		t.Errorf("an expired tombstone was kept:\n%s", describe(s))
	}
	// The documented hazard: a replica that missed the delete for longer
	// than the horizon brings the put back.
	if _, err := b.Apply(put.Origin, put); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.Get("k"); !ok {
		t.Error("expected the documented resurrection after the horizon")
	}

	// OR-set removes are collected the same way.
	s := newReplica(t, replicaConfig{name: "tasks", kind: ORSet, now: ft.Now, opts: []Option{WithTombstoneHorizon(time.Hour)}})
	must(s.Add(bg, "x"))
	must(s.Add(bg, "x"))
	must(s.Remove(bg, "x"))
	ft.Advance(2 * time.Hour)
	if n, err := s.CollectGarbage(); n != 2 || err != nil || len(stateOf(s)) != 0 {
		t.Errorf("set: collected %d, %v; left\n%s", n, err, describe(stateOf(s)))
	}
}

func TestNewReplicaRejects(t *testing.T) {
	id := ident(t, 1)
	c := NewClock(nil, 0)
	tests := []struct {
		name string
		make func() (*Replica, error)
	}{
		{"bad name", func() (*Replica, error) { return NewReplica("A B", LWWMap, id, c, nil, allowAll) }},
		{"bad kind", func() (*Replica, error) { return NewReplica("s", "gset", id, c, nil, allowAll) }},
		{"no identity", func() (*Replica, error) { return NewReplica("s", LWWMap, nil, c, nil, allowAll) }},
		{"no clock", func() (*Replica, error) { return NewReplica("s", LWWMap, id, nil, nil, allowAll) }},
		{"no authorizer", func() (*Replica, error) { return NewReplica("s", LWWMap, id, c, nil, nil) }},
		{"zero horizon", func() (*Replica, error) {
			return NewReplica("s", LWWMap, id, c, nil, allowAll, WithTombstoneHorizon(0))
		}},
		{"zero watch buffer", func() (*Replica, error) { return NewReplica("s", LWWMap, id, c, nil, allowAll, WithWatchBuffer(0)) }},
		{"nil transport", func() (*Replica, error) { return NewReplica("s", LWWMap, id, c, nil, allowAll, WithTransport(nil)) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if r, err := tc.make(); !errors.Is(err, ErrInvalid) {
				t.Errorf("NewReplica = %v, %v; want ErrInvalid", r, err)
			}
		})
	}
}

// TestConcurrentUse writes, merges, reads, watches and reconciles from
// several goroutines at once; run with -race.
func TestConcurrentUse(t *testing.T) {
	a := newReplica(t, replicaConfig{id: ident(t, 1), now: time.Now})
	b := newReplica(t, replicaConfig{id: ident(t, 2), now: time.Now})
	ctx, cancel := context.WithCancel(bg)
	defer cancel()
	changes := b.Watch(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range changes {
		}
	}()
	errs := make(chan error, 4)
	writer := func(from, to *Replica, prefix string) {
		for i := range 40 {
			d, err := from.Put(bg, fmt.Sprint(prefix, i%7), []byte{byte(i)})
			if err == nil {
				_, err = to.Apply(d.Origin, d)
			}
			if err != nil {
				errs <- err
				return
			}
		}
		errs <- nil
	}
	go writer(a, b, "a")
	go writer(b, a, "b")
	go func() {
		for range 20 {
			a.Snapshot()
			b.Get("a1")
			if _, err := a.CollectGarbage(); err != nil {
				errs <- err
				return
			}
		}
		errs <- nil
	}()
	go func() {
		for range 10 {
			digest, err := a.Digest()
			if err == nil {
				err = b.Missing(digest, 0, func(c []byte) error { _, _, err := a.ApplyChunk(c); return err })
			}
			if err != nil {
				errs <- err
				return
			}
		}
		errs <- nil
	}()
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	pull(t, a, b, 0)
	pull(t, b, a, 0)
	if !sameState(stateOf(a), stateOf(b)) {
		t.Error("diverged")
	}
	cancel()
	<-done
}
