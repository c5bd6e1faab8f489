package pubsub

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Rate limits. Each origin may publish on each zone topic PerSecond
// messages a second on average, in bursts of up to Burst: a token bucket
// per origin and topic. Only messages that are otherwise valid count (origin
// signature, membership, policy, ciphertext, time, replay window), so nobody
// can spend an honest origin's allowance by forging or replaying its
// messages. A message over the limit is Ignored, not Rejected: a forwarder
// cannot know how many messages of that origin reached us by other paths,
// and GossipSub's scoring must not blame it. Stats.RateLimited counts the
// dropped messages per origin, for the node's trust scores.

// Default rate limit: generous for telemetry and state deltas (a 10 Hz
// state on 20 keys is 200 messages a second at most), tight enough that one
// member cannot make every other one decrypt thousands of messages a second.
const (
	DefaultRatePerSecond = 200
	DefaultRateBurst     = 400
)

// RateLimit bounds the zone messages one origin may publish on one topic.
// The zero value means "not set": the default applies. A negative
// PerSecond means no limit. A Burst of 0 is twice PerSecond.
type RateLimit struct {
	PerSecond float64
	Burst     int
}

// WithDefaults returns r with its unset fields defaulted: the default
// limit if r is unset, a burst of two seconds' worth if only the rate is
// set, no limit (PerSecond -1) for a negative rate.
func (r RateLimit) WithDefaults() RateLimit {
	return r.normalized(RateLimit{PerSecond: DefaultRatePerSecond, Burst: DefaultRateBurst})
}

// normalized fills in the defaults of a set limit, or returns def for an
// unset one.
func (r RateLimit) normalized(def RateLimit) RateLimit {
	switch {
	case r == RateLimit{}:
		return def
	case r.PerSecond < 0:
		return RateLimit{PerSecond: -1}
	case r.PerSecond == 0:
		r.PerSecond = DefaultRatePerSecond
	}
	if r.Burst <= 0 {
		r.Burst = int(math.Ceil(2 * r.PerSecond))
	}
	return r
}

// Off reports whether r sets no limit.
func (r RateLimit) Off() bool { return r.PerSecond < 0 }

type bucketKey struct {
	origin peer.ID
	topic  string
}

type bucket struct {
	tokens float64
	at     time.Time // of the last refill
	full   time.Time // when it will be full again, if nothing is taken
}

// limiter holds the token buckets. A full bucket is the same as none, so
// buckets full again are swept once a minute: the map holds only origins
// that sent recently.
type limiter struct {
	mu      sync.Mutex
	buckets map[bucketKey]*bucket
	swept   time.Time
}

// allow takes a token from the bucket of origin on topic at time now, and
// reports whether there was one.
func (l *limiter) allow(origin peer.ID, topic string, r RateLimit, now time.Time) bool {
	if r.Off() {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > time.Minute {
		for k, b := range l.buckets {
			if !now.Before(b.full) {
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	k := bucketKey{origin, topic}
	b := l.buckets[k]
	if b == nil {
		if l.buckets == nil {
			l.buckets = map[bucketKey]*bucket{}
		}
		b = &bucket{tokens: float64(r.Burst), at: now}
		l.buckets[k] = b
	} else if d := now.Sub(b.at); d > 0 { // a clock that goes back refills nothing
		b.tokens = math.Min(float64(r.Burst), b.tokens+d.Seconds()*r.PerSecond)
		b.at = now
	}
	ok := b.tokens >= 1
	if ok {
		b.tokens--
	}
	b.full = b.at.Add(time.Duration((float64(r.Burst) - b.tokens) / r.PerSecond * float64(time.Second)))
	return ok
}

// RateLimited returns, per origin, how many of its zone messages were
// dropped for exceeding its rate limit since the mesh started.
func (s *Stats) RateLimited() map[peer.ID]uint64 {
	out := map[peer.ID]uint64{}
	s.rateLimited.Range(func(k, v any) bool { out[k.(peer.ID)] = v.(*atomic.Uint64).Load(); return true })
	return out
}

func (s *Stats) rateLimit(origin peer.ID) {
	v, _ := s.rateLimited.LoadOrStore(origin, new(atomic.Uint64))
	v.(*atomic.Uint64).Add(1)
}
