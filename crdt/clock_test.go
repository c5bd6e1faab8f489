package crdt

import (
	"errors"
	"math"
	"testing"
	"time"
)

func TestClockIsMonotonic(t *testing.T) {
	ft := newFakeTime(t0)
	c := NewClock(ft.Now, 0)
	prev := c.Now()
	if prev.Wall != t0.UnixNano() || prev.Logical != 0 {
		t.Fatalf("first reading %v, want the physical time", prev)
	}
	steps := []time.Duration{0, 0, time.Millisecond, -time.Hour, 0, 2 * time.Hour}
	for i, d := range steps {
		ft.Advance(d)
		ts := c.Now()
		if ts.Compare(prev) <= 0 {
			t.Fatalf("step %d (%v): %v is not after %v", i, d, ts, prev)
		}
		prev = ts
	}
	if prev.Wall != ft.Now().UnixNano() || prev.Logical != 0 {
		t.Errorf("after the physical clock passed the HLC, reading %v, want the physical time", prev)
	}
}

func TestClockObserve(t *testing.T) {
	ft := newFakeTime(t0)
	c := NewClock(ft.Now, time.Minute)
	remote := Timestamp{Wall: t0.Add(3 * time.Second).UnixNano(), Logical: 7, Origin: ident(t, 2).DID()}
	if err := c.Observe(remote); err != nil {
		t.Fatal(err)
	}
	if ts := c.Now(); ts.Wall != remote.Wall || ts.Logical != 8 {
		t.Errorf("after observing %v, Now = %v, want the same wall and logical 8", remote, ts)
	}

	ahead := Timestamp{Wall: t0.Add(61 * time.Second).UnixNano(), Origin: ident(t, 2).DID()}
	if err := c.Observe(ahead); !errors.Is(err, ErrClockDrift) {
		t.Errorf("observing a timestamp 61s ahead with a 1m drift: err = %v, want ErrClockDrift", err)
	}
	if ts := c.Now(); ts.Wall >= ahead.Wall {
		t.Errorf("a refused timestamp moved the clock to %v", ts)
	}

	// A spent counter moves wall time on rather than wrapping.
	c.observe(Timestamp{Wall: t0.Add(4 * time.Second).UnixNano(), Logical: math.MaxUint32})
	if ts := c.Now(); ts.Wall != t0.Add(4*time.Second).UnixNano()+1 || ts.Logical != 0 {
		t.Errorf("after logical MaxUint32, Now = %+v", ts)
	}
}

func TestTimestampOrder(t *testing.T) {
	a, b := ident(t, 1).DID(), ident(t, 2).DID()
	lo, hi := a, b
	if a.String() > b.String() {
		lo, hi = b, a
	}
	ordered := []Timestamp{
		{Wall: 1, Logical: 0, Origin: hi},
		{Wall: 1, Logical: 1, Origin: lo},
		{Wall: 1, Logical: 1, Origin: hi},
		{Wall: 2, Logical: 0, Origin: lo},
	}
	for i := range ordered {
		for j := range ordered {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := ordered[i].Compare(ordered[j]); got != want {
				t.Errorf("%v.Compare(%v) = %d, want %d", ordered[i], ordered[j], got, want)
			}
		}
	}
}

// TestObservedFutureDoesNotDragClock: a member writes with a timestamp just
// inside the drift window (59 s ahead). The receiver accepts the write, but
// moves its own clock only MaxAdopt past its physical time, so its next
// writes are still accepted by a peer whose clock lags 10 s behind (they
// would be 69 s ahead there, past the drift limit, had it adopted all of it).
func TestObservedFutureDoesNotDragClock(t *testing.T) {
	honest, lagging := newFakeTime(t0), newFakeTime(t0.Add(-10*time.Second))
	a, b := NewClock(honest.Now, time.Minute), NewClock(lagging.Now, time.Minute)
	pushed := Timestamp{Wall: t0.Add(59 * time.Second).UnixNano(), Logical: 3, Origin: ident(t, 9).DID()}
	if err := a.Observe(pushed); err != nil {
		t.Fatalf("a timestamp inside the drift window refused: %v", err)
	}
	next := a.Now()
	next.Origin = ident(t, 1).DID()
	if ahead := time.Duration(next.Wall - t0.UnixNano()); ahead > MaxAdopt {
		t.Errorf("after observing a timestamp 59 s ahead, the clock reads %s ahead of physical time; want at most %s", ahead, MaxAdopt)
	}
	if err := b.Observe(next); err != nil {
		t.Errorf("the honest node's next write is refused by a peer lagging 10 s: %v", err)
	}
	// A store holding such a timestamp does not drag the clock either.
	c := NewClock(honest.Now, time.Minute)
	c.observe(pushed)
	if ts := c.Now(); time.Duration(ts.Wall-t0.UnixNano()) > MaxAdopt {
		t.Errorf("a loaded timestamp 59 s ahead moved the clock to %v", ts)
	}
}
