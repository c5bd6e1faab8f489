package simulations

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"maps"
	"math"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/node"
	"github.com/ztmesh/ztmesh/pubsub"
)

// The attack suite (issue 8, scenario 2): a mesh of honest nodes keeps
// publishing in its zones while each attack runs in turn against it. Each
// attack is one row of the table: how many attempts the attacker made, how
// many the victims accepted (it must be none), the honest delivery ratio
// while it ran, and what stopped it, as the victims' own logs and counters
// say. "Accepted" is always judged on the victims' side: a message counts
// if an honest subscriber's Subscription delivered it, a connection if an
// honest node's Registry listed the attacker as verified, a read if the
// attacker obtained a sender key or plaintext.

func init() { register("attacks", runAttacks) }

// attackChannel is the zone channel honest nodes publish on.
const attackChannel = "maps"

// strictFailures are the failures of a strict attack (none for the other
// rows): quarantined lists the honest nodes quarantined while it ran.
func strictFailures(name string, delivery float64, quarantined []string) []string {
	if !strictAttacks[name] {
		return nil
	}
	var out []string
	if len(quarantined) > 0 {
		out = append(out, fmt.Sprintf("%s: %d honest nodes quarantined (%s)", name, len(quarantined), strings.Join(quarantined, ", ")))
	}
	if math.IsNaN(delivery) || delivery < strictDelivery {
		out = append(out, fmt.Sprintf("%s: honest delivery %.4f, below %.2f", name, delivery, strictDelivery))
	}
	return out
}

// honestQuarantined returns the honest nodes (DIDs, sorted) that any honest
// node quarantined in [t0, t1], from their peer_quarantined events.
func (ev *atkEvents) honestQuarantined(l *lab, t0, t1 time.Time) []string {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	set := map[string]bool{}
	for _, e := range ev.list {
		if e.typ == "peer_quarantined" && !e.at.Before(t0) && !e.at.After(t1) && l.honestDIDs[e.node] && l.honestDIDs[e.didOf] {
			set[e.didOf] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// attackSettle is how long deliveries of a window are waited for after it.
const attackSettle = 2 * time.Second

// attackSeenTTL shortens GossipSub's seen-cache on the replay targets (the
// first targetsPerAttacker nodes of zone 0), so that a replay beyond it
// fits in the run; the cache is swept once a minute whatever its TTL, so
// "beyond" means TTL plus a minute. The other nodes keep the default: on a
// starved CPU, a short cache everywhere makes slow honest duplicates look
// like replays.
const attackSeenTTL = 10 * time.Second

// deliveryFloor: under these attacks, honest delivery may fall at most
// this far below the same mesh's delivery with no attack. The Sybil flood
// must leave it intact; the message flood must not collapse it.
var deliveryFloor = map[string]float64{"sybil": 0.05, "flood": 0.2}

// strictAttacks are the attacks of a malicious member (issue 15): each fails
// the scenario if the victims accepted anything, quarantined any honest
// node, or delivered less than strictDelivery of the honest messages. The
// other rows keep their own rules.
var strictAttacks = map[string]bool{
	"key-equivocation": true, "time-edge": true, "control-flood": true,
	"forged-addresses": true, "unauth-conn-flood": true,
	"sync-flood": true, "anti-entropy-junk": true,
}

// strictDelivery is the honest delivery a strict attack must leave.
const strictDelivery = 0.99

type attackFunc func(ctx context.Context, l *lab, w time.Duration) (*attackRow, error)

// attacks, in the order they run. replay-beyond runs last: it replays
// messages captured more than the seen-cache window earlier.
var attacks = []struct {
	name string
	run  attackFunc
}{
	{"no-credential", attackNoCredential},
	{"untrusted-issuer", attackUntrustedIssuer},
	{"forged-credential", attackForged},
	{"expired-credential", attackExpired},
	{"revoked", attackRevoked},
	{"replay-inside", attackReplayInside},
	{"tampered", attackTampered},
	{"zone-crossing", attackZoneCrossing},
	{"junk", attackJunk},
	{"flood", attackFlood},
	{"sybil", attackSybil},
	{"key-equivocation", attackKeyEquivocation},
	{"time-edge", attackTimeEdge},
	{"control-flood", attackControlFlood},
	{"forged-addresses", attackForgedAddresses},
	{"unauth-conn-flood", attackUnauthConnFlood},
	{"sync-flood", attackSyncFlood},
	{"anti-entropy-junk", attackAntiEntropyJunk},
	{"replay-beyond", attackReplayBeyond},
}

// attackRow is one line of the table.
type attackRow struct {
	name     string
	attempts int
	accepted int
	delivery float64
	stopped  []string
	notes    []string
	failures []string
	t0, t1   time.Time
	who      map[string]bool // the attackers' peer IDs and DIDs, for the event log
	injected int             // messages written into honest nodes' GossipSub by hand
	usage    usage           // the process's peak RSS and CPU while it ran
}

func newRow(name string) *attackRow {
	return &attackRow{name: name, t0: time.Now(), who: map[string]bool{}}
}

func (r *attackRow) attacker(d did.DID) {
	r.who[d.String()] = true
	if p, err := d.PeerID(); err == nil {
		r.who[p.String()] = true
	}
}

// lab is the mesh under attack and the attackers' bookkeeping.
type lab struct {
	env *Env
	sc  *Scenario
	c   *Cluster
	ev  *atkEvents
	rnd *mrand.Rand

	zones       []string
	byZone      map[string][]*Member
	honestPIDs  map[peer.ID]int
	honestDIDs  map[string]bool
	honestByDID map[did.DID]int
	tr          *traffic
	spies       map[string]*spy

	mu        sync.Mutex
	attackers map[did.DID]string // attacker DID -> attack ("" = the attackers' apparatus)
	extra     []*Member
	tweaks    sync.Map // attacker node index -> func(*node.Config, *node.Options)
	nextIdx   atomic.Int64
}

func (l *lab) configure(i int, cfg *node.Config, opts *node.Options) {
	if i < 1<<20 && i%l.sc.Zones == 0 && i/l.sc.Zones < targetsPerAttacker {
		opts.Test.SeenTTL = attackSeenTTL
	}
	cfg.RateLimit = l.sc.RateLimit
	if tw, ok := l.tweaks.Load(i); ok {
		tw.(func(*node.Config, *node.Options))(cfg, opts)
	}
}

func (l *lab) isHonest(p peer.ID) bool { _, ok := l.honestPIDs[p]; return ok }

func (l *lab) addAttacker(d did.DID, attack string) {
	l.mu.Lock()
	l.attackers[d] = attack
	l.mu.Unlock()
}

func (l *lab) attackOf(d did.DID) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	a, ok := l.attackers[d]
	return a, ok
}

// startAttacker starts a complete ztmesh node for an attack, with a
// credential from token (nil: a genuine one from the cluster's issuer for
// spec) and its Config adjusted by tweak.
func (l *lab) startAttacker(ctx context.Context, attack string, spec NodeSpec, token func(id *did.Identity) (string, error), tweak func(*node.Config, *node.Options)) (*Member, error) {
	id, err := did.GenerateIdentity(rand.Reader)
	if err != nil {
		return nil, err
	}
	var tok string
	if token != nil {
		tok, err = token(id)
	} else {
		tok, err = l.c.Issue(id, spec, did.IssueOptions{})
	}
	if err != nil {
		return nil, err
	}
	i := 1<<20 + int(l.nextIdx.Add(1))
	if tweak != nil {
		l.tweaks.Store(i, tweak)
	}
	l.addAttacker(id.DID(), attack)
	n, err := l.c.StartNode(ctx, i, id, tok)
	if err != nil {
		return nil, err
	}
	m := &Member{Node: n, Index: i, ID: id, Spec: spec, Token: tok}
	l.mu.Lock()
	l.extra = append(l.extra, m)
	l.mu.Unlock()
	return m, nil
}

// stop closes an attacker node now (its attack is over).
func (l *lab) stop(m *Member) {
	m.Close()
}

// replayTargets are the honest nodes whose seen-cache is attackSeenTTL.
func (l *lab) replayTargets() []*Member {
	var out []*Member
	for i, m := range l.c.Nodes {
		if i%l.sc.Zones == 0 && i/l.sc.Zones < targetsPerAttacker {
			out = append(out, m)
		}
	}
	return out
}

// pick returns k honest nodes of zone ("" = any zone), chosen by the seed.
func (l *lab) pick(zone string, k int) []*Member {
	pool := l.c.Nodes
	if zone != "" {
		pool = l.byZone[zone]
	}
	idx := l.rnd.Perm(len(pool))
	var out []*Member
	for _, i := range idx[:min(k, len(pool))] {
		out = append(out, pool[i])
	}
	return out
}

// verifiedBy counts the honest nodes whose registry lists p as verified.
func (l *lab) verifiedBy(p peer.ID) int {
	n := 0
	for _, m := range l.c.Nodes {
		if _, ok := m.Registry().Get(p); ok {
			n++
		}
	}
	return n
}

// connectedTo counts the honest nodes connected to p.
func (l *lab) connectedTo(p peer.ID) int {
	n := 0
	for _, m := range l.c.Nodes {
		if m.Host().Network().Connectedness(p) == network.Connected {
			n++
		}
	}
	return n
}

// connectMember connects an attacker node to targets and waits (up to 10 s)
// until they verified it; it returns how many did.
func (l *lab) connectMember(ctx context.Context, m *Member, targets []*Member) int {
	var wg sync.WaitGroup
	for _, t := range targets {
		wg.Go(func() { _ = l.connect(ctx, m.Host(), t.Host()) })
	}
	wg.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := 0
		for _, t := range targets {
			if _, ok := t.Registry().Get(m.Host().ID()); ok {
				n++
			}
		}
		if n == len(targets) || time.Now().After(deadline) || ctx.Err() != nil {
			return n
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// rejected sums the honest nodes' validator verdicts per reason.
func (l *lab) rejected() map[string]uint64 {
	out := map[string]uint64{}
	for _, m := range l.c.Nodes {
		for k, v := range m.Mesh().Stats().Rejected() {
			out[k] += v
		}
	}
	return out
}

func diff(after, before map[string]uint64) map[string]int {
	out := map[string]int{}
	for k, v := range after {
		if d := int(v - before[k]); d > 0 {
			out["validator: "+k] = d
		}
	}
	return out
}

// traffic is the honest load and what honest subscribers received.
type traffic struct {
	mu       sync.Mutex
	pubs     []pubRec
	got      map[uint64]int32
	seen     []map[uint64]bool
	dups     []time.Time
	foreign  []foreignRec
	zoneSize []int
	pubErrs  atomic.Int64
}

type pubRec struct {
	at  time.Time
	key uint64
}

// foreignRec is a delivery to an honest subscriber of anything but an
// honest node's well-formed message.
type foreignRec struct {
	at     time.Time
	origin did.DID
	recv   int
	data   string // its first bytes
}

func honestKey(origin int, n uint64) uint64 { return uint64(origin)<<40 | n }

func (l *lab) record(recv int, d *pubsub.Delivery) {
	tr := l.tr
	if j, ok := l.honestByDID[d.Origin]; ok && len(d.Data) >= 13 && d.Data[0] == 'H' && int(binary.BigEndian.Uint32(d.Data[1:5])) == j {
		if j == recv {
			return // its own publication
		}
		k := honestKey(j, binary.BigEndian.Uint64(d.Data[5:13]))
		tr.mu.Lock()
		if tr.seen[recv][k] {
			tr.dups = append(tr.dups, time.Now())
		} else {
			tr.seen[recv][k] = true
			tr.got[k]++
		}
		tr.mu.Unlock()
		return
	}
	head := d.Data[:min(len(d.Data), 24)]
	tr.mu.Lock()
	tr.foreign = append(tr.foreign, foreignRec{at: time.Now(), origin: d.Origin, recv: recv, data: string(head)})
	tr.mu.Unlock()
}

// startTraffic subscribes every honest node to its zone's channel and has
// each publish at rate per second until ctx ends.
func (l *lab) startTraffic(ctx context.Context, rate float64, size int) error {
	n := len(l.c.Nodes)
	l.tr = &traffic{got: map[uint64]int32{}, seen: make([]map[uint64]bool, n), zoneSize: make([]int, n)}
	for i, m := range l.c.Nodes {
		l.tr.seen[i] = map[uint64]bool{}
		l.tr.zoneSize[i] = len(l.byZone[m.Spec.Zones[0]])
		sub, err := m.Mesh().Subscribe(m.Spec.Zones[0], attackChannel)
		if err != nil {
			return err
		}
		go func() {
			defer sub.Cancel()
			for {
				d, err := sub.Next(ctx)
				if err != nil {
					return
				}
				l.record(i, d)
			}
		}()
	}
	time.Sleep(2 * time.Second) // subscriptions spread and meshes graft
	every := time.Duration(float64(time.Second) / rate)
	for i, m := range l.c.Nodes {
		first := time.Duration(l.rnd.Int64N(int64(every)))
		go func() {
			data := make([]byte, max(size, 13))
			data[0] = 'H'
			binary.BigEndian.PutUint32(data[1:5], uint32(i))
			t := time.NewTimer(first)
			defer t.Stop()
			for seq := uint64(1); ; seq++ {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				t.Reset(every)
				binary.BigEndian.PutUint64(data[5:13], seq)
				at := time.Now()
				if _, err := m.Mesh().Publish(ctx, m.Spec.Zones[0], attackChannel, data); err != nil {
					l.tr.pubErrs.Add(1)
					continue
				}
				l.tr.mu.Lock()
				l.tr.pubs = append(l.tr.pubs, pubRec{at: at, key: honestKey(i, seq)})
				l.tr.mu.Unlock()
			}
		}()
	}
	return nil
}

// delivery is the honest delivery ratio of messages published in [t0, t1):
// deliveries to the other honest members of the origin's zone over how
// many there should have been.
func (l *lab) delivery(t0, t1 time.Time) (ratio float64, sent int) {
	tr := l.tr
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var want, got int64
	for _, p := range tr.pubs {
		if p.at.Before(t0) || !p.at.Before(t1) {
			continue
		}
		sent++
		want += int64(tr.zoneSize[p.key>>40] - 1)
		got += int64(tr.got[p.key])
	}
	if want == 0 {
		return math.NaN(), sent
	}
	return float64(got) / float64(want), sent
}

// acceptedIn counts what honest subscribers accepted in [t0, t1] that the
// attack named may have caused: messages of its attackers (except the
// well-formed ones they sent before attacking, marked "ok:", and a flood's,
// judged by the flood itself), honest messages delivered twice (replays),
// and deliveries from honest origins that carry no honest payload (forged
// or tampered). It returns the count and a description.
func (l *lab) acceptedIn(attack string, t0, t1 time.Time) (int, []string) {
	tr := l.tr
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var fromAttacker, dups, malformed int
	for _, f := range tr.foreign {
		if a, ok := l.attackOf(f.origin); ok {
			if a == attack && a != "revoked" && !strings.HasPrefix(f.data, "ok:") && !strings.HasPrefix(f.data, "flood:") {
				fromAttacker++
			}
			continue
		}
		if !f.at.Before(t0) && !f.at.After(t1) {
			malformed++
		}
	}
	for _, d := range tr.dups {
		if !d.Before(t0) && !d.After(t1) {
			dups++
		}
	}
	var why []string
	if fromAttacker > 0 {
		why = append(why, fmt.Sprintf("%d deliveries of the attacker's messages", fromAttacker))
	}
	if dups > 0 {
		why = append(why, fmt.Sprintf("%d honest messages delivered twice", dups))
	}
	if malformed > 0 {
		why = append(why, fmt.Sprintf("%d deliveries of altered or forged messages", malformed))
	}
	return fromAttacker + dups + malformed, why
}

// deliveriesFrom counts, per honest receiver, the messages of origin
// whose payload starts with prefix delivered to it.
func (l *lab) deliveriesFrom(origin did.DID, prefix string) map[int]int {
	tr := l.tr
	tr.mu.Lock()
	defer tr.mu.Unlock()
	out := map[int]int{}
	for _, f := range tr.foreign {
		if f.origin == origin && strings.HasPrefix(f.data, prefix) {
			out[f.recv]++
		}
	}
	return out
}

func runAttacks(ctx context.Context, env *Env, sc *Scenario) ([]*Section, error) {
	var secs []*Section
	for _, n := range sc.Sizes(env.Quick) {
		s, err := runAttackSuite(ctx, env, sc, n)
		if err != nil {
			return secs, err
		}
		secs = append(secs, s)
	}
	return secs, nil
}

func selectedAttacks(sc *Scenario) ([]int, error) {
	if len(sc.Attacks) == 0 {
		out := make([]int, len(attacks))
		for i := range out {
			out[i] = i
		}
		return out, nil
	}
	var out []int
	for _, name := range sc.Attacks {
		i := slices.IndexFunc(attacks[:], func(a struct {
			name string
			run  attackFunc
		}) bool {
			return a.name == name
		})
		if i < 0 {
			var known []string
			for _, a := range attacks {
				known = append(known, a.name)
			}
			return nil, fmt.Errorf("attacks: unknown attack %q (known: %s)", name, strings.Join(known, ", "))
		}
		out = append(out, i)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func runAttackSuite(ctx context.Context, env *Env, sc *Scenario, n int) (*Section, error) {
	chosen, err := selectedAttacks(sc)
	if err != nil {
		return nil, err
	}
	if sc.Zones < 2 {
		return nil, fmt.Errorf("attacks: zone-crossing needs at least 2 zones, have %d", sc.Zones)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := sc.RunFor(env.Quick)
	ev := &atkEvents{}
	var next slog.Handler
	if env.Logger != nil {
		next = env.Logger.Handler()
	}
	l := &lab{env: env, sc: sc, ev: ev, rnd: mrand.New(mrand.NewPCG(sc.Seed, sc.Seed^0x5eed)),
		attackers: map[did.DID]string{}, spies: map[string]*spy{}}
	rate := sc.Rate
	if rate == 0 {
		rate = 1
	}
	size := max(sc.MessageSize, 64)
	// The comparison on plain GossipSub first, alone on the CPU (the
	// standard set only: --quick checks the table without it).
	var plain *plainResult
	if !env.Quick {
		env.Printf("attacks: the same load and attackers on plain GossipSub")
		l.zones = Zones(sc.Zones)
		if plain, err = l.runPlain(ctx, n, w, rate, size); err != nil {
			return nil, fmt.Errorf("plain GossipSub comparison: %w", err)
		}
		env.Printf("attacks: on plain GossipSub an outsider read %.2f of %d zone messages, %d Sybils %.2f",
			plain.outsiderRead, plain.honestSent, plain.sybils, plain.sybilRead)
	}
	specs := sc.Specs(n)
	start := time.Now()
	env.Printf("attacks: starting %d honest nodes in %d zones", n, sc.Zones)
	c, err := NewCluster(ctx, ClusterConfig{Nodes: specs, Link: sc.Link.Link(), Logger: slog.New(&atkLogHandler{ev: ev, next: next}), Configure: l.configure})
	if err != nil {
		return nil, err
	}
	l.c = c
	defer func() {
		cancel()
		l.mu.Lock()
		extra := l.extra
		l.mu.Unlock()
		var wg sync.WaitGroup
		for _, m := range extra {
			wg.Go(func() { m.Close() })
		}
		wg.Wait()
		c.Close()
	}()
	if err := c.Wire(ctx, sc.Degree, sc.Cross, sc.Seed); err != nil {
		return nil, err
	}
	// Wire links only the pairs it connects, and mocknet cannot dial an
	// unlinked peer: link every other pair too (the injectors of the
	// attacks below dial across zones).
	ids := make([]peer.ID, len(c.Nodes))
	for i, m := range c.Nodes {
		ids[i] = m.Host().ID()
	}
	if err := linkZoneMembers(c.Net, ids, make([]string, len(ids))); err != nil {
		return nil, err
	}
	actx, acancel := context.WithTimeout(ctx, 3*time.Minute)
	err = c.AwaitVerified(actx)
	acancel()
	if err != nil {
		return nil, err
	}
	setup := time.Since(start)
	env.Printf("attacks: %d nodes up and verified in %s", n, setup.Round(100*time.Millisecond))

	l.zones = Zones(sc.Zones)
	l.byZone = map[string][]*Member{}
	l.honestPIDs = map[peer.ID]int{}
	l.honestDIDs = map[string]bool{}
	l.honestByDID = map[did.DID]int{}
	for i, m := range c.Nodes {
		l.byZone[m.Spec.Zones[0]] = append(l.byZone[m.Spec.Zones[0]], m)
		l.honestPIDs[m.Host().ID()] = i
		l.honestDIDs[m.ID.DID().String()] = true
		l.honestByDID[m.ID.DID()] = i
	}
	for _, z := range l.zones[:2] {
		s, err := l.newSpy(ctx, z)
		if err != nil {
			return nil, fmt.Errorf("spy in %s: %w", z, err)
		}
		l.connectMember(ctx, s.m, l.pick(z, max(sc.Degree, 3)))
		l.spies[z] = s
	}
	if err := l.startTraffic(ctx, rate, size); err != nil {
		return nil, err
	}

	sec := &Section{Title: fmt.Sprintf("Attacks on a %d-node mesh", n)}
	tbl := &Table{Header: []string{"attack", "attempts", "accepted", "honest delivery", "honest quarantined", "RSS / CPU attack vs idle", "stopped by", "measured", "plain GossipSub"}}

	// Warm-up: every node fetches the sender keys of its zone's
	// publishers; wait until delivery is steady (messages of the last
	// second but two, given two to arrive), at most two minutes.
	warm := time.Now()
	for time.Since(warm) < 2*time.Minute && ctx.Err() == nil {
		sleepCtx(ctx, time.Second)
		if r, sent := l.delivery(time.Now().Add(-3*time.Second), time.Now().Add(-2*time.Second)); sent > 0 && r >= 0.99 && time.Since(warm) >= 3*time.Second {
			break
		}
	}
	warmup := time.Since(warm)
	env.Printf("attacks: honest traffic steady after %s", warmup.Round(100*time.Millisecond))
	// The same mesh with no attack, as the reference for "delivery held".
	t0 := time.Now()
	idleUse := measureUsage()
	sleepCtx(ctx, w)
	idle := idleUse.stop()
	t1 := time.Now()
	sleepCtx(ctx, attackSettle)
	base, sent := l.delivery(t0, t1)
	baseQ := l.ev.honestQuarantined(l, t0, t1.Add(attackSettle))
	tbl.Add("none (reference)", 0, 0, fmt.Sprintf("%.4f", base), len(baseQ), "idle "+idle.String(), "", fmt.Sprintf("%d honest messages in %s", sent, w), "")
	env.Printf("attacks: reference window: %s", idle)
	env.Printf("attacks: reference window: honest delivery %.4f over %d messages", base, sent)
	if sent == 0 || base < 0.9 {
		sec.Failures = append(sec.Failures, fmt.Sprintf("honest delivery with no attack is %.3f (%d messages): the mesh is not healthy enough to judge attacks", base, sent))
	}

	for _, i := range chosen {
		a := attacks[i]
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		env.Printf("attacks: %s", a.name)
		before := l.rejected()
		use := measureUsage()
		row, err := a.run(ctx, l, w)
		if err != nil {
			use.stop()
			return nil, fmt.Errorf("attack %s: %w", a.name, err)
		}
		row.t1 = time.Now()
		row.usage = use.stop()
		sleepCtx(ctx, attackSettle)
		row.delivery, _ = l.delivery(row.t0, row.t1)
		quarantined := l.ev.honestQuarantined(l, row.t0, row.t1.Add(attackSettle))
		acc, why := l.acceptedIn(a.name, row.t0, row.t1.Add(attackSettle))
		row.accepted += acc
		row.failures = append(row.failures, why...)
		verdicts := diff(l.rejected(), before)
		if row.injected > 0 {
			n := row.injected
			for _, v := range verdicts {
				n -= v
			}
			if n > 0 {
				// GossipSub drops a message it has seen, or whose origin
				// signature fails, or from a graylisted peer, before any
				// validator runs: no verdict is counted for it.
				verdicts["dropped by GossipSub before validation (seen-cache, origin signature or graylisted sender)"] = n
			}
		}
		stops := summarize(verdicts)
		if ev := summarize(l.ev.about(l, row.who, row.t0)); ev != "" {
			stops = strings.TrimPrefix(stops+"; "+ev, "; ")
		}
		row.stopped = append(row.stopped, stops)
		if row.attempts == 0 {
			// An attack that made no attempt proves nothing: its 0
			// accepted must not pass for a defence.
			sec.Failures = append(sec.Failures, a.name+": no attempts made, so 0 accepted shows nothing")
		}
		if row.accepted > 0 {
			sec.Failures = append(sec.Failures, fmt.Sprintf("%s: %d accepted (%s)", a.name, row.accepted, strings.Join(row.failures, "; ")))
		} else {
			for _, f := range row.failures {
				sec.Failures = append(sec.Failures, a.name+": "+f)
			}
		}
		// The issue demands that honest delivery hold under the Sybil flood,
		// and counts a collapse under the message flood as the flood
		// succeeding; under the other attacks it is reported.
		if floor, ok := deliveryFloor[a.name]; ok && !math.IsNaN(base) && (math.IsNaN(row.delivery) || row.delivery < base-floor) {
			sec.Failures = append(sec.Failures, fmt.Sprintf("%s: honest delivery fell to %.3f (%.3f with no attack)", a.name, row.delivery, base))
		}
		sec.Failures = append(sec.Failures, strictFailures(a.name, row.delivery, quarantined)...)
		tbl.Add(a.name, row.attempts, row.accepted, fmt.Sprintf("%.4f", row.delivery), len(quarantined), row.usage.against(idle),
			strings.Join(nonEmpty(row.stopped), "; "), strings.Join(row.notes, "; "), plain.column(a.name))
		env.Printf("attacks: %s: %d attempts, %d accepted, honest delivery %.4f; %s", a.name, row.attempts, row.accepted, row.delivery,
			strings.Join(nonEmpty(row.stopped), "; "))
	}
	sec.Tables = append(sec.Tables, tbl)
	sec.Text = append(sec.Text,
		fmt.Sprintf("%d honest nodes in %d zones (%s links, degree %d, %d cross links), each publishing %.2g sealed %d-byte messages a second on its zone's %q channel throughout; set up and verified in %s, honest delivery steady %s later (sender keys fetched). Each attack ran for %s while they did; honest delivery is over the messages published during it, waited for %s more. Attackers are extra peers, not counted as honest.",
			n, sc.Zones, time.Duration(sc.Link.Latency), sc.Degree, sc.Cross, rate, size, attackChannel, setup.Round(100*time.Millisecond), warmup.Round(100*time.Millisecond), w, attackSettle),
		"Honest quarantined counts the honest nodes that any honest node quarantined while the attack ran or was settling (from their peer_quarantined security events); an attacker that gets an honest node quarantined has won even with nothing accepted. RSS / CPU is the simulation process's peak resident set and its CPU time over wall time (cores) during the attack, next to the same figures over the reference window with no attack (idle). The suite runs in one process, so these are the whole simulated mesh's figures (every honest node, every attacker and mocknet together), not one daemon's.",
		fmt.Sprintf("The attacks of a malicious member (%s) fail the scenario if anything was accepted, any honest node was quarantined, or honest delivery fell below %.2f; the others keep the rules above.", strings.Join(slices.Sorted(maps.Keys(strictAttacks)), ", "), strictDelivery),
		"Accepted is judged on the victims' side: an attacker's message counts if any honest subscriber's Subscription delivered it (so do honest messages delivered twice, and deliveries from honest origins whose payload was altered); a connection counts if any honest node's Registry listed the attacker as verified; a read counts if the attacker obtained plaintext or a sender key. \"Stopped by\" lists the honest nodes' validator verdicts during the attack (all reasons, so background noise such as a key not yet fetched shows too) and the security events they logged about the attacker's peers.",
		fmt.Sprintf("The %d replay targets (zone %s) run with a GossipSub seen-cache TTL of %s (default 2 min), so that a replay beyond it fits in the run; GossipSub sweeps the cache once a minute whatever the TTL. Every other setting is the default.", len(l.replayTargets()), l.zones[0], attackSeenTTL),
	)
	if plain != nil {
		sec.Text = append(sec.Text, fmt.Sprintf("The plain GossipSub column is the same topology and load on go-libp2p-pubsub with default settings, measured in this run before the ztmesh mesh started: one outsider connected to %d nodes and publishing, then %d Sybils with 3 connections each, listening for %s each.", targetsPerAttacker, plain.sybils, w))
	} else {
		sec.Text = append(sec.Text, "The plain GossipSub comparison runs in the standard set only.")
	}
	if errs := l.tr.pubErrs.Load(); errs > 0 {
		sec.Text = append(sec.Text, fmt.Sprintf("%d honest publications failed during the run.", errs))
	}
	return sec, nil
}

func nonEmpty(ss []string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// Attack implementations follow. Each runs for about w and returns its
// row; the runner adds delivery, victim-side acceptances and verdicts.
