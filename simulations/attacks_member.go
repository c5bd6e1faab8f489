package simulations

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ztmesh/ztmesh/internal/wire"
	"github.com/ztmesh/ztmesh/node"
	"github.com/ztmesh/ztmesh/pubsub"
)

// Attacks by a malicious member with one valid credential who reads the
// code (issue 15): framing honest relays with what only an origin
// controls (the key it hands each member, the time in its envelopes), and
// flooding the control topic with authentic content. Each row also counts
// the honest nodes that honest nodes quarantined while it ran: a framing
// attack succeeds exactly when that is more than zero.

// The evidence each honest node applies of one member: what a receiver
// verifies as "attestation passed" or "failed" in its log.
func init() {
	atkSecurityEvents["attestation_passed"] = true
	atkSecurityEvents["attestation_failed"] = true
	atkSecurityEvents["key_equivocation"] = true
}

// honestQuarantines counts the honest nodes that some honest node
// quarantined since t.
func (l *lab) honestQuarantines(since time.Time) int {
	l.ev.mu.Lock()
	defer l.ev.mu.Unlock()
	victims := map[string]bool{}
	for _, e := range l.ev.list {
		if e.typ == "peer_quarantined" && !e.at.Before(since) && l.honestDIDs[e.node] && l.honestDIDs[e.didOf] {
			victims[e.didOf] = true
		}
	}
	return len(victims)
}

// quarantinedBy counts the honest nodes that quarantined the member d since t.
func (l *lab) quarantinedBy(d string, since time.Time) int {
	l.ev.mu.Lock()
	defer l.ev.mu.Unlock()
	by := map[string]bool{}
	for _, e := range l.ev.list {
		if e.typ == "peer_quarantined" && !e.at.Before(since) && l.honestDIDs[e.node] && e.didOf == d {
			by[e.node] = true
		}
	}
	return len(by)
}

// lowestHonestScore is the lowest GossipSub score any honest node gives
// any honest peer, with its application-specific part (the peer's
// standing there), and how many honest peers are graylisted by one.
func (l *lab) lowestHonestScore() (lowest, app float64, graylisted int) {
	for _, m := range l.c.Nodes {
		for p, s := range m.Mesh().Scores() {
			if !l.isHonest(p) {
				continue
			}
			if s < lowest {
				lowest, app = s, m.Mesh().AppScore(p)
			}
			if gl, _ := m.Mesh().Graylisted(p); gl {
				graylisted++
			}
		}
	}
	return lowest, app, graylisted
}

// framingVerdict adds to row what the framing attacks are judged on: no
// honest node quarantined or graylisted by an honest node, and the
// attacker's standing.
func (l *lab) framingVerdict(ctx context.Context, row *attackRow, m *Member) {
	sleepCtx(ctx, 2*time.Second) // two score snapshots after the last message
	q := l.honestQuarantines(row.t0)
	low, app, gl := l.lowestHonestScore()
	by := l.quarantinedBy(m.ID.DID().String(), row.t0)
	row.notes = append(row.notes, fmt.Sprintf("honest nodes quarantined by honest nodes: %d; honest peers graylisted: %d, lowest honest score %.0f (standing part %.0f); the attacker quarantined by %d honest nodes",
		q, gl, low, app, by))
	if q > 0 {
		row.accepted += q
		row.failures = append(row.failures, fmt.Sprintf("%d honest nodes quarantined by honest nodes: the relays were framed", q))
	}
	if gl > 0 {
		row.failures = append(row.failures, fmt.Sprintf("%d honest peers graylisted by honest nodes", gl))
	}
}

// equivocator is a member whose key server hands the honest nodes in
// favoured its true sender key and everyone else a random key under the
// same key ID, and which seals and publishes its own envelopes: written
// against docs/PROTOCOL.md (Zone envelope, Sender key pull), not against
// the node's internals.
type equivocator struct {
	m        *Member
	topic    string
	key      []byte // the true key
	id       [8]byte
	favoured map[peer.ID]bool
	seq      uint64
	served   atomic.Int64 // true keys handed out
	lied     atomic.Int64 // random keys handed out
}

// keyID is the ID of a sender key (docs/PROTOCOL.md, Zone envelope).
func keyID(origin peer.ID, topic string, key []byte) [8]byte {
	h := sha256.New()
	h.Write([]byte("ztmesh/sender-key-id/v1\x00"))
	for _, part := range [][]byte{[]byte(origin), []byte(topic)} {
		h.Write(binary.BigEndian.AppendUint16(nil, uint16(len(part))))
		h.Write(part)
	}
	h.Write(key)
	var id [8]byte
	copy(id[:], h.Sum(nil))
	return id
}

func lengthPrefixed(label string, parts ...[]byte) []byte {
	out := append([]byte(label), 0)
	for _, p := range parts {
		out = binary.BigEndian.AppendUint16(out, uint16(len(p)))
		out = append(out, p...)
	}
	return out
}

// seal makes the data of a zone message: header and AES-256-GCM payload.
func (e *equivocator) seal(payload []byte, at time.Time) ([]byte, error) {
	e.seq++
	hdr := make([]byte, envelopeHeader)
	hdr[0], hdr[1] = 1, 1
	copy(hdr[2:10], e.id[:])
	binary.BigEndian.PutUint64(hdr[10:18], e.seq)
	binary.BigEndian.PutUint64(hdr[18:26], uint64(at.UnixNano()))
	block, err := aes.NewCipher(e.key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	var nonce [12]byte
	binary.BigEndian.PutUint64(nonce[4:], e.seq)
	ad := append(lengthPrefixed("ztmesh/zone-envelope/v1", []byte(e.topic), []byte(e.m.Host().ID())), hdr...)
	return aead.Seal(hdr, nonce[:], payload, ad), nil
}

// serve answers key requests: the true key to the favoured, a random one
// to the rest, each sealed properly to the requester's key package.
func (e *equivocator) serve(s network.Stream) {
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	p := s.Conn().RemotePeer()
	var req keyRequest
	if err := wire.ReadJSON(s, &req, 8<<10); err != nil {
		s.Reset()
		return
	}
	no := func(reason string) { _ = wire.WriteJSON(s, keyResponse{V: 1, Reason: reason}, 8<<10) }
	mem, ok := e.m.Member(p)
	if !ok || mem.KeyPackage == nil || req.Topic != e.topic || string(req.KeyID) != string(e.id[:]) {
		no("unknown")
		return
	}
	key := e.key
	if !e.favoured[p] {
		key = make([]byte, 32)
		_, _ = rand.Read(key)
		e.lied.Add(1)
	} else {
		e.served.Add(1)
	}
	var kem hpke.KEM = hpke.MLKEM768X25519()
	if mem.KeyPackage.Suite == pubsub.SuiteX25519 {
		kem = hpke.DHKEM(ecdh.X25519())
	}
	pub, err := kem.NewPublicKey(mem.KeyPackage.Public)
	if err != nil {
		no("key package")
		return
	}
	info := lengthPrefixed("ztmesh/sender-key/v1", []byte(req.Topic), []byte(e.m.Host().ID()), []byte(p), req.KeyID)
	sealed, err := hpke.Seal(pub, hpke.HKDFSHA256(), hpke.AES256GCM(), info, key)
	if err != nil {
		no("seal")
		return
	}
	_ = wire.WriteJSON(s, keyResponse{V: 1, OK: true, Sealed: sealed}, 8<<10)
}

// memberAttacker starts a member of zone 0 (its node's settings adjusted by
// tweak), connects it to k honest nodes of the zone and returns it with
// them. The other members of the zone receive its messages only through
// those k relays; with dialable, they can dial it (for a key), else it
// accepts no connection but theirs.
func (l *lab) memberAttacker(ctx context.Context, row *attackRow, k int, dialable bool, tweak func(*node.Config, *node.Options)) (*Member, []*Member, error) {
	z := l.zones[0]
	m, err := l.startAttacker(ctx, row.name, NodeSpec{Zones: []string{z}, Role: "vehicle", Trust: l.sc.Trust}, nil, tweak)
	if err != nil {
		return nil, nil, err
	}
	row.attacker(m.ID.DID())
	for _, h := range l.byZone[z] {
		if dialable && len(l.c.Net.LinksBetweenPeers(m.Host().ID(), h.Host().ID())) == 0 {
			if _, err := l.c.Net.LinkPeers(m.Host().ID(), h.Host().ID()); err != nil {
				m.Close()
				return nil, nil, err
			}
		}
	}
	targets := l.pick(z, k)
	if n := l.connectMember(ctx, m, targets); n == 0 {
		m.Close()
		return nil, nil, fmt.Errorf("%s: no honest node verified the attacker", row.name)
	}
	// Its announcement must have reached the zone: a member nobody knows
	// is Ignored as an unknown origin, and its attack shows nothing.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		known := 0
		for _, h := range l.byZone[z] {
			if _, ok := h.Member(m.Host().ID()); ok {
				known++
			}
		}
		if known == len(l.byZone[z]) {
			break
		}
		_ = m.Announce(ctx)
		sleepCtx(ctx, 2*time.Second)
	}
	return m, targets, nil
}

// attackKeyEquivocation: a member hands the two honest nodes it is
// connected to its true sender key and every other member of its zone (who
// get its messages through those two) a random key
// under the same key ID, then publishes bursts of 8 messages. Before issue
// 15, those others rejected the honest relays for bad ciphertext until
// GossipSub graylisted them and the node quarantined them.
func attackKeyEquivocation(ctx context.Context, l *lab, w time.Duration) (*attackRow, error) {
	row := newRow("key-equivocation")
	m, targets, err := l.memberAttacker(ctx, row, 2, true, nil)
	if err != nil {
		return nil, err
	}
	defer l.stop(m)
	e := &equivocator{m: m, topic: l.zoneTopic(l.zones[0]), key: make([]byte, 32), favoured: map[peer.ID]bool{}}
	_, _ = rand.Read(e.key)
	e.id = keyID(m.Host().ID(), e.topic, e.key)
	for _, t := range targets {
		e.favoured[t.Host().ID()] = true
	}
	m.Host().SetStreamHandler(pubsub.KeyProtocol, e.serve)
	// Its own GossipSub publishes the hand-sealed envelopes: its mesh never
	// joined the topic, so no validator of its own stands in the way.
	tp, err := m.Mesh().PubSub().Join(e.topic)
	if err != nil {
		return nil, err
	}
	defer tp.Close()
	deadline := time.Now().Add(w)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		for range 8 {
			data, err := e.seal([]byte("ok: a member's message, under an equivocated key"), time.Now())
			if err != nil {
				return nil, err
			}
			if tp.Publish(ctx, data) == nil {
				row.attempts++
			}
		}
		sleepCtx(ctx, time.Second)
	}
	sleepCtx(ctx, attackSettle)
	// Accepted: a delivery to a member that was handed a wrong key would
	// mean it took that key (it cannot open the message with it).
	lied := 0
	for recv, n := range l.deliveriesFrom(m.ID.DID(), "ok:") {
		if !e.favoured[l.c.Nodes[recv].Host().ID()] {
			lied += n
		}
	}
	row.accepted += lied
	if lied > 0 {
		row.failures = append(row.failures, fmt.Sprintf("%d deliveries to members handed a wrong key", lied))
	}
	row.notes = append(row.notes, fmt.Sprintf("%d messages in bursts of 8; true key to %d relays, random keys under the same ID to %d other members",
		row.attempts, e.served.Load(), e.lied.Load()))
	l.framingVerdict(ctx, row, m)
	return row, nil
}

// attackTimeEdge: a member whose clock sits at the trailing edge of the
// skew window publishes: its messages are fresh at the first hops and
// stale a hop or two later (each message a few milliseconds nearer the
// edge than the last). Only its two relays can reach it (the others judge
// a message's time before they need its key), so all the others hear of
// its messages is what the relays forward. Before issue 15 the later hops
// rejected the honest relays for them. (A message from the future cannot become stale in
// transit under one clock; the regression tests cover that edge with
// skewed clocks.)
func attackTimeEdge(ctx context.Context, l *lab, w time.Duration) (*attackRow, error) {
	row := newRow("time-edge")
	var margin atomic.Int64 // how far inside the window its clock is
	skew := 2 * time.Minute // node.Config's default MaxSkew
	m, _, err := l.memberAttacker(ctx, row, 2, false, func(_ *node.Config, o *node.Options) {
		o.Now = func() time.Time { return time.Now().Add(-skew + time.Duration(margin.Load())) }
	})
	if err != nil {
		return nil, err
	}
	defer l.stop(m)
	margin.Store(int64(time.Minute)) // comfortably inside while it connects
	z := l.zones[0]
	// Let it be known and its key fetched with fresh messages first.
	for range 3 {
		if _, err := m.Mesh().Publish(ctx, z, attackChannel, []byte("ok: warm-up")); err == nil {
			row.attempts++
		}
		sleepCtx(ctx, 500*time.Millisecond)
	}
	deadline := time.Now().Add(w)
	for i := 0; time.Now().Before(deadline) && ctx.Err() == nil; i++ {
		// 25-60 ms inside the edge: links take 20 ms a hop, validation
		// more, so most are fresh one hop from it and stale two or three.
		margin.Store(int64(time.Duration(25+i%8*5) * time.Millisecond))
		if _, err := m.Mesh().Publish(ctx, z, attackChannel, []byte("ok: at the edge")); err == nil {
			row.attempts++
		}
		sleepCtx(ctx, 50*time.Millisecond)
	}
	margin.Store(int64(time.Minute))
	sleepCtx(ctx, attackSettle)
	row.notes = append(row.notes, fmt.Sprintf("%d messages dated 25-60 ms inside the trailing edge of the %s window", row.attempts, skew))
	l.framingVerdict(ctx, row, m)
	return row, nil
}

// attackControlFlood: a member publishes fresh, authentic evidence about
// itself on the control topic as fast as it can make it, for w. Before
// issue 15 every node verified and relayed every one.
func attackControlFlood(ctx context.Context, l *lab, w time.Duration) (*attackRow, error) {
	row := newRow("control-flood")
	m, _, err := l.memberAttacker(ctx, row, targetsPerAttacker, true, nil)
	if err != nil {
		return nil, err
	}
	defer l.stop(m)
	start := time.Now()
	deadline := start.Add(w)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for range 4 {
		wg.Go(func() {
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if err := m.Attest(ctx); err == nil {
					mu.Lock()
					row.attempts++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	sleepCtx(ctx, attackSettle)
	// What each honest node verified of it: its attestation log lines.
	applied := map[string]int{}
	l.ev.mu.Lock()
	for _, e := range l.ev.list {
		if (e.typ == "attestation_passed" || e.typ == "attestation_failed") && e.didOf == m.ID.DID().String() && l.honestDIDs[e.node] && !e.at.Before(start) {
			applied[e.node]++
		}
	}
	l.ev.mu.Unlock()
	// docs/PROTOCOL.md: 6 at once, then 3 per attest interval (60 s).
	allowance := 6 + int(3*(took+attackSettle).Seconds()/60) + 1
	over, most := 0, 0
	for _, n := range applied {
		over += max(0, n-allowance)
		most = max(most, n)
	}
	row.accepted += over
	if over > 0 {
		row.failures = append(row.failures, fmt.Sprintf("%d evidence messages verified over the allowance of %d per node", over, allowance))
	}
	row.notes = append(row.notes, fmt.Sprintf("published %d evidence messages in %s (%.0f/s); verified by %d honest nodes, at most %d each (allowance %d)",
		row.attempts, took.Round(10*time.Millisecond), float64(row.attempts)/took.Seconds(), len(applied), most, allowance))
	by := l.quarantinedBy(m.ID.DID().String(), start)
	row.notes = append(row.notes, fmt.Sprintf("the flooder quarantined by %d honest nodes", by))
	if q := l.honestQuarantines(start); q > 0 {
		row.accepted += q
		row.failures = append(row.failures, fmt.Sprintf("%d honest nodes quarantined by honest nodes", q))
	}
	return row, nil
}
