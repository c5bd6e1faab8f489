package policy

import (
	"sync"
	"sync/atomic"
	"time"
)

// cacheKey is everything a decision depends on that can differ between two
// requests decided by the same compiled policy. The subject's role, zones,
// software version and capabilities are fixed by its credential ID; mesh, zone
// and channel are parts of the topic. The input's time is not in the key: the
// cache TTL bounds how stale a time-dependent decision can be.
type cacheKey struct {
	action       Action
	topic        string
	state        string
	key          string
	credentialID string
	did          string
	trustScore   float64
	attested     bool
	quarantined  bool
}

func keyOf(in *Input) cacheKey {
	return cacheKey{
		action:       in.Action,
		topic:        in.Topic,
		state:        in.State,
		key:          in.Key,
		credentialID: in.Subject.CredentialID,
		did:          in.Subject.DID,
		trustScore:   in.Subject.TrustScore,
		attested:     in.Subject.Attested,
		quarantined:  in.Subject.Quarantined,
	}
}

// cache is a bounded decision cache with CLOCK (second chance) eviction: a
// hit takes the read lock only and sets the entry's reference bit; an insert
// into a full cache sweeps the ring, clearing reference bits, and evicts the
// first entry that was not used since the hand last passed it (or has
// expired). It belongs to one compiled policy, so a policy swap drops it whole.
type cache struct {
	size int
	ttl  time.Duration

	mu   sync.RWMutex
	idx  map[cacheKey]*cacheEntry
	ring []*cacheEntry // at most size entries; the clock hand sweeps it
	hand int
}

type cacheEntry struct {
	key     cacheKey
	d       Decision
	expires int64 // UnixNano
	ref     atomic.Bool
}

func newCache(size int, ttl time.Duration) *cache {
	if size <= 0 || ttl <= 0 {
		return nil
	}
	// The map grows as decisions are cached: a node in a mesh of
	// thousands holds one engine, and room for 1,024 keys made up front
	// was a quarter of a megabyte each (15% of a 1,000-node simulation's
	// heap) while most nodes cache a few dozen decisions.
	return &cache{size: size, ttl: ttl, idx: make(map[cacheKey]*cacheEntry)}
}

// get returns the live decision cached for k. It does not allocate.
func (c *cache) get(k *cacheKey, now time.Time) (Decision, bool) {
	c.mu.RLock()
	e, ok := c.idx[*k]
	if !ok || now.UnixNano() >= e.expires {
		c.mu.RUnlock()
		return Decision{}, false
	}
	if !e.ref.Load() { // a store only when it changes: keep the line shared
		e.ref.Store(true)
	}
	d := e.d
	c.mu.RUnlock()
	return d, true
}

// put caches d for k until the earlier of now+TTL and validUntil (if set).
func (c *cache) put(k cacheKey, d Decision, now, validUntil time.Time) {
	exp := now.Add(c.ttl)
	if !validUntil.IsZero() && validUntil.Before(exp) {
		exp = validUntil
	}
	if !exp.After(now) {
		return // the credential has expired: nothing to reuse
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.idx[k]; ok { // expired, or decided concurrently
		e.d, e.expires = d, exp.UnixNano()
		return
	}
	e := &cacheEntry{key: k, d: d, expires: exp.UnixNano()}
	if len(c.ring) < c.size {
		c.ring = append(c.ring, e)
		c.idx[k] = e
		return
	}
	// Two sweeps at most: the first clears every reference bit it passes.
	nowNano := now.UnixNano()
	for range 2 * len(c.ring) {
		old := c.ring[c.hand]
		if old.ref.Load() && nowNano < old.expires {
			old.ref.Store(false)
			c.hand = (c.hand + 1) % len(c.ring)
			continue
		}
		break
	}
	old := c.ring[c.hand]
	delete(c.idx, old.key)
	c.ring[c.hand] = e
	c.idx[k] = e
	c.hand = (c.hand + 1) % len(c.ring)
}

// len returns the number of entries, live or expired.
func (c *cache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.idx)
}
