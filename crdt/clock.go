package crdt

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/ztmesh/ztmesh/did"
)

// DefaultMaxDrift is how far in the future a remote timestamp may be before
// it is refused, unless NewClock is given another bound.
const DefaultMaxDrift = time.Minute

// MaxAdopt is how far past its own physical time a clock moves to follow a
// timestamp it observed. A timestamp up to the maximum drift ahead is
// accepted, but adopting all of it would let one member push every honest
// clock it reaches almost a full drift window ahead, so that their own
// later writes exceed the drift limit at peers whose clocks lag. Past
// MaxAdopt, a write made after observing a timestamp may be ordered before
// it; only a clock that runs more than MaxAdopt ahead of ours can see that.
const MaxAdopt = 5 * time.Second

// Timestamp is a hybrid logical clock reading of a writer. Timestamps are
// totally ordered by (Wall, Logical, Origin); two writers never produce the
// same timestamp, and one writer's clock never repeats (see Clock), so the
// order decides every conflict between writes.
type Timestamp struct {
	// Wall is the writer's HLC wall time in Unix nanoseconds: its physical
	// clock, or the greatest wall time it had observed if that was later.
	Wall int64
	// Logical orders writes within one Wall value.
	Logical uint32
	// Origin is the writer.
	Origin did.DID
}

// Compare returns -1, 0 or +1 as t is before, equal to or after u. Equal
// wall and logical parts are ordered by the origins' DID text, bytewise.
func (t Timestamp) Compare(u Timestamp) int {
	switch {
	case t.Wall != u.Wall:
		return cmpInt(t.Wall < u.Wall)
	case t.Logical != u.Logical:
		return cmpInt(t.Logical < u.Logical)
	case t.Origin == u.Origin:
		return 0
	}
	// Rare: two writers at the same wall nanosecond and counter. String()
	// encodes base58, so it is left for this path.
	return strings.Compare(t.Origin.String(), u.Origin.String())
}

func cmpInt(less bool) int {
	if less {
		return -1
	}
	return 1
}

// IsZero reports whether t is the zero Timestamp.
func (t Timestamp) IsZero() bool { return t == Timestamp{} }

// String formats t for logs: RFC 3339 wall time, +logical, @origin.
func (t Timestamp) String() string {
	return fmt.Sprintf("%s+%d@%s", time.Unix(0, t.Wall).UTC().Format(time.RFC3339Nano), t.Logical, t.Origin)
}

// Clock is a hybrid logical clock (Kulkarni et al., 2014) shared by the
// replicas of one node. Its readings are strictly increasing, stay close to
// the physical clock, and exceed every timestamp it has observed, so a write
// made after seeing another write is ordered after it even if the two
// nodes' physical clocks disagree.
//
// A Clock has no origin: Now returns a zero Origin and the replica fills
// in its own DID. It is safe for concurrent use.
type Clock struct {
	now      func() time.Time
	maxDrift time.Duration

	mu      sync.Mutex
	wall    int64
	logical uint32
}

// NewClock returns a clock reading physical time from now (nil means
// time.Now). maxDrift bounds how far in the future an observed timestamp
// may be (0 means DefaultMaxDrift): a node whose clock runs ahead would
// otherwise win every conflict for as long as it is ahead, and drag every
// other node's clock forward with it.
func NewClock(now func() time.Time, maxDrift time.Duration) *Clock {
	if now == nil {
		now = time.Now
	}
	if maxDrift <= 0 {
		maxDrift = DefaultMaxDrift
	}
	return &Clock{now: now, maxDrift: maxDrift}
}

// Now returns a timestamp greater than every one it returned or observed
// before. Its Origin is zero.
func (c *Clock) Now() Timestamp {
	pt := c.now().UnixNano()
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case pt > c.wall:
		c.wall, c.logical = pt, 0
	case c.logical == math.MaxUint32:
		// The counter is spent: move wall time one nanosecond ahead of
		// the physical clock rather than wrap.
		c.wall, c.logical = c.wall+1, 0
	default:
		c.logical++
	}
	return Timestamp{Wall: c.wall, Logical: c.logical}
}

// Observe merges a remote timestamp into the clock, so that later readings
// are after it if it is at most MaxAdopt ahead of the physical clock; one
// further ahead moves the clock only MaxAdopt ahead. A timestamp more than
// the maximum drift ahead of the physical clock is refused with
// ErrClockDrift and not observed.
func (c *Clock) Observe(ts Timestamp) error {
	if err := c.checkDrift(ts, c.now()); err != nil {
		return err
	}
	c.observe(ts)
	return nil
}

func (c *Clock) checkDrift(ts Timestamp, now time.Time) error {
	if limit := now.Add(c.maxDrift).UnixNano(); ts.Wall > limit {
		return fmt.Errorf("%w: %s is %s ahead of this node's clock (max drift %s); check the writer's clock",
			ErrClockDrift, ts, time.Duration(ts.Wall-now.UnixNano()).Round(time.Millisecond), c.maxDrift)
	}
	return nil
}

// observe merges ts without the drift check: for timestamps already
// accepted, such as those loaded from the store. The clock follows ts only
// up to MaxAdopt past the physical time.
func (c *Clock) observe(ts Timestamp) {
	limit := c.now().Add(MaxAdopt).UnixNano()
	c.mu.Lock()
	defer c.mu.Unlock()
	if ts.Wall > limit {
		ts = Timestamp{Wall: limit}
	}
	c.advanceLocked(ts)
}

// observeOwn merges a timestamp this node wrote, loaded from the store, in
// full: its later readings are after everything it wrote, even if its
// physical clock went back.
func (c *Clock) observeOwn(ts Timestamp) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.advanceLocked(ts)
}

func (c *Clock) advanceLocked(ts Timestamp) {
	if ts.Wall > c.wall || (ts.Wall == c.wall && ts.Logical > c.logical) {
		c.wall, c.logical = ts.Wall, ts.Logical
	}
}
