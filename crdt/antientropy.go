package crdt

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// Anti-entropy compares the states of two replicas bucket by bucket and
// sends the entries of the buckets that differ. See doc.go and
// docs/CRDT.md ("Anti-entropy") for the protocol and why it converges.
const (
	// MaxDigestSize is the largest encoded digest.
	MaxDigestSize = 128 << 10
	// MaxChunkSize is the largest encoded chunk, and the default chunk
	// size of Missing.
	MaxChunkSize = 1 << 20

	// A digest has 2^bits buckets, minDigestBits ≤ bits ≤ maxDigestBits;
	// Digest picks the smallest with at most entriesPerBucket entries per
	// bucket on average.
	minDigestBits    = 4
	maxDigestBits    = 12
	entriesPerBucket = 4
	// bucketHashSize is the length of a bucket hash (truncated SHA-256).
	bucketHashSize = 16

	// MaxRoundEntries bounds the entries one anti-entropy round takes from
	// a peer: 16 full chunks, four times a state of 2^maxDigestBits
	// buckets at entriesPerBucket (16,384 entries, the size the digest is
	// designed for). A round that reaches it stops; the next round's
	// digest includes what was applied, so a larger state still
	// converges, a round at a time.
	MaxRoundEntries = 16 * MaxEntries
)

// BucketContext separates bucket hashes from every other use of SHA-256.
const BucketContext = "ztmesh/crdt-bucket/v1"

type wireDigest struct {
	V      int    `json:"v"`
	State  string `json:"state"`
	Kind   Kind   `json:"kind"`
	Bits   int    `json:"bits"`
	Hashes []byte `json:"hashes"`
}

type wireChunk struct {
	V       int         `json:"v"`
	State   string      `json:"state"`
	Kind    Kind        `json:"kind"`
	Entries []wireEntry `json:"entries"`
}

type chunk struct {
	State   string
	Kind    Kind
	Entries []Entry
}

// bucketOf returns the bucket of key among 2^bits: the top bits of
// SHA-256(key). All the entries of a key (every dot of an OR-set element)
// share a bucket.
func bucketOf(key string, bits int) int {
	h := sha256.Sum256([]byte(key))
	return int(binary.BigEndian.Uint32(h[:4]) >> (32 - bits))
}

// groupLocked returns the keys of each of the 2^bits buckets, sorted.
func (r *Replica) groupLocked(bits int) [][]string {
	groups := make([][]string, 1<<bits)
	for k := range r.slots {
		b := bucketOf(k, bits)
		groups[b] = append(groups[b], k)
	}
	for _, g := range groups {
		slices.Sort(g)
	}
	return groups
}

// hashLocked returns the hash of the entries of keys (sorted) that have not
// expired: SHA-256 over BucketContext, a zero byte, and each entry's binary
// form followed by its signature, truncated to bucketHashSize bytes; all
// zeros if there is no entry.
func (r *Replica) hashLocked(keys []string, cutoff int64) [bucketHashSize]byte {
	var out [bucketHashSize]byte
	h := sha256.New()
	h.Write([]byte(BucketContext + "\x00"))
	var buf []byte
	empty := true
	for _, k := range keys {
		slots := r.slots[k]
		for i := range slots {
			if expired(&slots[i], cutoff) {
				continue
			}
			empty = false
			buf = appendEntry(buf[:0], r.kind, &slots[i])
			buf = appendBytes(buf, slots[i].Sig)
			h.Write(buf)
		}
	}
	if !empty {
		copy(out[:], h.Sum(nil))
	}
	return out
}

// Digest summarizes the state for anti-entropy (docs/CRDT.md, "Digest"):
// a hash of each bucket of entries. Send it to a peer, which answers with
// Missing; apply its chunks with ApplyChunk.
func (r *Replica) Digest() ([]byte, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ErrClosed
	}
	cutoff := r.cutoff(r.clock.now())
	n := 0
	for _, slots := range r.slots {
		for i := range slots {
			if !expired(&slots[i], cutoff) {
				n++
			}
		}
	}
	bits := minDigestBits
	for bits < maxDigestBits && entriesPerBucket<<bits < n {
		bits++
	}
	hashes := make([]byte, 0, bucketHashSize<<bits)
	for _, keys := range r.groupLocked(bits) {
		h := r.hashLocked(keys, cutoff)
		hashes = append(hashes, h[:]...)
	}
	r.mu.Unlock()
	return json.Marshal(&wireDigest{V: formatVersion, State: r.name, Kind: r.kind, Bits: bits, Hashes: hashes})
}

// decodeDigest parses a digest received from a peer.
func decodeDigest(data []byte) (*wireDigest, error) {
	var w wireDigest
	if err := decodeCanonical(data, MaxDigestSize, "digest", &w); err != nil {
		return nil, err
	}
	if err := checkHeader("digest", w.V, w.State, w.Kind); err != nil {
		return nil, err
	}
	if w.Bits < 0 || w.Bits > maxDigestBits {
		return nil, fmt.Errorf("%w: digest of 2^%d buckets, limit 2^%d", ErrMalformed, w.Bits, maxDigestBits)
	}
	if len(w.Hashes) != bucketHashSize<<w.Bits {
		return nil, fmt.Errorf("%w: digest of 2^%d buckets has %d bytes of hashes, want %d", ErrMalformed, w.Bits, len(w.Hashes), bucketHashSize<<w.Bits)
	}
	return &w, nil
}

// Missing answers a peer's digest: it calls send with chunks (docs/CRDT.md,
// "Chunk") holding every entry of every bucket whose hash differs from the
// peer's. After the peer applies them it has everything this replica had
// when Missing ran. Each chunk is at most maxBytes long (0 or more than
// MaxChunkSize means MaxChunkSize) and MaxEntries entries, except that an
// entry longer than maxBytes goes alone in its chunk. If send returns an
// error, Missing stops and returns it; chunks already sent are still good.
func (r *Replica) Missing(peerDigest []byte, maxBytes int, send func(chunk []byte) error) error {
	pd, err := decodeDigest(peerDigest)
	if err != nil {
		return err
	}
	if pd.State != r.name || pd.Kind != r.kind {
		return fmt.Errorf("%w: digest of %s state %q sent to %s state %q", ErrWrongState, pd.Kind, pd.State, r.kind, r.name)
	}
	if maxBytes <= 0 || maxBytes > MaxChunkSize {
		maxBytes = MaxChunkSize
	}
	var out []Entry
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	cutoff := r.cutoff(r.clock.now())
	for b, keys := range r.groupLocked(pd.Bits) {
		if len(keys) == 0 {
			continue
		}
		h := r.hashLocked(keys, cutoff)
		if bytes.Equal(h[:], pd.Hashes[b*bucketHashSize:(b+1)*bucketHashSize]) {
			continue
		}
		for _, k := range keys {
			for _, e := range r.slots[k] {
				if !expired(&e, cutoff) {
					out = append(out, e)
				}
			}
		}
	}
	r.mu.Unlock()

	// Entries are appended to the chunk one by one, in exactly the bytes
	// json.Marshal gives a wireChunk, so the size is known as it grows.
	head, _ := json.Marshal(&wireChunk{V: formatVersion, State: r.name, Kind: r.kind})
	head = bytes.TrimSuffix(head, []byte("null}"))
	const tail = "]}"
	var (
		n     names
		buf   []byte
		count int
	)
	flush := func() error {
		buf = append(buf, tail...)
		err := send(buf)
		buf, count = nil, 0
		return err
	}
	for i := range out {
		eb, err := json.Marshal(n.toWire(r.kind, &out[i]))
		if err != nil {
			return err
		}
		if count > 0 && (len(buf)+1+len(eb)+len(tail) > maxBytes || count == MaxEntries) {
			if err := flush(); err != nil {
				return err
			}
		}
		if count == 0 {
			buf = append(append(buf, head...), '[')
		} else {
			buf = append(buf, ',')
		}
		buf = append(buf, eb...)
		count++
	}
	if count > 0 {
		return flush()
	}
	return nil
}

// decodeChunk parses a chunk received from a peer: strict, canonical, at
// most MaxChunkSize bytes and MaxEntries entries, every entry well formed.
func decodeChunk(data []byte) (*chunk, error) {
	var w wireChunk
	if err := decodeCanonical(data, MaxChunkSize, "chunk", &w); err != nil {
		return nil, err
	}
	if err := checkHeader("chunk", w.V, w.State, w.Kind); err != nil {
		return nil, err
	}
	switch n := len(w.Entries); {
	case n == 0:
		return nil, fmt.Errorf("%w: chunk without entries", ErrMalformed)
	case n > MaxEntries:
		return nil, fmt.Errorf("%w: chunk of %d entries, limit %d", ErrTooLarge, n, MaxEntries)
	}
	c := &chunk{State: w.State, Kind: w.Kind, Entries: make([]Entry, len(w.Entries))}
	var n names
	for i := range w.Entries {
		var err error
		if c.Entries[i], err = n.fromWire(w.Kind, &w.Entries[i]); err != nil {
			return nil, fmt.Errorf("chunk: %w", err)
		}
	}
	return c, nil
}

// ApplyChunk merges a chunk that a peer's Missing sent. Unlike a delta, a
// chunk relays the writes of many origins, so each entry is checked on its
// own (drift, its writer's signature, the Authorizer for its writer and
// key): entries refused for drift or by the Authorizer are skipped and
// reported in skipped (another replica may judge them otherwise), the
// others are merged and committed. Entries that would change nothing here
// are skipped silently, before any check. err is set, and nothing applied,
// if the chunk as a whole is malformed, for another state, or cannot be
// committed, and at the first entry whose signature does not verify
// (ErrBadSignature): a replica relays only entries it verified, so such a
// chunk is junk from its sender, and checking the rest would cost a
// signature verification each for nothing.
func (r *Replica) ApplyChunk(data []byte) (changed []Change, skipped []error, err error) {
	c, err := decodeChunk(data)
	if err != nil {
		return nil, nil, err
	}
	if c.State != r.name || c.Kind != r.kind {
		return nil, nil, fmt.Errorf("%w: chunk of %s state %q applied to %s state %q", ErrWrongState, c.Kind, c.State, r.kind, r.name)
	}
	now := r.clock.now()
	cutoff := r.cutoff(now)
	// Most of a chunk is usually entries this replica has: a differing
	// bucket is sent whole. Checking them would cost a signature
	// verification each for nothing.
	var candidates []Entry
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, nil, ErrClosed
	}
	for i := range c.Entries {
		if wins(r.kind, r.slots[c.Entries[i].Key], &c.Entries[i], cutoff) {
			candidates = append(candidates, c.Entries[i])
		}
	}
	r.mu.Unlock()
	accepted := candidates[:0]
	authorized := make(map[authKey]bool)
	for i := range candidates {
		if err := r.check(&candidates[i], now, authorized); err != nil {
			if errors.Is(err, ErrBadSignature) {
				return nil, nil, fmt.Errorf("chunk refused at entry %d of %d: %w", i+1, len(c.Entries), err)
			}
			skipped = append(skipped, err)
			continue
		}
		accepted = append(accepted, candidates[i])
	}
	if len(accepted) == 0 {
		return nil, skipped, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, nil, ErrClosed
	}
	changed, err = r.commitLocked(accepted, cutoff)
	if err != nil {
		return nil, nil, err
	}
	for i := range accepted {
		r.clock.observe(accepted[i].TS)
	}
	return changed, skipped, nil
}
