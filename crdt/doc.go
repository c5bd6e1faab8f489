// Package crdt keeps state that the members of a zone share and write
// concurrently — positions, statuses, task lists — and makes every copy
// converge without coordination. It is a library: it holds the data types,
// their wire formats, persistence and the anti-entropy logic, and leaves
// the network to the node.
//
// # Data types
//
// A [Replica] is one node's copy of one named state, of one [Kind]:
//
//   - [LWWMap], a last-writer-wins map. Each write carries a hybrid
//     logical clock [Timestamp] (wall time, counter, writer's DID); the
//     greatest wins, ties between writers are broken by DID. A delete is
//     a tombstone that wins like a write.
//   - [ORSet], an observed-remove set. Each add is a "dot" (the add's
//     timestamp); a remove takes out the dots its replica had seen, so an
//     add made concurrently elsewhere survives. An add replaces the dots
//     of the element it has seen, so an element carries one dot per
//     concurrent adder, not one per add.
//
// Both are one structure underneath: a set of [Entry] values in slots (a
// key; an element and a dot), each slot keeping the greatest entry under
// a total order. Merging is taking the maximum per slot, which is
// commutative, associative and idempotent: deltas may arrive late, twice,
// or in any order.
//
// # Writes and deltas
//
// A local write ([Replica.Put], [Replica.Delete], [Replica.Add],
// [Replica.Remove]) is authorized, timestamped, signed, committed to the
// [Store], and returned as a small [Delta] to broadcast (or broadcast
// through a [Transport] given with [WithTransport]). A replica that
// receives a delta calls [DecodeDelta] and [Replica.Apply], which refuses
// the whole delta unless all of this holds:
//
//   - the delta's origin is the sender the zone envelope authenticated
//     (Apply's from argument), and every entry was written by it;
//   - no timestamp is further ahead of the local clock than its maximum
//     drift (default one minute), so a node with a wrong clock cannot win
//     every conflict;
//   - every entry's signature verifies with its writer's key;
//   - the [Authorizer] lets the writer write every key: the node asks the
//     policy (action state_write, with the state and key), on every node
//     that merges, not only at the writer.
//
// # What the package does not do
//
// It opens no connection and imports no libp2p: deltas travel on the
// node's zone channel, sealed and signed by the zone envelope like every
// zone message, and anti-entropy runs over a stream the node opens and
// protects. It does not decide policy; the node's Authorizer does.
//
// It does sign, with the writer's identity ([Signer], a *did.Identity,
// context [EntryContext]): each entry, not each delta. Anti-entropy relays
// entries of many writers, and without a signature per entry any member
// could relay a forged write attributed to another; with it, a relayed
// entry is checked like a broadcast one. Verification dominates the cost
// of merging (see BenchmarkMergeDeltas).
//
// Authorization is decided when an entry is merged, under the policy in
// force on the merging node at that moment. Convergence needs every node
// to decide alike: if the policy changes so that a writer loses a right,
// nodes that merged its entries before keep them, and nodes that had not
// refuse them, until an authorized write overrides the key.
//
// # Anti-entropy
//
// Broadcasts get lost, and nodes are away. To reconcile, one node sends
// its [Replica.Digest], the peer answers with [Replica.Missing], and the
// first applies the chunks with [Replica.ApplyChunk]; run it both ways when
// a node joins, rejoins, or sees a partition heal, and now and then.
//
// The digest is not a version vector. It hashes the state itself: entries
// are grouped into 2^bits buckets by a hash of their key, and each
// bucket's hash covers every entry in it. The peer computes the same
// buckets and sends every entry of every bucket whose hash differs. Lost,
// duplicated or reordered broadcasts cannot make the digest claim more
// than the replica holds, which a per-writer "latest timestamp seen"
// would (a replica that got a writer's second write but not its first
// would claim both), and overwritten or collected entries leave no gaps
// to track. After one exchange the requester has every entry the peer
// had; after exchanges both ways the two are equal. Chunks are bounded
// (MaxChunkSize, or less) and each relayed entry is checked on its own.
// The price is that a differing bucket is sent whole: about four entries
// per differing key for states up to 16k entries.
//
// # Persistence
//
// [OpenStore] opens a bbolt file (created 0600; a group- or
// world-accessible file is refused). Every write and every merge is
// committed, with an fsync, before the call returns, so a node killed at
// any moment restarts with every write it acknowledged; [NewReplica]
// loads the state and moves the clock past every stored timestamp.
//
// # Tombstones
//
// [Replica.CollectGarbage] drops tombstones older than the horizon
// (default 24 hours, [WithTombstoneHorizon]). The horizon is a promise:
// a replica that was away longer than the horizon, and still holds a
// write that a collected tombstone had overridden, brings that write
// back when it reconciles — a deleted key or removed element reappears.
// Pick a horizon longer than the partitions you expect, and start a node
// that was away longer from an empty store.
//
// # Watching
//
// [Replica.Watch] streams the visible changes. A watcher never slows
// merges down: its channel is bounded, and when it is full changes are
// dropped and counted ([Replica.DroppedChanges]); re-read
// [Replica.Snapshot] then.
//
// The wire formats, with examples, are in docs/CRDT.md.
package crdt
