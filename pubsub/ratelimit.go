package pubsub

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	ps "github.com/libp2p/go-libp2p-pubsub"
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

// Rate limits on the control topic and the member topics. Every authentic
// message there is verified by every node and relayed to all (a signed
// evidence of 28 KiB costs each node a signature check and a judgment),
// so one member could make the whole mesh spend its CPU on its own
// content: one sent 3,986 evidence messages in 20 s, all relayed (issue
// 15, item 5). Each GossipSub origin (the member whose key signed the
// message: the author of evidence, the member announcing itself, the
// daemon publishing issuer content) thus has a token bucket per kind of
// content, refilled at a pace well above what an honest node publishes:
//
//   - evidence: at start, every AttestInterval, after a renewal; allowed
//     evidencePerInterval per AttestInterval, bursts of evidenceBurst;
//   - its member announcement: at start, 5 s later, every 12-15 min and on
//     renewal; one per announceEvery, bursts of announceBurst;
//   - revocation lists, policy bundles, reference values and quarantine
//     announcements: an operator's daemon or a node quarantining many
//     peers at once; controlPerSecond, bursts of controlBurst.
//
// The limit is per origin of the content, so the announcements of many
// members relayed together, or handed over in a sync (which does not pass
// here), never share an allowance. A message is counted only if it is new
// from its origin (ctlWindows: GossipSub's sequence number, under the
// origin's signature, in a sliding window per origin), so nobody can spend
// an honest origin's allowance by replaying its messages. A message over
// the limit is Ignored before it is verified; it counts against its origin
// (OnMisbehave) only when the origin sent it to us itself: the relays
// apply the same limit before they forward, so a relayed excess is a relay
// bunching up the origin's messages, not the origin's doing.
const (
	evidencePerInterval = 3
	evidenceBurst       = 6
	announceEvery       = 10 * time.Second
	announceBurst       = 6
	controlPerSecond    = 1
	controlBurst        = 64
	maxCtlWindows       = 1 << 14
)

// controlLimit is each origin's allowance of control content of type typ
// (controlMember also for the member topics).
func (m *Mesh) controlLimit(typ string) RateLimit {
	switch typ {
	case controlEvidence:
		return RateLimit{PerSecond: evidencePerInterval / m.cfg.AttestInterval.Seconds(), Burst: evidenceBurst}
	case controlMember:
		return RateLimit{PerSecond: 1 / announceEvery.Seconds(), Burst: announceBurst}
	}
	return RateLimit{PerSecond: controlPerSecond, Burst: controlBurst}
}

// ctlWindows remembers the GossipSub sequence numbers of the control and
// member topic messages seen from each origin.
type ctlWindows struct {
	mu sync.Mutex
	m  map[peer.ID]*replayWindow
}

// fresh reports whether seqno is new from origin, and records it. An
// evicted origin's window starts again: at worst one replay of each of its
// messages is counted once more.
func (c *ctlWindows) fresh(origin peer.ID, seqno []byte) bool {
	if len(seqno) != 8 {
		return false // GossipSub's own sequence numbers are 8 bytes
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.m[origin]
	if w == nil {
		if c.m == nil {
			c.m = map[peer.ID]*replayWindow{}
		}
		if len(c.m) >= maxCtlWindows {
			for p := range c.m { // evict an arbitrary entry: the map is bounded
				delete(c.m, p)
				break
			}
		}
		w = &replayWindow{}
		c.m[origin] = w
	}
	return w.check(binary.BigEndian.Uint64(seqno))
}

// overControlLimit reports whether msg, of content type typ, is a replay
// or over its origin's allowance: it is then Ignored unverified. An origin
// over its allowance that sent msg itself is told to OnMisbehave, and its
// flood logged once a minute at most. Control content has one allowance
// per type; announcements one per member topic (a member of three zones
// announces on three).
func (m *Mesh) overControlLimit(from peer.ID, msg *ps.Message, typ string) (bool, string) {
	origin := msg.GetFrom()
	if !m.ctlSeen.fresh(origin, msg.GetSeqno()) {
		return true, ReasonReplay
	}
	now := m.cfg.Now()
	bucket := typ
	if typ == controlMember {
		bucket = msg.GetTopic()
	}
	if m.ctlLimits.allow(origin, bucket, m.controlLimit(typ), now) {
		return false, ""
	}
	if from == origin {
		if m.cfg.OnMisbehave != nil {
			m.cfg.OnMisbehave(origin, ReasonControlRateLimited)
		}
		if report, dropped := m.ctlFloods.note(origin, now); report {
			m.log.Warn("control messages over the rate limit", "event_type", "rate_limited", "peer", origin.String(),
				"type", typ, "dropped", dropped, "reason", fmt.Sprintf("%s messages over the limit of %.3g a second in bursts of %d (logged once a minute)",
					typ, m.controlLimit(typ).PerSecond, m.controlLimit(typ).Burst))
		}
	}
	return true, ReasonControlRateLimited
}

// floodLog aggregates the log of a flood: one line per origin a minute.
type floodLog struct {
	mu sync.Mutex
	m  map[peer.ID]*floodNote
}

type floodNote struct {
	logged  time.Time
	dropped uint64 // since the last line
}

// note counts one dropped message of origin; report says whether to log
// now, with how many were dropped since the last line.
func (f *floodLog) note(origin peer.ID, now time.Time) (report bool, dropped uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil || len(f.m) >= maxCtlWindows {
		f.m = map[peer.ID]*floodNote{}
	}
	n := f.m[origin]
	if n == nil {
		n = &floodNote{}
		f.m[origin] = n
	}
	n.dropped++
	if !n.logged.IsZero() && now.Sub(n.logged) < time.Minute {
		return false, 0
	}
	dropped, n.dropped, n.logged = n.dropped, 0, now
	return true, dropped
}
