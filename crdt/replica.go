package crdt

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ztmesh/ztmesh/did"
)

// DefaultTombstoneHorizon is how long a replica keeps a tombstone (an LWW
// delete, an OR-set remove) unless WithTombstoneHorizon says otherwise.
const DefaultTombstoneHorizon = 24 * time.Hour

// DefaultWatchBuffer is the capacity of a Watch channel unless
// WithWatchBuffer says otherwise.
const DefaultWatchBuffer = 256

// Authorizer decides whether origin may write key (an LWW key or an OR-set
// element) of state. It returns nil to allow. The node implements it with
// the policy's state_write action. A replica asks it for its own writes and
// for every entry it merges from others, so a write the policy refuses is
// refused by every node, not only by the writer's. It is called without
// the replica's lock held, possibly from several goroutines at once.
type Authorizer func(origin did.DID, state, key string) error

// Transport broadcasts an encoded delta to the other replicas of state.
// The node implements it over the state's zone channel, where the delta
// travels sealed and signed by its origin like every zone message. Loss,
// duplication and reordering are harmless: anti-entropy repairs them.
// Broadcast is called after the write is committed, without the replica's
// lock held, possibly from several goroutines at once.
type Transport interface {
	Broadcast(ctx context.Context, state string, delta []byte) error
}

// Change tells a watcher that the visible state changed: an LWW key got a
// value or was deleted, an element entered or left an OR-set.
type Change struct {
	State string
	// Key is the LWW key or the OR-set element.
	Key string
	// Value is the key's new value (LWW), nil if deleted or in an OR-set.
	Value []byte
	// Deleted: the key was deleted, or the element left the set.
	Deleted bool
	// TS is the timestamp of the write that made the change; TS.Origin is
	// its writer.
	TS Timestamp
}

// Option configures a Replica.
type Option func(*options) error

type options struct {
	transport   Transport
	horizon     time.Duration
	watchBuffer int
}

// WithTransport makes local writes broadcast their delta through t after
// committing it. Without a transport the caller broadcasts the returned
// delta itself.
func WithTransport(t Transport) Option {
	return func(o *options) error {
		if t == nil {
			return fmt.Errorf("%w: nil transport", ErrInvalid)
		}
		o.transport = t
		return nil
	}
}

// WithTombstoneHorizon sets how long tombstones are kept (default
// DefaultTombstoneHorizon). See CollectGarbage for what it trades.
func WithTombstoneHorizon(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("%w: tombstone horizon %s must be positive", ErrInvalid, d)
		}
		o.horizon = d
		return nil
	}
}

// WithWatchBuffer sets the capacity of each Watch channel (default
// DefaultWatchBuffer).
func WithWatchBuffer(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("%w: watch buffer %d must be at least 1", ErrInvalid, n)
		}
		o.watchBuffer = n
		return nil
	}
}

// Replica is this node's copy of one named state. Local writes return the
// delta to broadcast; remote deltas and anti-entropy chunks merge in. Every
// method is safe for concurrent use.
type Replica struct {
	name    string
	kind    Kind
	self    Signer
	selfDID did.DID
	clock   *Clock
	store   *Store
	auth    Authorizer
	opts    options

	dropped atomic.Uint64

	mu     sync.Mutex
	closed bool
	// slots maps a key to the entries kept for it, sorted by Dot: one for
	// an LWW key, one per dot for an OR-set element. A slice is never
	// modified in place once stored (copy on write), so entries can be
	// read after the lock is released.
	slots    map[string][]Entry
	watchers map[*watcher]struct{}
}

type watcher struct{ ch chan Change }

// NewReplica opens the state name of the given kind for the node whose
// identity is self. clock is the node's hybrid logical clock. store keeps
// the state across restarts (nil keeps it in memory only); the replica
// loads what the store holds for name. auth authorizes every write, local
// or remote. Only one replica of a name may be open on a store at a time.
func NewReplica(name string, kind Kind, self Signer, clock *Clock, store *Store, auth Authorizer, opts ...Option) (*Replica, error) {
	if err := checkStateName(name); err != nil {
		return nil, err
	}
	switch {
	case !kind.valid():
		return nil, fmt.Errorf("%w: kind %q (want %q or %q)", ErrInvalid, kind, LWWMap, ORSet)
	case self == nil || self.DID().IsZero():
		return nil, fmt.Errorf("%w: no identity", ErrInvalid)
	case clock == nil:
		return nil, fmt.Errorf("%w: no clock", ErrInvalid)
	case auth == nil:
		return nil, fmt.Errorf("%w: no authorizer", ErrInvalid)
	}
	r := &Replica{
		name: name, kind: kind, self: self, selfDID: self.DID(), clock: clock, store: store, auth: auth,
		opts:     options{horizon: DefaultTombstoneHorizon, watchBuffer: DefaultWatchBuffer},
		slots:    make(map[string][]Entry),
		watchers: make(map[*watcher]struct{}),
	}
	for _, o := range opts {
		if err := o(&r.opts); err != nil {
			return nil, err
		}
	}
	if store != nil {
		entries, err := store.load(name, kind)
		if err != nil {
			return nil, err
		}
		for i := range entries {
			// No cutoff: a tombstone past the horizon goes at the next
			// CollectGarbage, like any other.
			r.slots[entries[i].Key], _ = mergeSlot(kind, r.slots[entries[i].Key], &entries[i], minCutoff)
			// Our own writes are followed in full: a clock that went
			// back must still write after what it wrote. Others' only
			// up to MaxAdopt, as when they arrived.
			if entries[i].TS.Origin == r.selfDID {
				clock.observeOwn(entries[i].TS)
			} else {
				clock.observe(entries[i].TS)
			}
		}
	}
	return r, nil
}

// Name returns the state's name.
func (r *Replica) Name() string { return r.name }

// Kind returns the state's kind.
func (r *Replica) Kind() Kind { return r.kind }

// Close closes the watch channels and releases the state on the store.
// The replica cannot be used afterwards; the store stays open.
func (r *Replica) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	for w := range r.watchers {
		close(w.ch)
		delete(r.watchers, w)
	}
	if r.store != nil {
		r.store.release(r.name)
	}
	return nil
}

// Put sets key to value in an LWW map. The write is committed to the store
// before Put returns; the returned delta is what to broadcast (and, with
// WithTransport, was broadcast: if that failed, Put returns the delta and
// an error wrapping ErrBroadcast, and the write stays committed).
func (r *Replica) Put(ctx context.Context, key string, value []byte) (*Delta, error) {
	if len(value) > MaxValueSize {
		return nil, fmt.Errorf("%w: value of %d bytes for key %q, limit %d", ErrTooLarge, len(value), key, MaxValueSize)
	}
	value = bytes.Clone(value)
	return r.write(ctx, LWWMap, key, func(ts Timestamp, _ []Entry) []Entry {
		return []Entry{{Key: key, Value: value, TS: ts}}
	})
}

// Delete deletes key from an LWW map by writing a tombstone, even if the
// key is absent here: a concurrent earlier write elsewhere loses to it.
// It commits and broadcasts like Put.
func (r *Replica) Delete(ctx context.Context, key string) (*Delta, error) {
	return r.write(ctx, LWWMap, key, func(ts Timestamp, _ []Entry) []Entry {
		return []Entry{{Key: key, Deleted: true, TS: ts}}
	})
}

// Add adds elem to an OR-set. The delta holds the new add and removes of
// the adds of elem this replica has seen, which it replaces. It commits
// and broadcasts like Put.
func (r *Replica) Add(ctx context.Context, elem string) (*Delta, error) {
	return r.write(ctx, ORSet, elem, func(ts Timestamp, slots []Entry) []Entry {
		return append(removes(elem, ts, slots), Entry{Key: elem, Dot: ts, TS: ts})
	})
}

// Remove removes elem from an OR-set: the adds of elem this replica has
// seen. An add elsewhere that this replica has not seen survives, as the
// OR-set promises. If elem is not in the set here there is nothing to
// remove: Remove returns a nil delta and no error. It commits and
// broadcasts like Put.
func (r *Replica) Remove(ctx context.Context, elem string) (*Delta, error) {
	return r.write(ctx, ORSet, elem, func(ts Timestamp, slots []Entry) []Entry {
		return removes(elem, ts, slots)
	})
}

// removes returns a remove, at ts, of every add in slots not yet removed.
func removes(elem string, ts Timestamp, slots []Entry) []Entry {
	var out []Entry
	for i := range slots {
		if !slots[i].Deleted {
			out = append(out, Entry{Key: elem, Deleted: true, Dot: slots[i].Dot, TS: ts})
		}
	}
	return out
}

// write makes, signs, commits and broadcasts a local write of key.
func (r *Replica) write(ctx context.Context, want Kind, key string, build func(Timestamp, []Entry) []Entry) (*Delta, error) {
	if r.kind != want {
		return nil, fmt.Errorf("%w: state %q is an %s", ErrWrongKind, r.name, r.kind)
	}
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if err := r.auth(r.selfDID, r.name, key); err != nil {
		return nil, fmt.Errorf("%w: %s may not write %q in state %q: %w", ErrUnauthorized, r.selfDID, key, r.name, err)
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ErrClosed
	}
	ts := r.clock.Now()
	ts.Origin = r.selfDID
	entries := build(ts, r.slots[key])
	if len(entries) == 0 {
		r.mu.Unlock()
		return nil, nil
	}
	if len(entries) > MaxEntries {
		r.mu.Unlock()
		return nil, fmt.Errorf("%w: %q has %d adds to replace, limit %d", ErrTooLarge, key, len(entries)-1, MaxEntries-1)
	}
	for i := range entries {
		sign(r.self, r.name, r.kind, &entries[i])
	}
	_, err := r.commitLocked(entries, r.cutoff(r.clock.now()))
	r.mu.Unlock()
	if err != nil {
		return nil, err
	}
	d := &Delta{State: r.name, Kind: r.kind, Origin: r.selfDID, Entries: entries}
	if r.opts.transport != nil {
		b, err := d.Encode()
		if err == nil {
			err = r.opts.transport.Broadcast(ctx, r.name, b)
		}
		if err != nil {
			return d, fmt.Errorf("%w: state %q key %q: %w (the write is committed; anti-entropy will deliver it)", ErrBroadcast, r.name, key, err)
		}
	}
	return d, nil
}

// Apply merges a delta received from the network. from is the origin the
// zone envelope authenticated; it must be the delta's origin. Apply checks,
// in order: the state and kind, the attribution of every entry to that
// origin, timestamps no further ahead than the clock's maximum drift, every
// entry's signature, and the Authorizer for every entry. If any check
// fails the whole delta is refused and nothing changes. Otherwise the
// delta is merged and committed before Apply returns the visible changes
// (also sent to watchers). Applying a delta twice, or an old one, is
// harmless.
func (r *Replica) Apply(from did.DID, d *Delta) ([]Change, error) {
	if d == nil {
		return nil, fmt.Errorf("%w: nil delta", ErrMalformed)
	}
	if d.State != r.name || d.Kind != r.kind {
		return nil, fmt.Errorf("%w: delta for %s state %q applied to %s state %q", ErrWrongState, d.Kind, d.State, r.kind, r.name)
	}
	if d.Origin != from {
		return nil, fmt.Errorf("%w: delta from %s claims origin %s", ErrAttribution, from, d.Origin)
	}
	if err := d.validate(); err != nil {
		return nil, fmt.Errorf("delta from %s: %w", from, err)
	}
	now := r.clock.now()
	authorized := make(map[authKey]bool, len(d.Entries))
	for i := range d.Entries {
		e := &d.Entries[i]
		if err := r.check(e, now, authorized); err != nil {
			return nil, fmt.Errorf("delta from %s: %w", from, err)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	changes, err := r.commitLocked(d.Entries, r.cutoff(now))
	if err != nil {
		return nil, err
	}
	for i := range d.Entries {
		r.clock.observe(d.Entries[i].TS)
	}
	return changes, nil
}

// authKey is a writer and a key it was authorized to write.
type authKey struct {
	origin did.DID
	key    string
}

// check runs the trust checks on one syntactically valid entry: drift,
// signature, authorization. authorized remembers the writes already
// authorized, to ask the Authorizer once per writer and key.
func (r *Replica) check(e *Entry, now time.Time, authorized map[authKey]bool) error {
	if err := r.clock.checkDrift(e.TS, now); err != nil {
		return fmt.Errorf("key %q: %w", e.Key, err)
	}
	if err := verify(r.name, r.kind, e); err != nil {
		return err
	}
	ak := authKey{e.TS.Origin, e.Key}
	if authorized[ak] {
		return nil
	}
	if err := r.auth(e.TS.Origin, r.name, e.Key); err != nil {
		return fmt.Errorf("%w: %s may not write %q in state %q: %w", ErrUnauthorized, e.TS.Origin, e.Key, r.name, err)
	}
	authorized[ak] = true
	return nil
}

// minCutoff makes no tombstone expire.
const minCutoff = -1 << 63

// cutoff returns the wall time before which tombstones have expired.
func (r *Replica) cutoff(now time.Time) int64 { return now.Add(-r.opts.horizon).UnixNano() }

func expired(e *Entry, cutoff int64) bool { return e.Deleted && e.TS.Wall < cutoff }

// findSlot returns the index of the slot of e in slots (same Dot; an LWW
// key has one slot, with a zero Dot), or -1.
func findSlot(slots []Entry, e *Entry) int {
	for i := range slots {
		if slots[i].Dot == e.Dot {
			return i
		}
	}
	return -1
}

// wins reports whether merging e into slots would change them.
func wins(k Kind, slots []Entry, e *Entry, cutoff int64) bool {
	i := findSlot(slots, e)
	if i < 0 {
		return !expired(e, cutoff)
	}
	return compareEntries(k, e, &slots[i]) > 0
}

// mergeSlot merges e into the slots of its key and reports whether they
// changed. It never modifies slots: a change returns a new slice holding a
// copy of e. A tombstone past the horizon that wins removes the slot
// instead of being kept (it would be collected anyway).
func mergeSlot(k Kind, slots []Entry, e *Entry, cutoff int64) ([]Entry, bool) {
	if !wins(k, slots, e, cutoff) {
		return slots, false
	}
	own := *e
	own.Value, own.Sig = bytes.Clone(e.Value), bytes.Clone(e.Sig)
	i := findSlot(slots, e)
	switch {
	case i >= 0 && expired(e, cutoff):
		return slices.Delete(slices.Clone(slots), i, i+1), true
	case i >= 0:
		out := slices.Clone(slots)
		out[i] = own
		return out, true
	}
	at := sort.Search(len(slots), func(j int) bool { return slots[j].Dot.Compare(e.Dot) > 0 })
	return slices.Insert(slices.Clone(slots), at, own), true
}

// visible returns the value and presence of a key: an LWW key is present
// unless its entry is a tombstone; an element while one add is not removed.
func visible(slots []Entry) ([]byte, bool) {
	for i := range slots {
		if !slots[i].Deleted {
			return slots[i].Value, true
		}
	}
	return nil, false
}

// commitLocked merges entries, commits what changed to the store, then to
// memory, and returns and publishes the visible changes. On a store error
// nothing changes. r.mu must be held.
func (r *Replica) commitLocked(entries []Entry, cutoff int64) ([]Change, error) {
	type touched struct {
		key           string
		before, after []Entry
		cause         *Entry
	}
	var keys []touched
	index := make(map[string]int)
	for i := range entries {
		e := &entries[i]
		j, ok := index[e.Key]
		if !ok {
			j = len(keys)
			index[e.Key] = j
			cur := r.slots[e.Key]
			keys = append(keys, touched{key: e.Key, before: cur, after: cur})
		}
		if next, changed := mergeSlot(r.kind, keys[j].after, e, cutoff); changed {
			keys[j].after, keys[j].cause = next, e
		}
	}
	if r.store != nil {
		var puts, dels []Entry
		for _, t := range keys {
			if t.cause == nil {
				continue
			}
			for i := range t.after {
				if b := findSlot(t.before, &t.after[i]); b < 0 || compareEntries(r.kind, &t.after[i], &t.before[b]) != 0 {
					puts = append(puts, t.after[i])
				}
			}
			for i := range t.before {
				if findSlot(t.after, &t.before[i]) < 0 {
					dels = append(dels, t.before[i])
				}
			}
		}
		if err := r.store.commit(r.name, r.kind, puts, dels); err != nil {
			return nil, fmt.Errorf("commit state %q: %w", r.name, err)
		}
	}
	var changes []Change
	for _, t := range keys {
		if t.cause == nil {
			continue
		}
		if len(t.after) == 0 {
			delete(r.slots, t.key)
		} else {
			r.slots[t.key] = t.after
		}
		_, was := visible(t.before)
		v, is := visible(t.after)
		if !was && !is || r.kind == ORSet && was == is {
			continue
		}
		changes = append(changes, Change{State: r.name, Key: t.key, Value: bytes.Clone(v), Deleted: !is, TS: t.cause.TS})
	}
	r.notifyLocked(changes)
	return changes, nil
}

// Get returns the value of key in an LWW map and whether it is present.
// For an OR-set it reports whether key is an element, with a nil value.
func (r *Replica) Get(key string) ([]byte, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := visible(r.slots[key])
	return bytes.Clone(v), ok
}

// Contains reports whether elem is in an OR-set (or key present in an LWW
// map).
func (r *Replica) Contains(elem string) bool {
	_, ok := r.Get(elem)
	return ok
}

// Elements returns the elements of an OR-set (the present keys of an LWW
// map), sorted.
func (r *Replica) Elements() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for k, slots := range r.slots {
		if _, ok := visible(slots); ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// Snapshot returns the visible state: every present key of an LWW map
// with a copy of its value, or every element of an OR-set mapped to nil.
func (r *Replica) Snapshot() map[string][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string][]byte)
	for k, slots := range r.slots {
		if v, ok := visible(slots); ok {
			out[k] = bytes.Clone(v)
		}
	}
	return out
}

// Watch returns a channel of the visible changes from now on, local and
// remote, in commit order. It is closed when ctx is done or the replica is
// closed. The channel is buffered (WithWatchBuffer); a watcher that falls
// behind does not slow merges down: changes that do not fit are dropped
// and counted in DroppedChanges, and the watcher should then re-read
// Snapshot.
func (r *Replica) Watch(ctx context.Context) <-chan Change {
	w := &watcher{ch: make(chan Change, r.opts.watchBuffer)}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		close(w.ch)
		return w.ch
	}
	r.watchers[w] = struct{}{}
	context.AfterFunc(ctx, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if _, ok := r.watchers[w]; ok {
			delete(r.watchers, w)
			close(w.ch)
		}
	})
	return w.ch
}

// DroppedChanges returns how many changes watchers missed because their
// channel was full, over the replica's life.
func (r *Replica) DroppedChanges() uint64 { return r.dropped.Load() }

func (r *Replica) notifyLocked(changes []Change) {
	for _, c := range changes {
		for w := range r.watchers {
			select {
			case w.ch <- c:
			default:
				r.dropped.Add(1)
			}
		}
	}
}

// CollectGarbage drops the tombstones (LWW deletes, OR-set removes) older
// than the tombstone horizon and returns how many it dropped. Run it
// periodically, e.g. hourly.
//
// The horizon is a promise the mesh must keep: a replica that was cut off
// for longer than the horizon, and still holds a write that a collected
// tombstone had overridden, brings that write back when it reconciles,
// and the key or element reappears everywhere. Choose a horizon longer
// than any partition you expect (the default is 24 hours), and have nodes
// that were away longer start from a fresh store.
func (r *Replica) CollectGarbage() (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return 0, ErrClosed
	}
	cutoff := r.cutoff(r.clock.now())
	var dels []Entry
	for _, slots := range r.slots {
		for i := range slots {
			if expired(&slots[i], cutoff) {
				dels = append(dels, slots[i])
			}
		}
	}
	if len(dels) == 0 {
		return 0, nil
	}
	if r.store != nil {
		if err := r.store.commit(r.name, r.kind, nil, dels); err != nil {
			return 0, fmt.Errorf("collect garbage in state %q: %w", r.name, err)
		}
	}
	for i := range dels {
		slots := r.slots[dels[i].Key]
		j := findSlot(slots, &dels[i])
		if rest := slices.Delete(slices.Clone(slots), j, j+1); len(rest) == 0 {
			delete(r.slots, dels[i].Key)
		} else {
			r.slots[dels[i].Key] = rest
		}
	}
	return len(dels), nil
}
