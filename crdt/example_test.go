package crdt_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ztmesh/ztmesh/crdt"
	"github.com/ztmesh/ztmesh/did"
)

// Example replicates a map between two nodes: a write, its delta on the
// wire, the policy refusing a write to someone else's key, and
// anti-entropy repairing a lost broadcast.
func Example() {
	ctx := context.Background()
	alice, _ := did.IdentityFromSeed(bytes.Repeat([]byte{1}, 32))
	bob, _ := did.IdentityFromSeed(bytes.Repeat([]byte{2}, 32))

	// The node's policy (state_write): writers write keys under their DID.
	authorize := func(origin did.DID, state, key string) error {
		if !strings.HasPrefix(key, origin.String()+"/") {
			return fmt.Errorf("%s may only write keys under its own DID", origin)
		}
		return nil
	}
	open := func(id *did.Identity) *crdt.Replica {
		// A real node passes a store (crdt.OpenStore) instead of nil.
		r, err := crdt.NewReplica("positions", crdt.LWWMap, id, crdt.NewClock(nil, 0), nil, authorize)
		if err != nil {
			panic(err)
		}
		return r
	}
	a, b := open(alice), open(bob)
	key := alice.DID().String() + "/position"

	// Alice writes. Her node broadcasts the delta on the zone channel.
	delta, _ := a.Put(ctx, key, []byte(`{"lat":48.85,"lon":2.35}`))
	msg, _ := delta.Encode()

	// Bob's node receives it in a zone message whose authenticated origin
	// is Alice.
	d, _ := crdt.DecodeDelta(msg)
	changes, err := b.Apply(alice.DID(), d)
	fmt.Println(len(changes), string(changes[0].Value), err)

	// Bob may not write Alice's keys.
	_, err = b.Put(ctx, key, []byte(`{"lat":0,"lon":0}`))
	fmt.Println(errors.Is(err, crdt.ErrUnauthorized))

	// Alice deletes the key and Bob misses the broadcast. Anti-entropy:
	// Bob sends his digest, Alice answers with what he lacks.
	a.Delete(ctx, key)
	digest, _ := b.Digest()
	a.Missing(digest, 64<<10, func(chunk []byte) error {
		_, _, err := b.ApplyChunk(chunk)
		return err
	})
	_, ok := b.Get(key)
	fmt.Println(ok)

	// Output:
	// 1 {"lat":48.85,"lon":2.35} <nil>
	// true
	// false
}

// ExampleReplica_Remove shows the observed-remove rule: a remove takes out
// the adds its replica had seen, so an add it had not seen survives.
func ExampleReplica_Remove() {
	ctx := context.Background()
	alice, _ := did.IdentityFromSeed(bytes.Repeat([]byte{1}, 32))
	bob, _ := did.IdentityFromSeed(bytes.Repeat([]byte{2}, 32))
	allow := func(did.DID, string, string) error { return nil }
	a, _ := crdt.NewReplica("tasks", crdt.ORSet, alice, crdt.NewClock(nil, 0), nil, allow)
	b, _ := crdt.NewReplica("tasks", crdt.ORSet, bob, crdt.NewClock(nil, 0), nil, allow)

	add, _ := a.Add(ctx, "job-7")
	b.Apply(alice.DID(), add)

	remove, _ := b.Remove(ctx, "job-7") // Bob removes the add he saw...
	again, _ := a.Add(ctx, "job-7")     // ...while Alice adds job-7 again.
	a.Apply(bob.DID(), remove)
	b.Apply(alice.DID(), again)
	fmt.Println(a.Elements(), b.Elements())

	// Output:
	// [job-7] [job-7]
}
