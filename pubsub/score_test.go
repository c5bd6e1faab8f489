package pubsub

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// standings is a Members whose answers the test sets, counting the asks.
type standings struct {
	mu    sync.Mutex
	trust map[peer.ID]float64 // absent: not a member; negative: quarantined
	ver   map[peer.ID]uint64
	asks  atomic.Int64
	// gate, if set, holds the next ask after it has read the standing,
	// until closed; reached is closed when it is held.
	gate, reached chan struct{}
}

func (s *standings) Member(p peer.ID) (Member, bool) {
	s.asks.Add(1)
	s.mu.Lock()
	t, ok := s.trust[p]
	gate, reached := s.gate, s.reached
	s.gate, s.reached = nil, nil
	s.mu.Unlock()
	if gate != nil {
		close(reached)
		<-gate
	}
	return Member{TrustScore: max(t, 0), Quarantined: t < 0}, ok
}

func (s *standings) StandingVersion(p peer.ID) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ver[p]
}

func (s *standings) pause(gate, reached chan struct{}) {
	s.mu.Lock()
	s.gate, s.reached = gate, reached
	s.mu.Unlock()
}

// set changes p's standing and then its version, as Members must.
func (s *standings) set(p peer.ID, t float64) {
	s.quietly(p, t)
	s.mu.Lock()
	if s.ver == nil {
		s.ver = map[peer.ID]uint64{}
	}
	s.ver[p]++
	s.mu.Unlock()
}

// quietly changes p's standing without a new version: a change that only
// the passage of time brings (decay).
func (s *standings) quietly(p peer.ID, t float64) {
	s.mu.Lock()
	if t == absent {
		delete(s.trust, p)
	} else {
		s.trust[p] = t
	}
	s.mu.Unlock()
}

const absent = -2

// TestAppScoreRemembered: with AppScoreTTL a peer's standing is asked for
// once per TTL while its version stays, a new version makes the next score
// fresh, and without a TTL every score is asked for.
func TestAppScoreRemembered(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	advance := func(d time.Duration) { now.Add(int64(d)) }
	a, b := peer.ID("a"), peer.ID("b")
	st := &standings{trust: map[peer.ID]float64{a: 0.8, b: 0.5}}
	m := &Mesh{cfg: Config{Members: st, Now: clock, AppScoreTTL: time.Second}}

	score := func(p peer.ID, want float64, asks int64) {
		t.Helper()
		before := st.asks.Load()
		if got := m.AppScore(p); got != want {
			t.Fatalf("score of %s = %v, want %v", p, got, want)
		}
		if got := st.asks.Load() - before; got != asks {
			t.Fatalf("scoring %s asked Members %d times, want %d", p, got, asks)
		}
	}
	score(a, 8, 1)
	score(a, 8, 0)
	score(b, 5, 1)

	st.set(a, -1) // quarantined: a new version, seen at once
	score(a, unverifiedScore, 1)
	score(b, 5, 0) // b's score is still remembered
	st.set(a, 0.9)
	st.set(b, 0.1)
	score(a, 9, 1)
	score(b, 1, 1)

	// Time alone: a change without a new version (decay) is seen once the
	// TTL is over, and after the clock went back.
	st.quietly(a, 0.7)
	advance(999 * time.Millisecond)
	score(a, 9, 0)
	advance(time.Millisecond)
	score(a, 7, 1)
	advance(-time.Minute)
	score(a, 7, 1)

	// A peer that is no longer a member scores as unverified.
	st.set(b, absent)
	score(b, unverifiedScore, 1)

	// No TTL: Members is asked every time.
	m0 := &Mesh{cfg: Config{Members: st, Now: clock}}
	before := st.asks.Load()
	m0.AppScore(a)
	m0.AppScore(a)
	if got := st.asks.Load() - before; got != 2 {
		t.Fatalf("without a TTL Members was asked %d times for 2 scores", got)
	}
}

// TestAppScoreChangeDuringAsk: a change of standing that arrives while a
// score is being computed wins: the score read before the change goes to
// that caller but is not reused.
func TestAppScoreChangeDuringAsk(t *testing.T) {
	a := peer.ID("a")
	st := &standings{trust: map[peer.ID]float64{a: 0.8}}
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	m := &Mesh{cfg: Config{Members: st, Now: clock, AppScoreTTL: time.Second}}
	for _, expired := range []bool{false, true} {
		if expired {
			m.AppScore(a) // the entry is there, with its score past the TTL
			now.Add(int64(time.Second))
		}
		gate, reached := make(chan struct{}), make(chan struct{})
		st.pause(gate, reached)
		got := make(chan float64)
		go func() { got <- m.AppScore(a) }()
		<-reached // the ask has read 0.8 and waits
		st.set(a, -1)
		close(gate)
		if v := <-got; v != 8 {
			t.Fatalf("score in flight %v, want 8 (read before the change)", v)
		}
		if v := m.AppScore(a); v != unverifiedScore {
			t.Fatalf("after the change: score %v, want %v; the stale score was reused", v, unverifiedScore)
		}
		st.set(a, 0.8)
	}
}
