package crdt

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func openStore(t *testing.T, path string) *Store {
	t.Helper()
	s, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestStoreKeepsAcknowledgedWrites copies the store file while the store is
// open and the replicas are live — what a SIGKILL leaves on disk — and
// checks that the copy holds every write that a call had returned for.
func TestStoreKeepsAcknowledgedWrites(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	ft := newFakeTime(t0)
	store := openStore(t, path)
	m := newReplica(t, replicaConfig{id: ident(t, 1), now: ft.Now, store: store})
	s := newReplica(t, replicaConfig{name: "tasks", kind: ORSet, id: ident(t, 1), now: ft.Now, store: store})
	remote := newReplica(t, replicaConfig{id: ident(t, 2), now: ft.Now})

	for i := range 20 {
		must(m.Put(bg, fmt.Sprint("k", i), []byte(fmt.Sprint("v", i))))
	}
	must(m.Delete(bg, "k3"))
	d := must(remote.Put(bg, "remote", []byte("r")))
	if _, err := m.Apply(d.Origin, roundTrip(t, d)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.ApplyChunk(chunkOf(t, remote)); err != nil {
		t.Fatal(err)
	}
	must(s.Add(bg, "x"))
	must(s.Add(bg, "y"))
	must(s.Remove(bg, "y"))
	wantMap, wantSet := stateOf(m), stateOf(s)

	crashed := filepath.Join(dir, "crashed.db")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(crashed, data, 0o600); err != nil {
		t.Fatal(err)
	}

	// A clock that went back an hour must still write after what it wrote.
	ft2 := newFakeTime(t0.Add(-time.Hour))
	store2 := openStore(t, crashed)
	m2 := newReplica(t, replicaConfig{id: ident(t, 1), now: ft2.Now, store: store2})
	s2 := newReplica(t, replicaConfig{name: "tasks", kind: ORSet, id: ident(t, 1), now: ft2.Now, store: store2})
	if got := stateOf(m2); !sameState(got, wantMap) {
		t.Errorf("map after restart:\n%s\nwant\n%s", describe(got), describe(wantMap))
	}
	if got := stateOf(s2); !sameState(got, wantSet) {
		t.Errorf("set after restart:\n%s\nwant\n%s", describe(got), describe(wantSet))
	}
	if v, ok := m2.Get("k7"); !ok || string(v) != "v7" {
		t.Errorf("k7 = %q, %v", v, ok)
	}
	d2 := must(m2.Put(bg, "k7", []byte("after restart")))
	for _, e := range wantMap {
		if d2.Entries[0].TS.Compare(e.TS) <= 0 {
			t.Errorf("write after restart at %v is not after the stored %v", d2.Entries[0].TS, e.TS)
		}
	}
	if v, _ := m2.Get("k7"); string(v) != "after restart" {
		t.Errorf("write after restart lost to an older one: %q", v)
	}

	// Collection and reopening after a clean close.
	if err := m2.Close(); err != nil {
		t.Fatal(err)
	}
	m3 := newReplica(t, replicaConfig{id: ident(t, 1), now: ft2.Now, store: store2})
	if v, _ := m3.Get("k7"); string(v) != "after restart" {
		t.Errorf("after reopening: %q", v)
	}
	ft2.Advance(48 * time.Hour)
	if n, err := m3.CollectGarbage(); n != 1 || err != nil {
		t.Fatalf("collected %d, %v", n, err)
	}
	m3.Close()
	m4 := newReplica(t, replicaConfig{id: ident(t, 1), now: ft2.Now, store: store2})
	if len(stateOf(m4)) != len(wantMap)-1 {
		t.Errorf("collected tombstone came back from the store:\n%s", describe(stateOf(m4)))
	}
}

// chunkOf returns r's whole state as one chunk.
func chunkOf(t *testing.T, r *Replica) []byte {
	t.Helper()
	empty := newReplica(t, replicaConfig{name: r.name, kind: r.kind, id: ident(t, 9)})
	var out []byte
	if err := r.Missing(must(empty.Digest()), 0, func(c []byte) error {
		if out != nil {
			return errors.New("more than one chunk")
		}
		out = c
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestStoreFileMode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	s := openStore(t, path)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("store created with mode %04o, want 0600", fi.Mode().Perm())
	}
	s.Close()

	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenStore(path); !errors.Is(err, ErrStorePermissions) {
		t.Errorf("opening a 0644 store: %v, want ErrStorePermissions", err)
	}
}

func TestStoreRejects(t *testing.T) {
	store := openStore(t, filepath.Join(t.TempDir(), "state.db"))
	id, c := ident(t, 1), NewClock(nil, 0)
	r, err := NewReplica("s", LWWMap, id, c, store, allowAll)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewReplica("s", LWWMap, id, c, store, allowAll); !errors.Is(err, ErrInUse) {
		t.Errorf("second replica of an open state: %v, want ErrInUse", err)
	}
	r.Close()
	if _, err := NewReplica("s", ORSet, id, c, store, allowAll); !errors.Is(err, ErrWrongKind) {
		t.Errorf("reopening a map as a set: %v, want ErrWrongKind", err)
	}
	r, err = NewReplica("s", LWWMap, id, c, store, allowAll)
	if err != nil {
		t.Fatalf("reopening after a refused open: %v", err)
	}
	r.Close()
}
