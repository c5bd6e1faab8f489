package simulations

import (
	"context"
	"crypto/rand"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	ps "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/node"
	"github.com/ztmesh/ztmesh/pubsub"
)

// targetsPerAttacker is how many honest nodes one attacker connects to.
const targetsPerAttacker = 8

func (l *lab) zoneTopic(zone string) string {
	mesh := "sim" // NewCluster's default, for the plain GossipSub run before it
	if l.c != nil {
		mesh = l.c.cfg.Mesh
	}
	t, _ := pubsub.ZoneTopic(mesh, zone, attackChannel)
	return t.String()
}

// plainPeer is a stock go-libp2p host running stock GossipSub, subscribed
// to every zone topic and the control topic; it counts what it receives.
type plainPeer struct {
	*rawHost
	ps       *ps.PubSub
	topics   map[string]*ps.Topic
	received atomic.Int64
	cancel   context.CancelFunc
	mu       sync.Mutex
	what     map[string]int // what it received: topic, origin and sender
	since    time.Time      // when it first connected to an honest node
	latest   time.Duration  // the latest receipt, after since
}

func (l *lab) newPlainPeer(ctx context.Context, attack string) (*plainPeer, error) {
	r, err := l.newRawHost()
	if err != nil {
		return nil, err
	}
	l.addAttacker(r.id.DID(), attack)
	ctx, cancel := context.WithCancel(ctx)
	g, err := ps.NewGossipSub(ctx, r.h)
	if err != nil {
		cancel()
		return nil, err
	}
	p := &plainPeer{rawHost: r, ps: g, topics: map[string]*ps.Topic{}, cancel: cancel, what: map[string]int{}}
	names := []string{pubsub.ControlTopic(l.c.cfg.Mesh).String()}
	for _, z := range l.zones {
		names = append(names, l.zoneTopic(z))
	}
	for _, name := range names {
		t, err := g.Join(name)
		if err != nil {
			cancel()
			return nil, err
		}
		sub, err := t.Subscribe()
		if err != nil {
			cancel()
			return nil, err
		}
		p.topics[name] = t
		go func() {
			for {
				m, err := sub.Next(ctx)
				if err != nil {
					return
				}
				if m.ReceivedFrom != r.h.ID() {
					p.received.Add(1)
					p.mu.Lock()
					p.what[fmt.Sprintf("%s from %s via %s", name, l.kindOf(m.GetFrom()), l.kindOf(m.ReceivedFrom))]++
					if !p.since.IsZero() {
						p.latest = max(p.latest, time.Since(p.since))
					}
					p.mu.Unlock()
				}
			}
		}()
	}
	return p, nil
}

// kindOf says who a peer is, for reports.
func (l *lab) kindOf(p peer.ID) string {
	if l.isHonest(p) {
		return "an honest node"
	}
	if d, err := did.DIDFromPeerID(p); err == nil {
		if a, ok := l.attackOf(d); ok {
			if a == "" {
				return "the attackers' apparatus"
			}
			return "a " + a + " attacker"
		}
	}
	return "an unknown peer " + p.ShortString()
}

func (p *plainPeer) close() {
	p.cancel()
	p.h.Close()
}

// attackNoCredential: a stock libp2p host with stock GossipSub connects to
// honest nodes of every zone, subscribes to every zone topic and publishes
// into them, reconnecting whenever it is dropped.
func attackNoCredential(ctx context.Context, l *lab, w time.Duration) (*attackRow, error) {
	row := newRow("no-credential")
	p, err := l.newPlainPeer(ctx, row.name)
	if err != nil {
		return nil, err
	}
	defer p.close()
	row.attacker(p.id.DID())
	targets := l.pick("", targetsPerAttacker)
	verified, conns := 0, 0
	deadline := time.Now().Add(w)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		for _, t := range targets {
			if p.h.Network().Connectedness(t.Host().ID()) != network.Connected {
				row.attempts++
				if l.connect(ctx, p.h, t.Host()) == nil {
					conns++
				}
			}
		}
		for name, t := range p.topics {
			if name == pubsub.ControlTopic(l.c.cfg.Mesh).String() {
				continue
			}
			row.attempts++
			_ = t.Publish(ctx, []byte("junk from a peer without a credential"))
		}
		verified = max(verified, l.verifiedBy(p.h.ID()))
		sleepCtx(ctx, 500*time.Millisecond)
	}
	got := int(p.received.Load())
	row.accepted += verified + got
	if verified > 0 {
		row.failures = append(row.failures, fmt.Sprintf("verified by %d honest nodes", verified))
	}
	if got > 0 {
		p.mu.Lock()
		row.failures = append(row.failures, fmt.Sprintf("received %d zone or control messages: %s", got, summarize(p.what)))
		p.mu.Unlock()
	}
	row.notes = append(row.notes, fmt.Sprintf("%d transport connections made; verified by %d; %d messages received (sealed or not)", conns, verified, got))
	return row, nil
}

// attackUntrustedIssuer: a complete ztmesh node whose credential comes from
// an issuer the mesh does not pin (it pins that issuer itself, so that it
// starts), subscribing and publishing in zone 0.
func attackUntrustedIssuer(ctx context.Context, l *lab, w time.Duration) (*attackRow, error) {
	row := newRow("untrusted-issuer")
	rogue, err := did.GenerateIdentity(rand.Reader)
	if err != nil {
		return nil, err
	}
	z := l.zones[0]
	spec := NodeSpec{Zones: []string{z}, Role: "vehicle", Trust: 1}
	m, err := l.startAttacker(ctx, row.name, spec, func(id *did.Identity) (string, error) {
		return did.Issue(rogue, id.DID(), did.Claims{Role: spec.Role, TrustScore: spec.Trust, Zones: spec.Zones, SoftwareVersion: "1.4.0"}, did.IssueOptions{})
	}, func(cfg *node.Config, _ *node.Options) { cfg.TrustIssuers = []string{rogue.DID().String()} })
	if err != nil {
		return nil, err
	}
	defer l.stop(m)
	row.attacker(m.ID.DID())
	return memberAttack(ctx, l, row, m, z, l.pick("", targetsPerAttacker), w)
}

// memberAttack has attacker node m connect to targets (again whenever
// dropped), subscribe to zone z and publish there every 100 ms for w; it
// counts plaintext read and verifications.
func memberAttack(ctx context.Context, l *lab, row *attackRow, m *Member, z string, targets []*Member, w time.Duration) (*attackRow, error) {
	var reads atomic.Int64
	sub, err := m.Mesh().Subscribe(z, attackChannel)
	if err != nil {
		return nil, err
	}
	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	go func() {
		defer sub.Cancel()
		for {
			d, err := sub.Next(sctx)
			if err != nil {
				return
			}
			if _, ok := l.honestByDID[d.Origin]; ok {
				reads.Add(1)
			}
		}
	}()
	verified := 0
	deadline := time.Now().Add(w)
	lastConnect := time.Time{}
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if time.Since(lastConnect) >= time.Second {
			lastConnect = time.Now()
			for _, t := range targets {
				if m.Host().Network().Connectedness(t.Host().ID()) != network.Connected {
					row.attempts++
					go l.connect(ctx, m.Host(), t.Host())
				}
			}
			verified = max(verified, l.verifiedBy(m.Host().ID()))
		}
		row.attempts++
		_, _ = m.Mesh().Publish(ctx, z, attackChannel, []byte("x: message from "+row.name))
		sleepCtx(ctx, 100*time.Millisecond)
	}
	verified = max(verified, l.verifiedBy(m.Host().ID()))
	row.accepted += verified + int(reads.Load())
	if verified > 0 {
		row.failures = append(row.failures, fmt.Sprintf("verified by %d honest nodes", verified))
	}
	if r := reads.Load(); r > 0 {
		row.failures = append(row.failures, fmt.Sprintf("read %d honest messages", r))
	}
	row.notes = append(row.notes, fmt.Sprintf("verified by %d of %d targets; read %d honest messages", verified, len(targets), reads.Load()))
	return row, nil
}

// handshakeAttack presents token (made for the raw host's own DID) to
// targets in the credential handshake, round after round for w.
func handshakeAttack(ctx context.Context, l *lab, row *attackRow, w time.Duration, token func(id *did.Identity) (string, error)) (*attackRow, error) {
	r, err := l.newRawHost()
	if err != nil {
		return nil, err
	}
	defer r.h.Close()
	l.addAttacker(r.id.DID(), row.name)
	row.attacker(r.id.DID())
	tok, err := token(r.id)
	if err != nil {
		return nil, err
	}
	targets := l.pick("", targetsPerAttacker)
	answers := map[string]int{}
	verified := 0
	deadline := time.Now().Add(w)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, t := range targets {
			wg.Go(func() {
				res, err := l.present(ctx, r, t.Host(), tok)
				mu.Lock()
				defer mu.Unlock()
				row.attempts++
				switch {
				case err != nil:
					answers["no answer: "+err.Error()]++
				case res.Accepted:
					answers["accepted"]++
				default:
					answers["refused: "+res.Reason]++
				}
			})
		}
		wg.Wait()
		verified = max(verified, l.verifiedBy(r.h.ID()))
		sleepCtx(ctx, 500*time.Millisecond)
	}
	row.accepted += verified + answers["accepted"]
	if verified > 0 || answers["accepted"] > 0 {
		row.failures = append(row.failures, fmt.Sprintf("handshake accepted %d times, verified by %d honest nodes", answers["accepted"], verified))
	}
	row.notes = append(row.notes, "answers: "+summarize(answers))
	return row, nil
}

func attackForged(ctx context.Context, l *lab, w time.Duration) (*attackRow, error) {
	row := newRow("forged-credential")
	stranger, err := did.GenerateIdentity(rand.Reader)
	if err != nil {
		return nil, err
	}
	return handshakeAttack(ctx, l, row, w, func(id *did.Identity) (string, error) {
		tok, err := did.Issue(stranger, id.DID(), did.Claims{Role: "vehicle", TrustScore: 1, Zones: l.zones, SoftwareVersion: "1.4.0"}, did.IssueOptions{})
		if err != nil {
			return "", err
		}
		return forgeCredential(tok, l.c.Issuer, stranger)
	})
}

func attackExpired(ctx context.Context, l *lab, w time.Duration) (*attackRow, error) {
	row := newRow("expired-credential")
	return handshakeAttack(ctx, l, row, w, func(id *did.Identity) (string, error) {
		// Issued by the real issuer, expired an hour ago (well past the
		// allowed clock skew).
		return l.c.Issue(id, NodeSpec{Zones: l.zones, Role: "vehicle", Trust: 1},
			did.IssueOptions{Now: time.Now().Add(-did.DefaultTTL - time.Hour)})
	})
}

// attackRevoked: a genuine member of zone 0 is revoked by a list published
// on the control topic; it keeps publishing, reading and reconnecting. An
// honest node is judged from the moment it logged that it applied the
// list: after that, listing the member as verified or delivering its
// messages is an acceptance; reading counts once every honest node had
// cut it off.
func attackRevoked(ctx context.Context, l *lab, w time.Duration) (*attackRow, error) {
	row := newRow("revoked")
	z := l.zones[0]
	m, err := l.startAttacker(ctx, row.name, NodeSpec{Zones: []string{z}, Role: "vehicle", Trust: l.sc.Trust}, nil, nil)
	if err != nil {
		return nil, err
	}
	defer l.stop(m)
	row.attacker(m.ID.DID())
	targets := append(l.pick(z, targetsPerAttacker/2), l.pick("", targetsPerAttacker/2)...)
	if n := l.connectMember(ctx, m, targets); n == 0 {
		return nil, fmt.Errorf("revoked: no target verified the member before its revocation")
	}
	var readAfter atomic.Int64
	var cut atomic.Int64 // unix nanos when every honest node had cut it off
	sub, err := m.Mesh().Subscribe(z, attackChannel)
	if err != nil {
		return nil, err
	}
	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	go func() {
		defer sub.Cancel()
		for {
			d, err := sub.Next(sctx)
			if err != nil {
				return
			}
			if c := cut.Load(); c != 0 && d.Time.UnixNano() > c {
				if _, ok := l.honestByDID[d.Origin]; ok {
					readAfter.Add(1)
				}
			}
		}
	}()
	for range 3 {
		_, _ = m.Mesh().Publish(ctx, z, attackChannel, []byte("ok: before revocation"))
		sleepCtx(ctx, 100*time.Millisecond)
	}
	list, err := did.SignRevocationList(l.c.Issuer, &did.RevocationList{Version: 1, Subjects: []did.DID{m.ID.DID()}}, time.Now())
	if err != nil {
		return nil, err
	}
	published := time.Now()
	if err := l.c.Nodes[0].Mesh().PublishRevocations(ctx, []byte(list)); err != nil {
		return nil, err
	}
	// applied is when each honest node logged the list applied.
	applied := func() map[string]time.Time {
		out := map[string]time.Time{}
		l.ev.mu.Lock()
		defer l.ev.mu.Unlock()
		for _, e := range l.ev.list {
			if e.typ == "revocations_applied" && !e.at.Before(published) && l.honestDIDs[e.node] {
				out[e.node] = e.at
			}
		}
		return out
	}
	// enforceGrace is how long after applying the list a node may take to
	// drop the member (it does so in the same call, under a lock).
	const enforceGrace = 200 * time.Millisecond
	verifiedAfter := map[string]bool{}
	check := func() {
		app := applied()
		for _, h := range l.c.Nodes {
			at, ok := app[h.ID.DID().String()]
			if !ok || time.Since(at) < enforceGrace {
				continue
			}
			if _, ok := h.Registry().Get(m.Host().ID()); ok {
				verifiedAfter[h.ID.DID().String()] = true
			}
		}
	}
	deadline := published.Add(w)
	lastConnect := time.Now()
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if cut.Load() == 0 && l.verifiedBy(m.Host().ID()) == 0 && l.connectedTo(m.Host().ID()) == 0 {
			cut.Store(time.Now().UnixNano())
		}
		if time.Since(lastConnect) >= 500*time.Millisecond {
			lastConnect = time.Now()
			for _, t := range targets {
				row.attempts++
				go l.connect(ctx, m.Host(), t.Host())
			}
		}
		row.attempts++
		_, _ = m.Mesh().Publish(ctx, z, attackChannel, []byte("x: published after revocation"))
		check()
		sleepCtx(ctx, 100*time.Millisecond)
	}
	sleepCtx(ctx, attackSettle)
	check()
	// Its messages delivered by honest nodes that had applied the list.
	app := applied()
	delivered := 0
	l.tr.mu.Lock()
	for _, f := range l.tr.foreign {
		if f.origin != m.ID.DID() || f.data[:min(2, len(f.data))] != "x:" {
			continue
		}
		if at, ok := app[l.c.Nodes[f.recv].ID.DID().String()]; ok && f.at.After(at.Add(enforceGrace)) {
			delivered++
		}
	}
	l.tr.mu.Unlock()
	row.accepted += len(verifiedAfter) + delivered + int(readAfter.Load())
	if len(verifiedAfter) > 0 {
		row.failures = append(row.failures, fmt.Sprintf("listed as verified by %d honest nodes after they applied its revocation", len(verifiedAfter)))
	}
	if delivered > 0 {
		row.failures = append(row.failures, fmt.Sprintf("%d of its messages delivered by honest nodes that had applied its revocation", delivered))
	}
	if r := readAfter.Load(); r > 0 {
		row.failures = append(row.failures, fmt.Sprintf("read %d honest messages published after it was cut off", r))
	}
	var last time.Duration
	for _, at := range app {
		last = max(last, at.Sub(published))
	}
	note := fmt.Sprintf("%d/%d honest nodes applied the list, the last %s after it was published on the control topic", len(app), len(l.c.Nodes), last.Round(time.Millisecond))
	if c := cut.Load(); c != 0 {
		note += fmt.Sprintf("; every honest node had dropped it %s after publication", time.Unix(0, c).Sub(published).Round(time.Millisecond))
	} else {
		note += fmt.Sprintf("; %d honest nodes still connected to it after %s", l.connectedTo(m.Host().ID()), w)
	}
	row.notes = append(row.notes, note)
	return row, nil
}

// replay injects captured honest messages of zone 0, as captured, into
// honest subscribers of zone 0, from a compromised member (see injector).
func replay(ctx context.Context, l *lab, row *attackRow, targets []*Member, msgs func() []*pb.Message, w time.Duration, every time.Duration) error {
	inj, err := l.newInjector()
	if err != nil {
		return err
	}
	defer inj.close()
	l.addAttacker(inj.id.DID(), row.name)
	row.attacker(inj.id.DID())
	deadline := time.Now().Add(w)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		batch := msgs()
		if len(batch) > 0 {
			for _, t := range targets {
				if err := inj.inject(ctx, l, t.Host(), batch); err == nil {
					row.attempts += len(batch)
					row.injected += len(batch)
				} else if err := inj.inject(ctx, l, t.Host(), batch); err == nil { // its stream was closed: once more on a new one
					row.attempts += len(batch)
					row.injected += len(batch)
				}
			}
		}
		sleepCtx(ctx, every)
	}
	return nil
}

func clones(cs []captured, n int) []*pb.Message {
	if len(cs) > n {
		cs = cs[len(cs)-n:]
	}
	out := make([]*pb.Message, len(cs))
	for i, c := range cs {
		out[i] = proto.CloneOf(c.msg)
	}
	return out
}

func attackReplayInside(ctx context.Context, l *lab, w time.Duration) (*attackRow, error) {
	row := newRow("replay-inside")
	s := l.spies[l.zones[0]]
	err := replay(ctx, l, row, l.replayTargets(), func() []*pb.Message { return clones(s.since(attackSeenTTL/3), 16) }, w, 500*time.Millisecond)
	if err != nil {
		return nil, err
	}
	row.notes = append(row.notes, fmt.Sprintf("genuine messages replayed at most %s after their first delivery (seen-cache TTL %s); a duplicate dropped before validation leaves no verdict", attackSeenTTL/3, attackSeenTTL))
	return row, nil
}

// attackReplayBeyond replays messages captured more than the seen-cache
// window (TTL, plus the minute between sweeps) earlier, but younger than
// the 2-minute time window, so that only the replay window can stop them.
func attackReplayBeyond(ctx context.Context, l *lab, w time.Duration) (*attackRow, error) {
	row := newRow("replay-beyond")
	s := l.spies[l.zones[0]]
	minAge := attackSeenTTL + time.Minute + 2*time.Second
	maxAge := 2*time.Minute - w - 5*time.Second
	var waited time.Duration
	for {
		var ok []captured
		for _, c := range s.history() {
			if a := time.Since(c.at); a >= minAge && a <= maxAge {
				ok = append(ok, c)
			}
		}
		if len(ok) > 0 || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Second)
		waited += time.Second
	}
	if waited > 0 {
		l.env.Printf("attacks: replay-beyond waited %s for captures older than %s", waited, minAge)
	}
	row.t0 = time.Now()
	var oldest, newest time.Duration
	err := replay(ctx, l, row, l.replayTargets(), func() []*pb.Message {
		var ok []captured
		for _, c := range s.history() {
			if a := time.Since(c.at); a >= minAge && a <= maxAge {
				ok = append(ok, c)
				oldest, newest = max(oldest, a), min(newest, a)
				if newest == 0 {
					newest = a
				}
			}
		}
		return clones(ok, 16)
	}, w, 500*time.Millisecond)
	if err != nil {
		return nil, err
	}
	row.notes = append(row.notes, fmt.Sprintf("genuine messages replayed %s to %s after capture (beyond the seen-cache TTL %s and its 1-minute sweep, within the 2-minute time window)",
		newest.Round(time.Second), oldest.Round(time.Second), attackSeenTTL))
	return row, nil
}

// attackTampered: ciphertext changed in flight. Honest messages are
// altered and forwarded under their origin's signature; a credentialed
// member's own messages are altered and signed again with its key, so that
// GossipSub's signature check passes and only the AEAD can refuse them.
func attackTampered(ctx context.Context, l *lab, w time.Duration) (*attackRow, error) {
	row := newRow("tampered")
	z := l.zones[0]
	s := l.spies[z]
	m, err := l.startAttacker(ctx, row.name, NodeSpec{Zones: []string{z}, Role: "vehicle", Trust: l.sc.Trust}, nil, nil)
	if err != nil {
		return nil, err
	}
	defer l.stop(m)
	row.attacker(m.ID.DID())
	// Connected to every target, so that each knows it as a verified
	// member (a relayed message of a member not yet announced would be
	// ignored as an unknown origin before the AEAD is tried).
	targets := l.pick(z, targetsPerAttacker)
	l.connectMember(ctx, m, targets)
	l.connect(ctx, m.Host(), s.m.Host())
	// Its genuine messages, until every target delivered one (it knows the
	// member and holds its sender key) and the spy captured one.
	var own captured
	for i := 0; i < 50 && ctx.Err() == nil; i++ {
		_, _ = m.Mesh().Publish(ctx, z, attackChannel, []byte(fmt.Sprintf("ok: genuine %d", i)))
		sleepCtx(ctx, 100*time.Millisecond)
		var ok bool
		own, ok = s.from(m.Host().ID())
		got := l.deliveriesFrom(m.ID.DID(), "ok:")
		if ok && !slices.ContainsFunc(targets, func(t *Member) bool { return got[l.honestPIDs[t.Host().ID()]] == 0 }) {
			break
		}
	}
	if own.msg == nil {
		return nil, fmt.Errorf("tampered: the spy captured none of the member's messages")
	}
	key := m.ID.LibP2PKey()
	var onPath, resigned int
	seq := uint64(time.Now().UnixNano())
	newSeqno := func() []byte {
		seq++
		return []byte{byte(seq >> 56), byte(seq >> 48), byte(seq >> 40), byte(seq >> 32), byte(seq >> 24), byte(seq >> 16), byte(seq >> 8), byte(seq)}
	}
	err = replay(ctx, l, row, targets, func() []*pb.Message {
		var out []*pb.Message
		for _, c := range clones(s.since(2*time.Second), 4) {
			if len(c.Data) <= envelopeHeader {
				continue
			}
			c.Data[envelopeHeader] ^= 0x01 // the first byte of ciphertext
			c.Seqno = newSeqno()           // a new message ID; the origin's signature no longer matches
			out = append(out, c)
			onPath++
		}
		for range 4 {
			c := proto.CloneOf(own.msg)
			c.Data[envelopeHeader] ^= 0x01
			c.Seqno = newSeqno()
			if signGossip(key, c) == nil {
				out = append(out, c)
				resigned++
			}
		}
		return out
	}, w, 300*time.Millisecond)
	if err != nil {
		return nil, err
	}
	n := len(targets)
	row.notes = append(row.notes, fmt.Sprintf("%d honest messages altered under their origin's signature (GossipSub's signature check drops them before any validator) and %d of the member's own altered and signed again, each sent to %d zone members",
		onPath, resigned, n))
	return row, nil
}

// attackZoneCrossing: a member of zone 0 whose own policy was loosened
// (a compromised node) subscribes to zone 1, publishes sealed messages
// into it, and asks zone 1's publishers for their sender keys.
func attackZoneCrossing(ctx context.Context, l *lab, w time.Duration) (*attackRow, error) {
	row := newRow("zone-crossing")
	za, zb := l.zones[0], l.zones[1]
	m, err := l.startAttacker(ctx, row.name, NodeSpec{Zones: []string{za}, Role: "vehicle", Trust: l.sc.Trust}, nil, nil)
	if err != nil {
		return nil, err
	}
	defer l.stop(m)
	row.attacker(m.ID.DID())
	if err := m.Policy().LoadModules(map[string]string{"open.rego": "package ztmesh.authz\n\nallow := true\n"}, 1, "compromised"); err != nil {
		return nil, err
	}
	targets := append(l.pick(zb, targetsPerAttacker/2), l.pick(za, targetsPerAttacker/2)...)
	l.connectMember(ctx, m, targets)
	var reads atomic.Int64
	sub, err := m.Mesh().Subscribe(zb, attackChannel)
	if err != nil {
		return nil, err
	}
	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	go func() {
		defer sub.Cancel()
		for {
			d, err := sub.Next(sctx)
			if err != nil {
				return
			}
			if _, ok := l.honestByDID[d.Origin]; ok { // not its own, delivered locally
				reads.Add(1)
			}
		}
	}()
	answers := map[string]int{}
	var keys int
	topic := l.zoneTopic(zb)
	deadline := time.Now().Add(w)
	lastAsk := time.Time{}
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if time.Since(lastAsk) >= time.Second {
			lastAsk = time.Now()
			// Ask each zone-1 publisher the spy has heard for the key of
			// its latest message.
			asked := 0
			for _, c := range l.spies[zb].since(5 * time.Second) {
				if asked == 4 {
					break
				}
				i, ok := l.honestPIDs[peerOf(c.msg)]
				if !ok {
					continue
				}
				id, ok := envelopeKeyID(c.msg.Data)
				if !ok {
					continue
				}
				row.attempts++
				asked++
				resp, err := l.requestKey(ctx, m.Host(), l.c.Nodes[i].Host(), topic, id)
				switch {
				case err != nil:
					answers["no answer"]++
				case resp.OK:
					keys++
					answers["key handed out"]++
				default:
					answers["key refused: "+resp.Reason]++
				}
			}
		}
		row.attempts++
		_, _ = m.Mesh().Publish(ctx, zb, attackChannel, []byte("x: written into another zone"))
		sleepCtx(ctx, 100*time.Millisecond)
	}
	row.accepted += keys + int(reads.Load())
	if keys > 0 {
		row.failures = append(row.failures, fmt.Sprintf("obtained %d sender keys of zone %s", keys, zb))
	}
	if r := reads.Load(); r > 0 {
		row.failures = append(row.failures, fmt.Sprintf("read %d messages of zone %s", r, zb))
	}
	row.stopped = append(row.stopped, "key requests: "+summarize(answers))
	row.notes = append(row.notes, fmt.Sprintf("member of %s, policy loosened on its own node; read %d messages of %s, obtained %d of its sender keys", za, reads.Load(), zb, keys))
	return row, nil
}

func peerOf(m *pb.Message) peer.ID { return peer.ID(m.GetFrom()) }

// attackJunk: a compromised member of zone 0 publishes garbage (not a
// sealed envelope) at the GossipSub level, 20 messages a second.
func attackJunk(ctx context.Context, l *lab, w time.Duration) (*attackRow, error) {
	row := newRow("junk")
	z := l.zones[0]
	m, err := l.startAttacker(ctx, row.name, NodeSpec{Zones: []string{z}, Role: "vehicle", Trust: l.sc.Trust}, nil, nil)
	if err != nil {
		return nil, err
	}
	defer l.stop(m)
	row.attacker(m.ID.DID())
	targets := l.pick(z, targetsPerAttacker)
	l.connectMember(ctx, m, targets)
	tp, err := m.Mesh().PubSub().Join(l.zoneTopic(z))
	if err != nil {
		return nil, err
	}
	defer tp.Close()
	junk := make([]byte, 200)
	start := time.Now()
	deadline := start.Add(w)
	var firstQ time.Time
	quarantined := map[string]bool{}
	for time.Now().Before(deadline) && ctx.Err() == nil {
		_, _ = rand.Read(junk)
		row.attempts++
		_ = tp.Publish(ctx, slices.Clone(junk))
		sleepCtx(ctx, 50*time.Millisecond)
	}
	// What it can still read: ask zone publishers for their current keys.
	keys := map[string]int{}
	for i, c := range l.spies[z].since(3 * time.Second) {
		if i == 4 {
			break
		}
		o, ok := l.honestPIDs[peerOf(c.msg)]
		id, ok2 := envelopeKeyID(c.msg.Data)
		if !ok || !ok2 {
			continue
		}
		resp, err := l.requestKey(ctx, m.Host(), l.c.Nodes[o].Host(), l.zoneTopic(z), id)
		switch {
		case err != nil:
			keys["no answer"]++
		case resp.OK:
			keys["handed out"]++
		default:
			keys["refused: "+resp.Reason]++
		}
	}
	l.ev.mu.Lock()
	for _, e := range l.ev.list {
		if e.typ == "peer_quarantined" && e.didOf == m.ID.DID().String() && l.honestDIDs[e.node] && !e.at.Before(start) {
			if firstQ.IsZero() || e.at.Before(firstQ) {
				firstQ = e.at
			}
			quarantined[e.node] = true
		}
	}
	l.ev.mu.Unlock()
	var scores []float64
	for _, t := range l.c.Nodes {
		if s, ok := t.Mesh().Scores()[m.Host().ID()]; ok {
			scores = append(scores, s)
		}
	}
	slices.Sort(scores)
	desc := "no honest node scored it"
	if len(scores) > 0 {
		desc = fmt.Sprintf("GossipSub score at %d honest peers: min %.0f, median %.0f", len(scores), scores[0], scores[len(scores)/2])
	}
	q := fmt.Sprintf("quarantined by %d honest nodes", len(quarantined))
	if !firstQ.IsZero() {
		q += fmt.Sprintf(", the first %s after its first junk", firstQ.Sub(start).Round(time.Millisecond))
	}
	row.notes = append(row.notes, q, desc, "its sender key requests afterwards: "+summarize(keys))
	if len(quarantined) == 0 && (len(scores) == 0 || scores[0] >= 0) {
		row.failures = append(row.failures, "the junk publisher was neither quarantined nor scored down")
	}
	return row, nil
}

// attackFlood: a credentialed member of zone 0 publishes valid sealed
// messages as fast as 1,000 a second.
func attackFlood(ctx context.Context, l *lab, w time.Duration) (*attackRow, error) {
	row := newRow("flood")
	z := l.zones[0]
	m, err := l.startAttacker(ctx, row.name, NodeSpec{Zones: []string{z}, Role: "vehicle", Trust: l.sc.Trust}, nil, nil)
	if err != nil {
		return nil, err
	}
	defer l.stop(m)
	row.attacker(m.ID.DID())
	l.connectMember(ctx, m, l.pick(z, targetsPerAttacker))
	const rate = 1000
	data := make([]byte, max(l.sc.MessageSize, 64))
	copy(data, "flood:")
	start := time.Now()
	deadline := start.Add(w)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) && ctx.Err() == nil {
		for range rate / 100 {
			if _, err := m.Mesh().Publish(ctx, z, attackChannel, data); err == nil {
				row.attempts++
			}
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
	took := time.Since(start)
	sleepCtx(ctx, attackSettle)
	per := l.deliveriesFrom(m.ID.DID(), "flood:")
	subs := len(l.byZone[z])
	total, most := 0, 0
	for _, n := range per {
		total += n
		most = max(most, n)
	}
	// Deliveries may go on during the settle time, the bucket refilling.
	allowed, limit := floodAllowance(took+attackSettle, l.sc.RateLimit)
	over := 0
	for _, n := range per {
		over += max(0, n-allowed)
	}
	row.accepted += over
	if allowed == math.MaxInt {
		row.stopped = append(row.stopped, fmt.Sprintf("not limited: %.0f flood messages a second delivered to each member", float64(total)/float64(max(1, len(per)))/took.Seconds()))
	}
	if len(per) > 0 {
		// Neither delivered nor given a verdict: dropped in a GossipSub
		// queue (the flooder's outbound queue per peer, or a receiver's
		// validation queue), which counts nothing.
		row.stopped = append(row.stopped, fmt.Sprintf("undelivered: %.0f%% of the flood never reached a member's Subscription", 100*(1-float64(total)/float64(len(per))/float64(max(1, row.attempts)))))
	}
	if over > 0 {
		row.failures = append(row.failures, fmt.Sprintf("%d flood messages delivered over the rate limit (%s)", over, limit))
	}
	row.notes = append(row.notes, fmt.Sprintf("published %d in %s (%.0f/s); delivered to %d of %d zone members, %.0f each on average (%.0f/s), at most %d; rate limit: %s",
		row.attempts, took.Round(10*time.Millisecond), float64(row.attempts)/took.Seconds(), len(per), subs, float64(total)/float64(max(1, len(per))),
		float64(total)/float64(max(1, len(per)))/took.Seconds(), most, limit))
	return row, nil
}

// attackSybil: sc.Attackers stock libp2p hosts with stock GossipSub
// connect to honest nodes all at once (3 each), subscribe everywhere and
// publish.
func attackSybil(ctx context.Context, l *lab, w time.Duration) (*attackRow, error) {
	row := newRow("sybil")
	n := l.sc.Attackers
	if n == 0 {
		n = 50
	}
	peers := make([]*plainPeer, n)
	for i := range peers {
		p, err := l.newPlainPeer(ctx, row.name)
		if err != nil {
			return nil, err
		}
		defer p.close()
		row.attacker(p.id.DID())
		peers[i] = p
	}
	// Long enough to see every Sybil dropped after the handshake's grace
	// period.
	w = max(w, time.Duration(l.c.Nodes[0].Config().AuthGrace)+3*time.Second)
	start := time.Now()
	var wg sync.WaitGroup
	var conns atomic.Int64
	for _, p := range peers {
		p.mu.Lock()
		p.since = start
		p.mu.Unlock()
		for _, t := range l.pick("", 3) {
			row.attempts++
			wg.Go(func() {
				if l.connect(ctx, p.h, t.Host()) == nil {
					conns.Add(1)
				}
			})
		}
	}
	wg.Wait()
	connected := time.Since(start)
	verified := 0
	var allGone time.Duration
	deadline := start.Add(w)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		for _, p := range peers {
			for name, t := range p.topics {
				if name != pubsub.ControlTopic(l.c.cfg.Mesh).String() {
					row.attempts++
					_ = t.Publish(ctx, []byte("sybil junk"))
				}
			}
		}
		still := 0
		for _, p := range peers {
			verified = max(verified, l.verifiedBy(p.h.ID()))
			still += l.connectedTo(p.h.ID())
		}
		if still == 0 && allGone == 0 {
			allGone = time.Since(start)
		}
		sleepCtx(ctx, time.Second)
	}
	var got int64
	var latest time.Duration
	what := map[string]int{}
	for _, p := range peers {
		got += p.received.Load()
		p.mu.Lock()
		latest = max(latest, p.latest)
		for k, v := range p.what {
			what[k] += v
		}
		p.mu.Unlock()
	}
	row.accepted += verified + int(got)
	if verified > 0 {
		row.failures = append(row.failures, fmt.Sprintf("a Sybil verified by %d honest nodes", verified))
	}
	if got > 0 {
		row.failures = append(row.failures, fmt.Sprintf("Sybils received %d messages, the last %s after they connected: %s", got, latest.Round(time.Millisecond), summarize(what)))
	}
	still := 0
	for _, p := range peers {
		still += l.connectedTo(p.h.ID())
	}
	gone := fmt.Sprintf("%d connections to honest nodes still open at the end", still)
	if allGone > 0 {
		gone = fmt.Sprintf("all dropped %s after connecting", allGone.Round(100*time.Millisecond))
	}
	row.notes = append(row.notes, fmt.Sprintf("%d uncredentialed peers, %d connections in %s; verified by %d; %d messages received (sealed or not); %s",
		n, conns.Load(), connected.Round(10*time.Millisecond), verified, got, gone))
	return row, nil
}

// floodAllowance is how many messages of one origin a subscriber may
// deliver in d under the nodes' rate limit (a token bucket per origin and
// topic), and the limit in words.
func floodAllowance(d time.Duration, nr node.RateLimit) (int, string) {
	r := pubsub.RateLimit{PerSecond: nr.PerSecond, Burst: nr.Burst}.WithDefaults()
	if r.Off() {
		return math.MaxInt, "none"
	}
	return r.Burst + int(math.Ceil(r.PerSecond*d.Seconds())), fmt.Sprintf("%.0f/s, bursts of %d", r.PerSecond, r.Burst)
}
