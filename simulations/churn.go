package simulations

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"time"

	ps "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/ztmesh/ztmesh/crdt"
	"github.com/ztmesh/ztmesh/node"
)

// The churn scenario: nodes leave and rejoin (the same identity and
// credential, a fresh process) while zone traffic flows, against plain
// GossipSub under the same schedule; then one zone is split in two, both
// halves write shared state, and the split heals.

func init() { register("churn", runChurn) }

const (
	// zoneLoadChannel is the zone channel scenario traffic uses.
	zoneLoadChannel = "sim"
	// churnDowntime is how long a node that leaves stays away.
	churnDowntime = 5 * time.Second
	// zoneLoadDrain is how long receivers get after the last publication.
	zoneLoadDrain = 3 * time.Second
	// zoneLoadWarmup is traffic before the measured run (at most half the
	// run), not counted: the
	// first message of each sender makes every receiver pull its sender
	// key (a hybrid KEM exchange), a one-time cost of a new mesh.
	zoneLoadWarmup = 10 * time.Second
	// splitState is the LWW map both halves of a split zone write.
	splitState = "sim-split"
	// healTimeout bounds the wait for state convergence after a heal:
	// anti-entropy runs every 30 s per node, so a replica that no healed
	// connection reaches directly may need one or two rounds.
	healTimeout = 90 * time.Second
)

// --- Zone load, shared with the hardening scenario. -------------------------

// zoneEndpoint is one node's handle on its zone channel.
type zoneEndpoint interface {
	publish(ctx context.Context, data []byte) error
	next(ctx context.Context) ([]byte, error)
	close()
}

// ztmeshEndpoint is a ztmesh node's zone channel.
type ztmeshEndpoint struct {
	n    *node.Node
	zone string
	sub  interface {
		Cancel()
	}
	nextf func(ctx context.Context) ([]byte, error)
}

func newZtmeshEndpoint(n *node.Node, zone string) (*ztmeshEndpoint, error) {
	sub, err := n.Mesh().Subscribe(zone, zoneLoadChannel)
	if err != nil {
		return nil, err
	}
	return &ztmeshEndpoint{n: n, zone: zone, sub: sub, nextf: func(ctx context.Context) ([]byte, error) {
		d, err := sub.Next(ctx)
		if err != nil {
			return nil, err
		}
		return d.Data, nil
	}}, nil
}

func (e *ztmeshEndpoint) publish(ctx context.Context, data []byte) error {
	_, err := e.n.Mesh().Publish(ctx, e.zone, zoneLoadChannel, data)
	return err
}
func (e *ztmeshEndpoint) next(ctx context.Context) ([]byte, error) { return e.nextf(ctx) }
func (e *ztmeshEndpoint) close()                                   { e.sub.Cancel() }

// plainZoneEndpoint is a plain GossipSub node's topic for a zone.
type plainZoneEndpoint struct {
	t   *ps.Topic
	sub *ps.Subscription
}

func newPlainZoneEndpoint(g *ps.PubSub, zone string) (*plainZoneEndpoint, error) {
	t, err := g.Join("zone/" + zone + "/" + zoneLoadChannel)
	if err != nil {
		return nil, err
	}
	sub, err := t.Subscribe()
	if err != nil {
		return nil, err
	}
	return &plainZoneEndpoint{t: t, sub: sub}, nil
}

func (e *plainZoneEndpoint) publish(ctx context.Context, data []byte) error {
	return e.t.Publish(ctx, data)
}

func (e *plainZoneEndpoint) next(ctx context.Context) ([]byte, error) {
	m, err := e.sub.Next(ctx)
	if err != nil {
		return nil, err
	}
	return m.Data, nil
}
func (e *plainZoneEndpoint) close() { e.sub.Cancel() }

// zoneLoad drives zone traffic among a set of nodes and accounts for what
// honest nodes receive. A message counts once per receiver that was up,
// honest and in the sender's zone when it was published.
type zoneLoad struct {
	size   int
	rate   float64
	bucket time.Duration

	mu     sync.Mutex
	start  time.Time
	nodes  []*zoneLoadNode
	msgs   map[uint64]*zoneLoadMsg
	exp    []int // expected deliveries per bucket of publication time
	got    []int
	lat    []zoneLoadSample
	recv   sync.WaitGroup
	pubErr int
	cores  float64 // CPU the whole process used during the last run, in cores
}

// zoneLoadSample is one delivery's latency, by the bucket it was published in.
type zoneLoadSample struct {
	bucket int
	d      time.Duration
}

type zoneLoadNode struct {
	zone   string
	honest bool
	ep     zoneEndpoint
	stop   context.CancelFunc
}

type zoneLoadMsg struct {
	bucket int
	expect map[int]bool
}

// newZoneLoad prepares traffic for nodes in zones; honest[i] false marks an
// attacker (it neither publishes nor counts as a receiver).
func newZoneLoad(zones []string, honest []bool, size int, rate float64) *zoneLoad {
	if rate <= 0 {
		rate = 1
	}
	l := &zoneLoad{size: max(size, 16), rate: rate, bucket: time.Second, msgs: map[uint64]*zoneLoadMsg{}}
	for i, z := range zones {
		l.nodes = append(l.nodes, &zoneLoadNode{zone: z, honest: honest[i]})
	}
	return l
}

// set puts node i up on ep (nil: down) and reads its deliveries.
func (l *zoneLoad) set(ctx context.Context, i int, ep zoneEndpoint) {
	l.mu.Lock()
	n := l.nodes[i]
	old, stop := n.ep, n.stop
	n.ep, n.stop = ep, nil
	var rctx context.Context
	if ep != nil {
		rctx, n.stop = context.WithCancel(ctx)
	}
	l.mu.Unlock()
	if stop != nil {
		stop()
	}
	if old != nil {
		old.close()
	}
	if ep == nil {
		return
	}
	l.recv.Go(func() {
		for {
			data, err := ep.next(rctx)
			if err != nil {
				return
			}
			l.received(i, data, time.Now())
		}
	})
}

func (l *zoneLoad) endpoint(i int) zoneEndpoint {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.nodes[i].ep
}

func (l *zoneLoad) received(i int, data []byte, now time.Time) {
	if len(data) < 16 {
		return
	}
	id := binary.BigEndian.Uint64(data)
	sent := time.Unix(0, int64(binary.BigEndian.Uint64(data[8:])))
	l.mu.Lock()
	m := l.msgs[id]
	if m != nil && m.expect[i] {
		delete(m.expect, i)
		l.got[m.bucket]++
		l.lat = append(l.lat, zoneLoadSample{m.bucket, now.Sub(sent)})
	}
	l.mu.Unlock()
}

// window returns the delivery ratio of the messages published between
// from and to after the start, and their sorted latencies.
func (l *zoneLoad) window(from, to time.Duration) (ratio float64, lat []time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b0, b1 := int(from/l.bucket), int((to+l.bucket-1)/l.bucket)
	exp, got := 0, 0
	for b := max(0, b0); b < min(b1, len(l.exp)); b++ {
		exp += l.exp[b]
		got += l.got[b]
	}
	for _, s := range l.lat {
		if s.bucket >= b0 && s.bucket < b1 {
			lat = append(lat, s.d)
		}
	}
	slices.Sort(lat)
	if exp == 0 {
		return math.NaN(), lat
	}
	return float64(got) / float64(exp), lat
}

// run publishes from every honest node that is up, rate times a second
// each, for d; then waits zoneLoadDrain for the last messages. Each run starts
// the accounting afresh.
func (l *zoneLoad) run(ctx context.Context, d time.Duration, seed uint64) {
	l.mu.Lock()
	l.start = time.Now()
	buckets := int(d/l.bucket) + 1
	l.exp, l.got = make([]int, buckets), make([]int, buckets)
	l.msgs, l.lat, l.pubErr = map[uint64]*zoneLoadMsg{}, nil, 0
	l.mu.Unlock()
	u0 := ReadUsage()
	defer func() {
		cores := ReadUsage().CoresSince(u0)
		l.mu.Lock()
		l.cores = cores
		l.mu.Unlock()
	}()
	pctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	r := mrand.New(mrand.NewPCG(seed, 7))
	every := time.Duration(float64(time.Second) / l.rate)
	var wg sync.WaitGroup
	for i, n := range l.nodes {
		if !n.honest {
			continue
		}
		phase := time.Duration(r.Int64N(int64(every)))
		wg.Go(func() {
			t := time.NewTimer(phase)
			defer t.Stop()
			for seq := uint32(1); ; seq++ {
				select {
				case <-pctx.Done():
					return
				case <-t.C:
				}
				t.Reset(every)
				l.publishOne(pctx, i, seq)
			}
		})
	}
	wg.Wait()
	select {
	case <-ctx.Done():
	case <-time.After(zoneLoadDrain):
	}
}

func (l *zoneLoad) publishOne(ctx context.Context, i int, seq uint32) {
	now := time.Now()
	l.mu.Lock()
	self := l.nodes[i]
	ep := self.ep
	b := int(now.Sub(l.start) / l.bucket)
	if ep == nil || b >= len(l.exp) {
		l.mu.Unlock()
		return
	}
	id := uint64(i)<<32 | uint64(seq)
	m := &zoneLoadMsg{bucket: b, expect: map[int]bool{}}
	for j, n := range l.nodes {
		if j != i && n.honest && n.ep != nil && n.zone == self.zone {
			m.expect[j] = true
		}
	}
	l.msgs[id] = m
	l.exp[b] += len(m.expect)
	l.mu.Unlock()
	data := make([]byte, l.size)
	binary.BigEndian.PutUint64(data, id)
	binary.BigEndian.PutUint64(data[8:], uint64(now.UnixNano()))
	if err := ep.publish(ctx, data); err != nil {
		l.mu.Lock()
		l.exp[b] -= len(m.expect)
		delete(l.msgs, id)
		if ctx.Err() == nil {
			l.pubErr++
		}
		l.mu.Unlock()
	}
}

// stop takes every node down and waits for the readers.
func (l *zoneLoad) stop() {
	for i := range l.nodes {
		l.set(context.Background(), i, nil)
	}
	l.recv.Wait()
}

// ratio is the delivery ratio over all buckets, and per bucket as a series.
func (l *zoneLoad) ratio(name string) (float64, Series) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := Series{Name: name}
	exp, got := 0, 0
	for b := range l.exp {
		exp += l.exp[b]
		got += l.got[b]
		if l.exp[b] > 0 {
			s.X = append(s.X, (time.Duration(b)*l.bucket + l.bucket/2).Seconds())
			s.Y = append(s.Y, float64(l.got[b])/float64(l.exp[b]))
		}
	}
	if exp == 0 {
		return 0, s
	}
	return float64(got) / float64(exp), s
}

// latencySeries is the q-quantile latency (ms) of each bucket's messages.
func (l *zoneLoad) latencySeries(name string, q float64) Series {
	l.mu.Lock()
	by := make([][]time.Duration, len(l.exp))
	for _, s := range l.lat {
		if s.bucket < len(by) {
			by[s.bucket] = append(by[s.bucket], s.d)
		}
	}
	l.mu.Unlock()
	out := Series{Name: name}
	for b, ds := range by {
		if len(ds) == 0 {
			continue
		}
		slices.Sort(ds)
		out.X = append(out.X, (time.Duration(b)*l.bucket + l.bucket/2).Seconds())
		out.Y = append(out.Y, ms(Percentile(ds, q)))
	}
	return out
}

// busy is the CPU the process used during the last run, in cores.
func (l *zoneLoad) busy() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cores
}

// counts returns the expected and received deliveries, and failed publications.
func (l *zoneLoad) counts() (exp, got, pubErr int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for b := range l.exp {
		exp += l.exp[b]
		got += l.got[b]
	}
	return exp, got, l.pubErr
}

// unlinkPeer removes every link of p: the machine is gone from the network.
func unlinkPeer(net mocknet.Mocknet, p peer.ID) {
	for other, ls := range net.Links()[string(p)] {
		if len(ls) > 0 {
			_ = net.UnlinkPeers(p, peer.ID(other))
		}
	}
}

// pickZonePeers picks up to k random nodes of i's zone that up reports up.
func pickZonePeers(r *mrand.Rand, zones []string, i, k int, up func(int) bool) []int {
	var c []int
	for j := range zones {
		if j != i && zones[j] == zones[i] && up(j) {
			c = append(c, j)
		}
	}
	r.Shuffle(len(c), func(a, b int) { c[a], c[b] = c[b], c[a] })
	return c[:min(k, len(c))]
}

// --- The scenario. ---------------------------------------------------------

// churnEvent is one node leaving at a time after load starts.
type churnEvent struct {
	at   time.Duration
	node int
}

// churnSchedule spreads events leave-and-rejoin events over d, each on a
// node that is up at the time, the same for ztmesh and the baseline.
func churnSchedule(n, events int, d time.Duration, seed uint64) []churnEvent {
	r := mrand.New(mrand.NewPCG(seed, 11))
	var out []churnEvent
	downUntil := map[int]time.Duration{}
	for k := range events {
		at := d * time.Duration(k+1) / time.Duration(events+1)
		for range 100 {
			i := r.IntN(n)
			if downUntil[i] <= at {
				downUntil[i] = at + churnDowntime + time.Second
				out = append(out, churnEvent{at: at, node: i})
				break
			}
		}
	}
	return out
}

// churner takes nodes of one network down and up again.
type churner interface {
	leave(i int) error
	rejoin(ctx context.Context, i int, peers []int) (zoneEndpoint, error)
}

// runChurnLoad runs load for d while the schedule's nodes leave and rejoin.
func runChurnLoad(ctx context.Context, env *Env, l *zoneLoad, ch churner, zones []string, sched []churnEvent, d time.Duration, degree int, seed uint64) []error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	r := mrand.New(mrand.NewPCG(seed, 13))
	var rmu sync.Mutex
	start := time.Now()
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Go(func() { l.run(lctx, d, seed) })
	for _, ev := range sched {
		select {
		case <-ctx.Done():
			return append(errs, ctx.Err())
		case <-time.After(time.Until(start.Add(ev.at))):
		}
		l.set(ctx, ev.node, nil)
		if err := ch.leave(ev.node); err != nil {
			errs = append(errs, fmt.Errorf("node %d leaving: %w", ev.node, err))
		}
		wg.Go(func() {
			select {
			case <-ctx.Done():
				return
			case <-time.After(churnDowntime):
			}
			rmu.Lock()
			peers := pickZonePeers(r, zones, ev.node, degree, func(j int) bool { return l.endpoint(j) != nil })
			rmu.Unlock()
			ep, err := ch.rejoin(ctx, ev.node, peers)
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("node %d rejoining: %w", ev.node, err))
				mu.Unlock()
				return
			}
			l.set(ctx, ev.node, ep)
		})
	}
	wg.Wait()
	return errs
}

// clusterChurn is churn on a ztmesh cluster: a node that leaves is closed
// and cut from the network; it rejoins as a new process with the same
// identity, credential and data directory, dialing a few zone peers.
type clusterChurn struct {
	c     *Cluster
	zones []string
	mu    sync.Mutex
}

func (cc *clusterChurn) leave(i int) error {
	cc.mu.Lock()
	m := cc.c.Nodes[i]
	cc.mu.Unlock()
	unlinkPeer(cc.c.Net, m.Host().ID())
	return m.Close()
}

func (cc *clusterChurn) rejoin(ctx context.Context, i int, peers []int) (zoneEndpoint, error) {
	cc.mu.Lock()
	m := cc.c.Nodes[i]
	cc.mu.Unlock()
	n, err := cc.c.StartNode(ctx, i, m.ID, m.Token)
	if err != nil {
		return nil, err
	}
	cc.mu.Lock()
	m.Node = n
	ids := make([]peer.ID, len(cc.c.Nodes))
	addrs := make([][]ma.Multiaddr, len(cc.c.Nodes))
	for j, o := range cc.c.Nodes {
		ids[j], addrs[j] = o.Host().ID(), o.Host().Addrs()
	}
	cc.mu.Unlock()
	if err := linkZoneMembers(cc.c.Net, ids, cc.zones); err != nil {
		return nil, err
	}
	var errs []error
	for _, j := range peers {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := n.Host().Connect(cctx, peer.AddrInfo{ID: ids[j], Addrs: addrs[j]})
		cancel()
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil && len(errs) == len(peers) && len(peers) > 0 {
		return nil, err
	}
	return newZtmeshEndpoint(n, cc.zones[i])
}

// baselineChurn is the same churn on plain GossipSub: the host is closed
// and a new one with the same key joins.
type baselineChurn struct {
	ctx   context.Context
	b     *Baseline
	keys  []crypto.PrivKey
	zones []string
	mu    sync.Mutex
}

func (bc *baselineChurn) leave(i int) error {
	bc.mu.Lock()
	h := bc.b.Hosts[i]
	bc.mu.Unlock()
	unlinkPeer(bc.b.Net, h.ID())
	return h.Close()
}

func (bc *baselineChurn) rejoin(ctx context.Context, i int, peers []int) (zoneEndpoint, error) {
	pid, err := peer.IDFromPrivateKey(bc.keys[i])
	if err != nil {
		return nil, err
	}
	h, err := bc.b.Net.AddPeer(bc.keys[i], blackholeAddr(pid))
	if err != nil {
		return nil, err
	}
	g, err := ps.NewGossipSub(bc.ctx, h)
	if err != nil {
		return nil, err
	}
	bc.mu.Lock()
	bc.b.Hosts[i], bc.b.Subs[i] = h, g
	hosts := slices.Clone(bc.b.Hosts)
	bc.mu.Unlock()
	ids := make([]peer.ID, len(hosts))
	for j, o := range hosts {
		ids[j] = o.ID()
	}
	if err := linkZoneMembers(bc.b.Net, ids, bc.zones); err != nil {
		return nil, err
	}
	for _, j := range peers {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_ = h.Connect(cctx, peer.AddrInfo{ID: ids[j], Addrs: hosts[j].Addrs()})
		cancel()
	}
	return newPlainZoneEndpoint(g, bc.zones[i])
}

func runChurn(ctx context.Context, env *Env, sc *Scenario) ([]*Section, error) {
	var secs []*Section
	for _, n := range sc.Sizes(env.Quick) {
		s, err := churnSize(ctx, env, sc, n)
		if s != nil {
			secs = append(secs, s)
		}
		if err != nil {
			return secs, fmt.Errorf("%d nodes: %w", n, err)
		}
	}
	return secs, nil
}

func churnSize(ctx context.Context, env *Env, sc *Scenario, n int) (*Section, error) {
	d := sc.RunFor(env.Quick)
	rate := sc.ChurnPerMinute
	if rate == 0 {
		rate = 0.1
	}
	events := max(2, int(rate*float64(n)*d.Minutes()+0.5))
	sched := churnSchedule(n, events, d, sc.Seed)
	specs := sc.Specs(n)
	zones := make([]string, n)
	honest := make([]bool, n)
	for i, s := range specs {
		zones[i], honest[i] = s.Zones[0], true
	}
	msgRate := sc.Rate
	if msgRate == 0 {
		msgRate = 1
	}
	sec := &Section{Title: fmt.Sprintf("%s: %d nodes", sc.Name, n)}
	if sc.Description != "" {
		sec.Text = append(sec.Text, sc.Description)
	}
	sec.Text = append(sec.Text, fmt.Sprintf("%d nodes in %d zones (degree %d, %d cross links, %s links), each publishing %.3g messages/s of %d bytes in its zone for %s. "+
		"%d times, evenly spread, a node leaves (its process closes and its links go) and rejoins %s later as a new process with the same identity, credential and data directory, dialing %d zone peers: "+
		"%.3g of the nodes per minute (the scenario asks %.3g). Plain GossipSub runs the same topology, load and schedule (the host closes; a new host with the same key joins). "+
		"Delivery counts each message once per honest node that was up in the sender's zone when it was published; a rejoining node counts from the moment it is back, so the time it takes to get keys and mesh links again is in the figure. "+
		"Both networks get %s of uncounted warm-up traffic first (in ztmesh, receivers pull each sender's key on its first message).",
		n, sc.Zones, sc.Degree, sc.Cross, time.Duration(sc.Link.Latency), msgRate, sc.MessageSize, d,
		events, churnDowntime, sc.Degree, float64(events)/float64(n)/d.Minutes(), rate, min(zoneLoadWarmup, d/2)))

	// ztmesh.
	env.Printf("churn: starting %d nodes", n)
	c, err := NewCluster(ctx, ClusterConfig{Nodes: specs, Link: sc.Link.Link(), Logger: env.Logger})
	if err != nil {
		return nil, err
	}
	closeCluster := sync.OnceValue(c.Close)
	defer closeCluster()
	if err := c.Wire(ctx, sc.Degree, sc.Cross, sc.Seed); err != nil {
		return nil, err
	}
	ids := make([]peer.ID, n)
	for i, m := range c.Nodes {
		ids[i] = m.Host().ID()
	}
	if err := linkZoneMembers(c.Net, ids, zones); err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	err = c.AwaitVerified(wctx)
	cancel()
	if err != nil {
		return nil, err
	}
	zl := newZoneLoad(zones, honest, sc.MessageSize, msgRate)
	for i, m := range c.Nodes {
		ep, err := newZtmeshEndpoint(m.Node, zones[i])
		if err != nil {
			return nil, err
		}
		zl.set(ctx, i, ep)
	}
	time.Sleep(announceWait) // announcements, and zone meshes at the heartbeats
	warmup := min(zoneLoadWarmup, d/2)
	env.Printf("churn: ztmesh warm-up traffic for %s", warmup)
	zl.run(ctx, warmup, sc.Seed)
	awaitIdle(ctx, time.Second, 20*time.Second)
	env.Printf("churn: ztmesh load with %d leave/rejoin events over %s", events, d)
	cc := &clusterChurn{c: c, zones: zones}
	for _, err := range runChurnLoad(ctx, env, zl, cc, zones, sched, d, sc.Degree, sc.Seed) {
		sec.Failures = append(sec.Failures, "ztmesh churn: "+err.Error())
	}
	zRatio, zSeries := zl.ratio("ztmesh")
	zExp, zGot, zErr := zl.counts()
	_, zLat := zl.window(0, d)

	// The split, while the cluster is still up.
	if err := splitAndHeal(ctx, env, sc, c, zones, sec); err != nil {
		sec.Failures = append(sec.Failures, "zone split: "+err.Error())
	}
	zl.stop()
	closeCluster() // the baseline runs on an idle machine

	// Baseline under the same schedule.
	env.Printf("churn: baseline load with the same schedule")
	bctx, bcancel := context.WithCancel(ctx)
	defer bcancel()
	b, err := NewBaseline(bctx, specs, sc.Link.Link(), sc.Degree, sc.Cross, sc.Seed)
	if err != nil {
		return sec, err
	}
	defer b.Close()
	keys := make([]crypto.PrivKey, n)
	for i, h := range b.Hosts {
		keys[i] = h.Peerstore().PrivKey(h.ID())
		ids[i] = h.ID()
	}
	if err := linkZoneMembers(b.Net, ids, zones); err != nil {
		return sec, err
	}
	bl := newZoneLoad(zones, honest, sc.MessageSize, msgRate)
	for i := range b.Hosts {
		ep, err := newPlainZoneEndpoint(b.Subs[i], zones[i])
		if err != nil {
			return sec, err
		}
		bl.set(bctx, i, ep)
	}
	time.Sleep(3 * time.Second)
	bl.run(bctx, warmup, sc.Seed)
	awaitIdle(ctx, time.Second, 20*time.Second)
	bch := &baselineChurn{ctx: bctx, b: b, keys: keys, zones: zones}
	for _, err := range runChurnLoad(bctx, env, bl, bch, zones, sched, d, sc.Degree, sc.Seed) {
		sec.Failures = append(sec.Failures, "baseline churn: "+err.Error())
	}
	bRatio, bSeries := bl.ratio("plain GossipSub")
	bExp, bGot, bErr := bl.counts()
	_, bLat := bl.window(0, d)
	bl.stop()

	tbl := &Table{Caption: fmt.Sprintf("Zone traffic under churn. CPU is the whole process's during the run, in cores (the machine has %d).", runtime.NumCPU()),
		Header: []string{"", "expected deliveries", "delivered", "delivery ratio", "p50", "p95", "p99", "failed publications", "CPU"}}
	tbl.Add("ztmesh", zExp, zGot, fmt.Sprintf("%.4f", zRatio), roundLatency(Percentile(zLat, 0.5)), roundLatency(Percentile(zLat, 0.95)), roundLatency(Percentile(zLat, 0.99)), zErr, zl.busy())
	tbl.Add("plain GossipSub", bExp, bGot, fmt.Sprintf("%.4f", bRatio), roundLatency(Percentile(bLat, 0.5)), roundLatency(Percentile(bLat, 0.95)), roundLatency(Percentile(bLat, 0.99)), bErr, bl.busy())
	tbl.Add("ratio", "", "", fmt.Sprintf("%.3f", Ratio(zRatio, bRatio)), Ratio(float64(Percentile(zLat, 0.5)), float64(Percentile(bLat, 0.5))),
		Ratio(float64(Percentile(zLat, 0.95)), float64(Percentile(bLat, 0.95))), Ratio(float64(Percentile(zLat, 0.99)), float64(Percentile(bLat, 0.99))), "", Ratio(zl.busy(), bl.busy()))
	sec.Tables = append([]*Table{tbl}, sec.Tables...)
	sec.Plots = append([]*Plot{{File: fmt.Sprintf("%s-%d-delivery.png", sc.Name, n), Title: fmt.Sprintf("Delivery under churn, %d nodes", n),
		XLabel: "seconds (by publication time)", YLabel: "delivery ratio", Series: []Series{zSeries, bSeries}}}, sec.Plots...)
	if zExp == 0 || zRatio < 0.5 {
		sec.Failures = append(sec.Failures, fmt.Sprintf("ztmesh delivered %.3f of %d expected messages under churn", zRatio, zExp))
	}
	return sec, nil
}

// splitAndHeal splits the first zone in two halves (links removed,
// connections closed), has every member of it write its own key of an
// LWW map, heals the split and measures until every replica holds every
// key.
func splitAndHeal(ctx context.Context, env *Env, sc *Scenario, c *Cluster, zones []string, sec *Section) error {
	var members []int
	for i, z := range zones {
		if z == zones[0] {
			members = append(members, i)
		}
	}
	if len(members) < 4 {
		return fmt.Errorf("zone %s has %d members; a split needs 4", zones[0], len(members))
	}
	half := len(members) / 2
	side := map[int]int{}
	for k, i := range members {
		side[i] = min(1, k/half)
	}
	reps := map[int]*crdt.Replica{}
	for _, i := range members {
		r, err := c.Nodes[i].State(zones[0], splitState, crdt.LWWMap)
		if err != nil {
			return err
		}
		reps[i] = r
	}
	time.Sleep(2 * time.Second) // the state channel's meshes
	env.Printf("churn: splitting zone %s (%d + %d nodes)", zones[0], half, len(members)-half)
	// Cut every link and connection across the split.
	var cut [][2]int
	for _, a := range members {
		for _, b := range members {
			if a >= b || side[a] == side[b] {
				continue
			}
			ha, hb := c.Nodes[a].Host(), c.Nodes[b].Host()
			if len(c.Net.LinksBetweenPeers(ha.ID(), hb.ID())) > 0 {
				_ = c.Net.UnlinkPeers(ha.ID(), hb.ID())
			}
			if len(ha.Network().ConnsToPeer(hb.ID())) > 0 {
				cut = append(cut, [2]int{a, b})
				_ = ha.Network().ClosePeer(hb.ID())
			}
		}
	}
	time.Sleep(500 * time.Millisecond)
	keyOf := func(i int) string { return c.Nodes[i].DID().String() + "/split" }
	for _, i := range members {
		if _, err := reps[i].Put(ctx, keyOf(i), fmt.Appendf(nil, "written by node %d on side %d", i, side[i])); err != nil {
			return fmt.Errorf("node %d writing during the split: %w", i, err)
		}
	}
	time.Sleep(3 * time.Second)
	leaked, sameSide := 0, 0
	for _, i := range members {
		for _, j := range members {
			_, ok := reps[i].Get(keyOf(j))
			switch {
			case ok && side[i] != side[j]:
				leaked++
			case ok && i != j:
				sameSide++
			}
		}
	}
	if leaked > 0 {
		sec.Failures = append(sec.Failures, fmt.Sprintf("zone split: %d writes crossed the split before it healed", leaked))
	}
	env.Printf("churn: healing the split (%d connections to restore)", len(cut))
	start := time.Now()
	ids := make([]peer.ID, len(c.Nodes))
	hosts := make([]host.Host, len(c.Nodes))
	for i, m := range c.Nodes {
		ids[i], hosts[i] = m.Host().ID(), m.Host()
	}
	// The connections come back all at once while the replicas are
	// watched: a replica may converge before the last dial returns.
	healed := make(chan error, 1)
	go func() {
		err := connectPairs(ctx, c.Net, hosts, cut)
		if err == nil {
			err = linkZoneMembers(c.Net, ids, zones)
		}
		healed <- err
	}()
	defer func() { <-healed }()
	done := map[int]time.Duration{}
	deadline := start.Add(healTimeout)
	for len(done) < len(members) && time.Now().Before(deadline) && ctx.Err() == nil {
		for _, i := range members {
			if _, ok := done[i]; ok {
				continue
			}
			all := true
			for _, j := range members {
				if _, ok := reps[i].Get(keyOf(j)); !ok {
					all = false
					break
				}
			}
			if all {
				done[i] = time.Since(start)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case err := <-healed:
		healed <- err // for the deferred receive
		if err != nil {
			return fmt.Errorf("heal: %w", err)
		}
	default:
	}
	times := make([]time.Duration, 0, len(done))
	for _, d := range done {
		times = append(times, d)
	}
	slices.Sort(times)
	if len(done) < len(members) {
		sec.Failures = append(sec.Failures, fmt.Sprintf("zone split: %d of %d replicas had not converged %s after the heal", len(members)-len(done), len(members), healTimeout))
	}
	possible := 0
	for _, i := range members {
		for _, j := range members {
			if i != j && side[i] == side[j] {
				possible++
			}
		}
	}
	t := &Table{Caption: fmt.Sprintf("Zone %s split in two (%d + %d nodes) and healed; every member wrote its own key of an LWW map during the split. "+
		"Convergence is when a replica holds every member's key. Plain GossipSub has no replicated state, so this has no baseline.", zones[0], half, len(members)-half),
		Header: []string{"connections cut", "writes seen on the same side during the split", "writes that crossed it", "replicas converged", "p50 after heal", "max after heal"}}
	t.Add(len(cut), fmt.Sprintf("%d / %d", sameSide, possible), leaked, fmt.Sprintf("%d / %d", len(done), len(members)), roundLatency(Percentile(times, 0.5)), roundLatency(Percentile(times, 1)))
	sec.Tables = append(sec.Tables, t)
	sec.Text = append(sec.Text, fmt.Sprintf("After the heal, the replicas of the nodes whose connections were restored catch up at once (anti-entropy with a newly verified peer); "+
		"the others, whose own connections across the split were not cut, wait for their next anti-entropy round (every %s, with one random verified peer). Max convergence: %s.", 30*time.Second, roundLatency(Percentile(times, 1))))
	plot := &Plot{File: fmt.Sprintf("%s-%d-heal-cdf.png", sc.Name, len(c.Nodes)), Title: "State convergence after the split heals",
		XLabel: "ms after heal", YLabel: "fraction of replicas converged", Series: []Series{CDF("replicas of the split zone", times, 100)}}
	sec.Plots = append(sec.Plots, plot)
	return nil
}
