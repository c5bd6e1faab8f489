package simulations

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	ps "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ztmesh/ztmesh/node"
	"github.com/ztmesh/ztmesh/policy"
	"github.com/ztmesh/ztmesh/pubsub"
)

// The fleet scenario is the case study of issue 8: vehicles in district
// zones, each publishing perception maps to its zone at a fixed rate. Every
// node subscribes to its zone's channel and publishes MessageSize-byte
// payloads at Rate Hz, starting at a random offset within one period. The
// payload carries its send time, so latency is measured on one clock (one
// process). The same load then runs over plain GossipSub on the same
// topology, for the ratios.

func init() { register("fleet", runFleet) }

const (
	// fleetChannel is the zone channel maps are published on.
	fleetChannel = "maps"
	// fleetHeader is the payload prefix: send time (unix ns, 8 bytes),
	// sender index (4), message number (4), flags (1).
	fleetHeader = 17
	// flagWarmup marks the one message per node sent before measuring.
	flagWarmup = 1
	// fleetDrain is how long deliveries are still counted after the last
	// publication; a map later than that is useless at 1 Hz anyway.
	fleetDrain = 5 * time.Second
	// fleetSetupTimeout bounds creating, wiring and verifying one mesh.
	fleetSetupTimeout = 20 * time.Minute
	// fleetWarmupRounds bounds the warm-up rounds, fleetWarmupWait each
	// batch's wait for its deliveries, and fleetWarmupStall the wait once
	// they stopped coming: a message waits for its key at most the
	// validator's timeout (the 5 s key fetch and 1 s), so what has not
	// arrived 10 s after the last delivery was dropped.
	fleetWarmupRounds = 3
	fleetWarmupWait   = 20 * time.Second
	fleetWarmupStall  = 10 * time.Second
	// fleetWarmupBatch is about how many deliveries (for ztmesh, sender
	// key fetches) one batch of a warm-up round asks for: publishers warm
	// up a batch at a time. All at once, every node's dials and
	// handshakes share the process's two cores: with 200 nodes in zones
	// of 100 (19,800 fetches), handshakes missed their 5 s grace period
	// 9,700 times, keys went missing, and three rounds still left 3.5%
	// undelivered. On a fleet each vehicle has its own CPU.
	fleetWarmupBatch = 1000
	// fleetZonesShown is how many zones the per-zone table lists.
	fleetZonesShown = 10
	// Goals of the case study.
	fleetGoalDelivery = 1.0
	fleetGoalP95      = 100 * time.Millisecond
)

// fleetNet is one system carrying the fleet load: ztmesh or the baseline.
type fleetNet interface {
	// subscribe subscribes node i to its zone's channel; next returns the
	// payload of each message received.
	subscribe(i int) (next func(ctx context.Context) ([]byte, error), cancel func(), err error)
	// zonePeers is how many peers node i's GossipSub knows in its zone topic.
	zonePeers(i int) int
	publish(ctx context.Context, i int, data []byte) error
	// peers is how many peers node i is connected to.
	peers(i int) int
}

// fleetResult is one system's figures at one size.
type fleetResult struct {
	nodes          int
	setup          time.Duration
	published      int // publications attempted during load
	failed         int // publications that returned an error
	expected       int // Σ over publications of (zone members − 1)
	delivered      int // deliveries counted (before the drain deadline)
	all            []time.Duration
	zone           []fleetZone
	buckets        []fleetBucket     // by the second of the load the message was sent in
	warmup         []time.Duration   // first warm-up round: the cold start
	warmupWant     int               // deliveries the first round should make
	warmupRounds   int               // rounds run until every publisher was delivered whole once
	warmupBatches  int               // batches of publishers in the first round
	warmupRepeated int               // publishers repeated after the first round
	warmupWhole    float64           // fraction of publishers delivered whole in some round
	dropped        map[string]uint64 // ztmesh: messages its validators dropped, by reason, over the whole run
	heap, rss      uint64            // peaks sampled during load and drain, whole process
	peers          float64           // connections per node at the end of the load
	loadavg        string            // the machine's load average at the end of the load (shared machine)
	cores          float64
}

type fleetZone struct {
	name      string
	members   int
	published int
	expected  int
	delivered int
	lat       []time.Duration // sorted after the run
}

type fleetBucket struct {
	expected, delivered int
	lat                 []time.Duration
}

func (r *fleetResult) ratio() float64 { return Ratio(float64(r.delivered), float64(r.expected)) }

func (r *fleetResult) pct(q float64) time.Duration { return Percentile(r.all, q) }

func (r *fleetResult) heapPerNode() float64 { return float64(r.heap) / float64(r.nodes) / (1 << 20) }

func (r *fleetResult) rssPerNode() float64 { return float64(r.rss) / float64(r.nodes) / (1 << 20) }

// fleetLoad is what both systems carry at one size.
type fleetLoad struct {
	sc      *Scenario
	specs   []NodeSpec
	zoneOf  []int
	zones   []string
	members []int
	runFor  time.Duration
	rate    float64 // per node: sc.Rate, or lower under sc.MaxOffered
	period  time.Duration
	jitter  []time.Duration
	// publishers are the nodes whose first map falls inside the run (all
	// of them unless the rate is below one map per run).
	publishers []int
	bridges    [][2]int // links added to Topology's so that every zone is connected
}

func newFleetLoad(sc *Scenario, n int, quick bool) (*fleetLoad, error) {
	if sc.Rate <= 0 {
		return nil, errors.New("fleet: rate must be positive")
	}
	if sc.MessageSize < fleetHeader {
		return nil, fmt.Errorf("fleet: message_size must be at least %d bytes (the header that carries the send time)", fleetHeader)
	}
	// A zone needs two members for anyone to receive a map: at sizes
	// below twice the zone count (the quick run), zones are merged.
	at := *sc
	at.Zones = max(1, min(sc.Zones, n/2))
	l := &fleetLoad{sc: sc, specs: at.Specs(n), runFor: sc.RunFor(quick), rate: sc.Rate}
	index := map[string]int{}
	l.zoneOf = make([]int, n)
	for i, s := range l.specs {
		z, ok := index[s.Zones[0]]
		if !ok {
			z = len(l.zones)
			index[s.Zones[0]] = z
			l.zones = append(l.zones, s.Zones[0])
			l.members = append(l.members, 0)
		}
		l.zoneOf[i] = z
		l.members[z]++
	}
	if o := l.offered(); sc.MaxOffered > 0 && o > sc.MaxOffered {
		l.rate *= sc.MaxOffered / o
	}
	l.period = time.Duration(float64(time.Second) / l.rate)
	l.bridges = zoneBridges(l.specs, Topology(l.specs, sc.Degree, sc.Cross, sc.Seed))
	r := mrand.New(mrand.NewPCG(sc.Seed, uint64(n)))
	l.jitter = make([]time.Duration, n)
	for i := range l.jitter {
		l.jitter[i] = time.Duration(r.Int64N(int64(l.period)))
		if l.jitter[i] < l.runFor {
			l.publishers = append(l.publishers, i)
		}
	}
	return l, nil
}

// receivers is how many deliveries one message of node i should make.
func (l *fleetLoad) receivers(i int) int { return l.members[l.zoneOf[i]] - 1 }

// warmupBatches splits publishers into batches of about fleetWarmupBatch
// deliveries each, in order.
func (l *fleetLoad) warmupBatches(publishers []int) [][]int {
	var out [][]int
	var batch []int
	n := 0
	for _, i := range publishers {
		batch = append(batch, i)
		if n += l.receivers(i); n >= fleetWarmupBatch {
			out = append(out, batch)
			batch, n = nil, 0
		}
	}
	if len(batch) > 0 {
		out = append(out, batch)
	}
	return out
}

// offered is the load's deliveries a second: each node's maps times its
// zone peers.
func (l *fleetLoad) offered() float64 {
	var peers int
	for _, z := range l.zoneOf {
		peers += l.members[z] - 1
	}
	return l.rate * float64(peers)
}

// scaled reports whether MaxOffered lowered the rate at this size.
func (l *fleetLoad) scaled() bool { return l.rate < l.sc.Rate }

// header writes the payload prefix.
func fleetPayload(size int, at time.Time, sender, k int, flags byte) []byte {
	data := make([]byte, size)
	binary.BigEndian.PutUint64(data[0:], uint64(at.UnixNano()))
	binary.BigEndian.PutUint32(data[8:], uint32(sender))
	binary.BigEndian.PutUint32(data[12:], uint32(k))
	data[16] = flags
	return data
}

// run drives the load over net and measures it.
func (l *fleetLoad) run(ctx context.Context, env *Env, name string, net fleetNet, res *fleetResult) error {
	n := len(l.specs)
	res.nodes = n
	res.zone = make([]fleetZone, len(l.zones))
	for z := range res.zone {
		res.zone[z] = fleetZone{name: l.zones[z], members: l.members[z]}
	}

	// Subscribe everyone, then wait until each node knows a subscribed
	// zone peer and a heartbeat has built the topic meshes.
	var (
		mu      sync.Mutex
		counted = true             // false once the drain deadline passes
		warmOf  = map[[2]int]int{} // warm-up deliveries per round and publisher
		start   time.Time
		wg      sync.WaitGroup
	)
	subCtx, stopSubs := context.WithCancel(ctx)
	defer func() { stopSubs(); wg.Wait() }()
	// Subscribing waits on each node's GossipSub event loop, busy while a
	// large mesh settles: a few at a time.
	nexts := make([]func(context.Context) ([]byte, error), n)
	cancels := make([]func(), n)
	subStart := time.Now()
	err := parallel(n, 16, func(i int) error {
		next, cancel, err := net.subscribe(i)
		if err != nil {
			return fmt.Errorf("%s: subscribe node %d: %w", name, i, err)
		}
		nexts[i], cancels[i] = next, cancel
		return nil
	})
	if err != nil {
		for _, cancel := range cancels {
			if cancel != nil {
				cancel()
			}
		}
		return err
	}
	for i := range n {
		next, cancel := nexts[i], cancels[i]
		zi := l.zoneOf[i]
		wg.Go(func() {
			defer cancel()
			for {
				data, err := next(subCtx)
				if err != nil {
					return
				}
				now := time.Now()
				if len(data) < fleetHeader || int(binary.BigEndian.Uint32(data[8:])) == i {
					continue // our own publication
				}
				sent := time.Unix(0, int64(binary.BigEndian.Uint64(data)))
				mu.Lock()
				switch {
				case data[16]&flagWarmup != 0:
					round := int(binary.BigEndian.Uint32(data[12:]))
					warmOf[[2]int{round, int(binary.BigEndian.Uint32(data[8:]))}]++
					if round == 1 {
						res.warmup = append(res.warmup, now.Sub(sent))
					}
				case counted && !start.IsZero() && !sent.Before(start):
					d := now.Sub(sent)
					res.delivered++
					res.all = append(res.all, d)
					z := &res.zone[zi]
					z.delivered++
					z.lat = append(z.lat, d)
					if b := int(sent.Sub(start) / time.Second); b < len(res.buckets) {
						res.buckets[b].delivered++
						res.buckets[b].lat = append(res.buckets[b].lat, d)
					}
				}
				mu.Unlock()
			}
		})
	}
	deadline := time.Now().Add(time.Minute)
	for {
		waiting := 0
		for i := range n {
			if l.members[l.zoneOf[i]] > 1 && net.zonePeers(i) == 0 {
				waiting++
			}
		}
		if waiting == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %d nodes know no subscribed peer in their zone after a minute", name, waiting)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	env.Printf("fleet %s: subscribed, and every node knows a subscribed zone peer, in %s", name, time.Since(subStart).Round(time.Millisecond))
	time.Sleep(1500 * time.Millisecond) // a GossipSub heartbeat grafts the meshes

	// Warm-up: rounds of one small message per node, so that every sender
	// key (ztmesh fetches one per origin, rotated every 10 minutes) is in
	// place before measuring. A message whose key cannot be fetched in
	// time is dropped, not retried, so the publishers whose message did
	// not reach every receiver publish again, in rounds, until each has
	// been delivered whole once. The first round is the cold start,
	// reported on its own.
	// Only the nodes that will publish during the load warm up: at a
	// reduced rate, sender keys of nodes that never publish are not needed
	// (and fetching all of them would connect every zone into a full mesh).
	for _, i := range l.publishers {
		res.warmupWant += l.receivers(i)
	}
	pending := l.publishers
	for round := 1; round <= fleetWarmupRounds && len(pending) > 0; round++ {
		res.warmupRounds = round
		roundStart := time.Now()
		batches := l.warmupBatches(pending)
		if round == 1 {
			res.warmupBatches = len(batches)
		} else {
			res.warmupRepeated += len(pending)
		}
		for _, batch := range batches {
			if err := parallel(len(batch), 16, func(j int) error {
				i := batch[j]
				if err := net.publish(ctx, i, fleetPayload(fleetHeader, time.Now(), i, round, flagWarmup)); err != nil {
					return fmt.Errorf("node %d: %w", i, err)
				}
				return nil
			}); err != nil {
				return fmt.Errorf("%s: warm-up: %w", name, err)
			}
			// Wait for this batch's own deliveries: a delivery missing
			// from an earlier batch must not hold up every later one
			// (it did: one lost key fetch made each later batch wait the
			// full fleetWarmupWait).
			want := 0
			for _, i := range batch {
				want += l.receivers(i)
			}
			deadline = time.Now().Add(fleetWarmupWait)
			last, progress := -1, time.Now()
			for time.Now().Before(deadline) && time.Since(progress) < fleetWarmupStall {
				got := 0
				mu.Lock()
				for _, i := range batch {
					got += min(warmOf[[2]int{round, i}], l.receivers(i))
				}
				mu.Unlock()
				if got >= want {
					break
				}
				if got > last {
					last, progress = got, time.Now()
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(50 * time.Millisecond):
				}
			}
		}
		var short []int
		mu.Lock()
		for _, i := range pending {
			if warmOf[[2]int{round, i}] < l.receivers(i) {
				short = append(short, i)
			}
		}
		mu.Unlock()
		env.Printf("fleet %s: warm-up round %d: %d publishers in %d batches, %d not delivered whole, %s",
			name, round, len(pending), len(batches), len(short), time.Since(roundStart).Round(time.Millisecond))
		pending = short
	}
	res.warmupWhole = Ratio(float64(len(l.publishers)-len(pending)), float64(len(l.publishers)))
	env.Printf("fleet %s: warm-up rounds %d, publishers repeated %d, delivered whole %d of %d",
		name, res.warmupRounds, res.warmupRepeated, len(l.publishers)-len(pending), len(l.publishers))

	// Load.
	runtime.GC()
	debug.FreeOSMemory() // the previous run's memory is not this one's RSS
	fleetSampler := startFleetSampler()
	mu.Lock()
	start = time.Now().Add(100 * time.Millisecond)
	res.buckets = make([]fleetBucket, int((l.runFor+time.Second-1)/time.Second))
	mu.Unlock()
	end := start.Add(l.runFor)
	env.Printf("fleet %s: %d nodes (%d of them publishing) publishing %d B at %.3g Hz for %s", name, n, len(l.publishers), l.sc.MessageSize, l.rate, l.runFor)
	var pubs sync.WaitGroup
	for i := range n {
		pubs.Go(func() {
			zi := l.zoneOf[i]
			for k := 0; ; k++ {
				at := start.Add(l.jitter[i] + time.Duration(k)*l.period)
				if !at.Before(end) {
					return
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Until(at)):
				}
				now := time.Now()
				data := fleetPayload(l.sc.MessageSize, now, i, k+1, 0)
				mu.Lock()
				res.published++
				res.expected += l.members[zi] - 1
				res.zone[zi].published++
				res.zone[zi].expected += l.members[zi] - 1
				if b := int(now.Sub(start) / time.Second); b < len(res.buckets) {
					res.buckets[b].expected += l.members[zi] - 1
				}
				mu.Unlock()
				if err := net.publish(ctx, i, data); err != nil {
					mu.Lock()
					res.failed++
					mu.Unlock()
				}
			}
		})
	}
	pubs.Wait()
	drainEnd := time.Now().Add(fleetDrain)
	for time.Now().Before(drainEnd) {
		mu.Lock()
		done := res.delivered >= res.expected
		mu.Unlock()
		if done {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	counted = false
	mu.Unlock()
	u := fleetSampler.stop()
	res.heap, res.rss, res.cores = u.heap, u.rss, u.cores
	res.loadavg = fleetLoadAvg()
	for i := range n {
		res.peers += float64(net.peers(i)) / float64(n)
	}

	slices.Sort(res.all)
	slices.Sort(res.warmup)
	for z := range res.zone {
		slices.Sort(res.zone[z].lat)
	}
	for b := range res.buckets {
		slices.Sort(res.buckets[b].lat)
	}
	return nil
}

// fleetSampler records the process's peak heap and RSS while load runs, and the
// CPU it used.
type fleetSampler struct {
	from      Usage
	stopc     chan struct{}
	done      chan struct{}
	heap, rss uint64
	cores     float64
}

func startFleetSampler() *fleetSampler {
	s := &fleetSampler{from: ReadUsage(), stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			s.sample()
			select {
			case <-s.stopc:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *fleetSampler) sample() {
	u := ReadUsage()
	s.heap = max(s.heap, u.Heap)
	s.rss = max(s.rss, fleetRSS())
}

func (s *fleetSampler) stop() *fleetSampler {
	close(s.stopc)
	<-s.done
	s.sample()
	s.cores = ReadUsage().CoresSince(s.from)
	return s
}

// fleetRSS is the process's resident set now (Usage.RSS is the peak
// since the process started, which a sweep's earlier, larger run would
// dominate).
func fleetRSS() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseUint(f[1], 10, 64)
	return pages * uint64(os.Getpagesize())
}

// fleetLoadAvg is the machine's 1, 5 and 15 minute load averages: other
// work on the machine takes CPU from the simulation.
func fleetLoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// ztmeshFleet carries the load over ztmesh nodes.
type ztmeshFleet struct {
	c     *Cluster
	l     *fleetLoad
	topic []string
}

func (z *ztmeshFleet) subscribe(i int) (func(context.Context) ([]byte, error), func(), error) {
	sub, err := z.c.Nodes[i].Mesh().Subscribe(z.l.zones[z.l.zoneOf[i]], fleetChannel)
	if err != nil {
		return nil, nil, err
	}
	return func(ctx context.Context) ([]byte, error) {
		d, err := sub.Next(ctx)
		if err != nil {
			return nil, err
		}
		return d.Data, nil
	}, sub.Cancel, nil
}

func (z *ztmeshFleet) zonePeers(i int) int {
	return len(z.c.Nodes[i].Mesh().PubSub().ListPeers(z.topic[z.l.zoneOf[i]]))
}

func (z *ztmeshFleet) peers(i int) int { return len(z.c.Nodes[i].Host().Network().Peers()) }

func (z *ztmeshFleet) publish(ctx context.Context, i int, data []byte) error {
	_, err := z.c.Nodes[i].Mesh().Publish(ctx, z.l.zones[z.l.zoneOf[i]], fleetChannel, data)
	return err
}

// baselineFleet carries the load over plain GossipSub, one topic per zone.
type baselineFleet struct {
	b *Baseline
	l *fleetLoad
}

func (b *baselineFleet) topic(i int) (*ps.Topic, error) {
	return b.b.Topic(i, "fleet/"+b.l.zones[b.l.zoneOf[i]]+"/"+fleetChannel)
}

func (b *baselineFleet) subscribe(i int) (func(context.Context) ([]byte, error), func(), error) {
	t, err := b.topic(i)
	if err != nil {
		return nil, nil, err
	}
	sub, err := t.Subscribe()
	if err != nil {
		return nil, nil, err
	}
	return func(ctx context.Context) ([]byte, error) {
		m, err := sub.Next(ctx)
		if err != nil {
			return nil, err
		}
		return m.Data, nil
	}, sub.Cancel, nil
}

func (b *baselineFleet) zonePeers(i int) int {
	t, err := b.topic(i)
	if err != nil {
		return 0
	}
	return len(t.ListPeers())
}

func (b *baselineFleet) peers(i int) int { return len(b.b.Hosts[i].Network().Peers()) }

func (b *baselineFleet) publish(ctx context.Context, i int, data []byte) error {
	t, err := b.topic(i)
	if err != nil {
		return err
	}
	return t.Publish(ctx, data)
}

// runFleetZtmesh sets up a ztmesh mesh of l's nodes and runs the load.
func runFleetZtmesh(ctx context.Context, env *Env, l *fleetLoad) (*fleetResult, error) {
	res := &fleetResult{}
	sctx, cancel := context.WithTimeout(ctx, fleetSetupTimeout)
	defer cancel()
	t0 := time.Now()
	// The fleet pushes no policy: its nodes share one compile of the
	// default policy (250 KB of heap a node otherwise).
	compiles := policy.NewCompiles()
	c, err := NewCluster(sctx, ClusterConfig{Nodes: l.specs, Link: l.sc.Link.Link(), Logger: env.Logger, Progress: env.Printf,
		Configure: func(_ int, _ *node.Config, o *node.Options) { o.Test.PolicyCompiles = compiles }})
	if err != nil {
		return nil, fmt.Errorf("ztmesh: %w", err)
	}
	defer c.Close()
	env.Printf("fleet ztmesh: %d nodes created in %s", len(l.specs), time.Since(t0).Round(time.Millisecond))
	if err := c.Wire(sctx, l.sc.Degree, l.sc.Cross, l.sc.Seed); err != nil {
		return nil, fmt.Errorf("ztmesh: %w", err)
	}
	for _, p := range l.bridges {
		if err := c.Connect(sctx, c.Nodes[p[0]].Host(), c.Nodes[p[1]].Host()); err != nil {
			return nil, fmt.Errorf("ztmesh: bridge %d-%d: %w", p[0], p[1], err)
		}
	}
	if err := c.AwaitVerified(sctx); err != nil {
		return nil, fmt.Errorf("ztmesh: %w", err)
	}
	res.setup = time.Since(t0)
	env.Printf("fleet ztmesh: %d nodes wired and verified in %s", len(l.specs), res.setup.Round(time.Millisecond))
	if err := c.LinkZones(); err != nil {
		return nil, fmt.Errorf("ztmesh: %w", err)
	}
	z := &ztmeshFleet{c: c, l: l}
	for _, name := range l.zones {
		t, err := pubsub.ZoneTopic(c.cfg.Mesh, name, fleetChannel)
		if err != nil {
			return nil, err
		}
		z.topic = append(z.topic, t.String())
	}
	if err := l.run(ctx, env, "ztmesh", z, res); err != nil {
		return nil, err
	}
	res.dropped = map[string]uint64{}
	for _, n := range c.Nodes {
		for reason, k := range n.Mesh().Stats().Rejected() {
			res.dropped[reason] += k
		}
	}
	if len(res.dropped) > 0 {
		env.Printf("fleet ztmesh %d: messages the validators dropped, by reason: %s", len(l.specs), summarize(res.dropped))
	}
	return res, nil
}

// zoneBridges returns the links that make every zone's part of the
// topology connected. GossipSub forwards a zone's messages only between
// peers subscribed to it, so a zone whose members Topology left in two
// groups could never deliver across them. Topology draws each node's zone
// peers with replacement and may draw the node itself, which in small zones
// (two members at 100 nodes in 50 zones) leaves about one zone in four
// split. The bridges join each zone's groups in a chain; both systems get
// the same ones.
func zoneBridges(specs []NodeSpec, pairs [][2]int) [][2]int {
	parent := make([]int, len(specs))
	for i := range parent {
		parent[i] = i
	}
	var find func(int) int
	find = func(i int) int {
		if parent[i] != i {
			parent[i] = find(parent[i])
		}
		return parent[i]
	}
	for _, p := range pairs {
		if specs[p[0]].Zones[0] == specs[p[1]].Zones[0] {
			parent[find(p[0])] = find(p[1])
		}
	}
	var (
		out  [][2]int
		last = map[string]int{} // zone -> its first member, which the bridges join to
	)
	for i, s := range specs {
		z := s.Zones[0]
		j, ok := last[z]
		if !ok {
			last[z] = i
			continue
		}
		if find(i) != find(j) {
			out = append(out, [2]int{j, i})
			parent[find(i)] = find(j)
		}
	}
	return out
}

// runFleetBaseline sets up plain GossipSub on the same topology and runs
// the same load.
func runFleetBaseline(ctx context.Context, env *Env, l *fleetLoad) (*fleetResult, error) {
	res := &fleetResult{}
	sctx, cancel := context.WithTimeout(ctx, fleetSetupTimeout)
	defer cancel()
	t0 := time.Now()
	b, err := NewBaseline(sctx, l.specs, l.sc.Link.Link(), l.sc.Degree, l.sc.Cross, l.sc.Seed)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	for _, p := range l.bridges {
		x, y := b.Hosts[p[0]], b.Hosts[p[1]]
		if _, err := b.LinkPeers(x.ID(), y.ID()); err != nil {
			return nil, err
		}
		if err := x.Connect(sctx, peer.AddrInfo{ID: y.ID(), Addrs: y.Addrs()}); err != nil {
			return nil, fmt.Errorf("baseline: bridge %d-%d: %w", p[0], p[1], err)
		}
	}
	res.setup = time.Since(t0)
	env.Printf("fleet baseline: %d hosts wired in %s", len(l.specs), res.setup.Round(time.Millisecond))
	if err := l.run(ctx, env, "baseline", &baselineFleet{b: b, l: l}, res); err != nil {
		return nil, err
	}
	return res, nil
}

// fleetPair is both systems' results at one size.
type fleetPair struct {
	load    *fleetLoad
	z, base *fleetResult
}

func runFleet(ctx context.Context, env *Env, sc *Scenario) ([]*Section, error) {
	pairs, err := fleetSweep(ctx, env, sc)
	if err != nil {
		return nil, err
	}
	return fleetReport(sc, env.Quick, pairs), nil
}

// fleetSweep runs ztmesh and then the baseline at each size.
func fleetSweep(ctx context.Context, env *Env, sc *Scenario) ([]fleetPair, error) {
	var pairs []fleetPair
	for _, n := range sc.Sizes(env.Quick) {
		l, err := newFleetLoad(sc, n, env.Quick)
		if err != nil {
			return nil, err
		}
		env.Printf("fleet: %d nodes in %d zones", n, len(l.zones))
		z, err := runFleetZtmesh(ctx, env, l)
		if err != nil {
			return nil, fmt.Errorf("%d nodes: %w", n, err)
		}
		env.Printf("fleet ztmesh %d: delivery %.4f, p50 %s p95 %s p99 %s, %.2f cores", n, z.ratio(),
			z.pct(0.5).Round(time.Millisecond), z.pct(0.95).Round(time.Millisecond), z.pct(0.99).Round(time.Millisecond), z.cores)
		base, err := runFleetBaseline(ctx, env, l)
		if err != nil {
			return nil, fmt.Errorf("%d nodes: baseline: %w", n, err)
		}
		env.Printf("fleet baseline %d: delivery %.4f, p50 %s p95 %s p99 %s, %.2f cores", n, base.ratio(),
			base.pct(0.5).Round(time.Millisecond), base.pct(0.95).Round(time.Millisecond), base.pct(0.99).Round(time.Millisecond), base.cores)
		pairs = append(pairs, fleetPair{load: l, z: z, base: base})
	}
	return pairs, nil
}

// fleetRates describes the publication rate of each size.
func fleetRates(sc *Scenario, pairs []fleetPair) string {
	var scaled []string
	for _, p := range pairs {
		if p.load.scaled() {
			scaled = append(scaled, fmt.Sprintf("%.3g Hz at %d nodes", p.load.rate, len(p.load.specs)))
		}
	}
	if len(scaled) == 0 {
		return fmt.Sprintf("%.3g Hz", sc.Rate)
	}
	return fmt.Sprintf("%.3g Hz (%s, under the offered-load cap below)", sc.Rate, strings.Join(scaled, ", "))
}

// fleetCell formats a ztmesh figure and its ratio to the baseline's.
func fleetCell(v, base float64, format string) string {
	return fmt.Sprintf(format+" (%.2f×)", v, Ratio(v, base))
}

func fleetReport(sc *Scenario, quick bool, pairs []fleetPair) []*Section {
	s := &Section{Title: "Fleet: " + sc.Name}
	if sc.Description != "" {
		s.Text = append(s.Text, sc.Description)
	}
	last := pairs[len(pairs)-1]
	perZone := len(last.load.specs) / max(1, len(last.load.zones))
	s.Text = append(s.Text, fmt.Sprintf(
		"What ran: %s nodes spread round robin over %d zones (fewer at sizes below twice that, so that every zone has two members), each node publishing %d-byte maps at %s to its zone "+
			"(channel %q) for %s, starting at a random offset within one period; links of %s one way, %s; every node dials %d "+
			"peers of its zone and %d of any zone. Warm-up rounds of one message per node precede the measurement so that sender keys "+
			"are in place (steady state; see the cold start table). A delivery counts if it arrives within %s after the last publication; the delivery "+
			"ratio is deliveries / (publications × (zone members − 1)). Latency is from the publisher's call to the subscriber's "+
			"read, sealing and opening included, on one clock. The baseline is plain go-libp2p-pubsub with default settings on "+
			"the same links and topology, one topic per zone, in the same run. Its defaults include flood publishing, which ztmesh "+
			"turns off so that its peer filter decides every send: a ztmesh publisher reaches only its GossipSub mesh peers "+
			"directly, the baseline's every connected zone peer, so some of the latency ratio is hops. "+
			"Figures in parentheses are ztmesh / baseline.",
		fleetInts(sc.Sizes(quick)), sc.Zones, sc.MessageSize, fleetRates(sc, pairs), fleetChannel, sc.RunFor(quick),
		sc.Link.Link().Latency, fleetBandwidth(sc.Link.Bandwidth), sc.Degree, sc.Cross, fleetDrain))

	var bridges []string
	for _, p := range pairs {
		bridges = append(bridges, fmt.Sprintf("%d at %d nodes", len(p.load.bridges), len(p.load.specs)))
	}
	s.Text = append(s.Text, fmt.Sprintf(
		"Two things the harness adds, neither in ztmesh's data path. Links: the cluster's topology draws each node's zone peers "+
			"at random and can leave a zone in two groups that GossipSub cannot bridge (it forwards a zone's messages only among "+
			"that zone's subscribers), so links were added to join them (%s), the same in both systems. Reachability: a ztmesh "+
			"node that receives a message from an origin it is not connected to dials that origin for its sender key, at the "+
			"address the origin's member announcement gives; mocknet refuses dials between peers it has not linked, so the "+
			"members of each zone are linked (reachable, not connected). Those key fetches make each zone a full mesh of "+
			"connections over time (the peers/node column), each one a handshake and a member directory sync.",
		strings.Join(bridges, ", ")))

	// What the case study asks and what this machine can carry.
	bigN := len(last.load.specs)
	caseStudy := 5000.0 * 1 * (5000/50 - 1) * 200e3
	limits := fmt.Sprintf(
		"Where this machine limits the case study (%d CPUs, one process): 5,000 vehicles in 50 zones publishing 200 KB at 1 Hz "+
			"means 5,000 × 99 ≈ 495,000 deliveries a second, %.0f GB/s of payload to seal, copy and open, before GossipSub's "+
			"forwarding. This run offered %.0f deliveries/s (%.2f GB/s) at its largest size, %d nodes with %d per zone. ",
		runtime.NumCPU(), caseStudy/1e9, last.load.offered(), last.load.offered()*float64(sc.MessageSize)/1e9, bigN, perZone)
	if sc.MaxOffered > 0 {
		limits += fmt.Sprintf("The offered load is capped at %.0f deliveries/s (max_offered, about what this machine carries "+
			"without queueing); at the sizes where the rate would offer more, every node publishes at the lower rate given "+
			"above, so fewer vehicles publish during the run (the publishers column) and the larger sizes measure what scale "+
			"costs at the same load, not a heavier load. ", sc.MaxOffered)
	}
	if bigN < 5000 {
		limits += fmt.Sprintf("The 5,000-node point is not measured in this run (heap at %d nodes: %.1f MB a node); "+
			"it runs on its own, in 50 zones of 100 at a quarter of the load, with `make sim-large` "+
			"(simulations/large/fleet-5000.yaml), whose latest report is docs/fleet-5000/RESULTS.md. ",
			bigN, last.z.heapPerNode())
	}
	limits += fmt.Sprintf("The machine is also shared: the load average column is the machine's at the "+
		"end of each load; above %d, other work took CPU from this run and latencies include that queueing. Beyond CPU, "+
		"mocknet's latency model delivers each stream's large writes about one link latency apart, which caps a link at "+
		"some tens of 200 KB messages per second per direction.", runtime.NumCPU())
	s.Text = append(s.Text, limits)

	sweep := &Table{
		Caption: "Size sweep. Setup is creating, wiring and verifying every node (the baseline has nothing to verify). " +
			"Heap and RSS are the process's peaks during load divided by the node count; CPU is cores busy on average during load and drain.",
		Header: []string{"nodes", "zones", "rate Hz", "publishers", "offered deliveries/s", "setup s", "delivery", "p50 ms", "p95 ms", "p99 ms", "heap MB/node", "RSS MB/node", "CPU cores", "peers/node", "publish errors", "load avg"},
	}
	base := &Table{
		Caption: "The baseline's own figures.",
		Header:  []string{"nodes", "setup s", "delivery", "p50 ms", "p95 ms", "p99 ms", "heap MB/node", "RSS MB/node", "CPU cores", "peers/node", "load avg"},
	}
	warm := &Table{
		Caption: "Cold start: the first warm-up round (one small message per publishing node, before load). For ztmesh its latency includes " +
			"dialing the origin for its sender key, with a handshake and a member directory sync when the two were not connected; " +
			"a message whose key does not arrive in time is dropped. Publishers warm up in batches of about " + strconv.Itoa(fleetWarmupBatch) +
			" deliveries, each batch after the last one's deliveries (or " + fleetWarmupWait.String() + ", or " + fleetWarmupStall.String() +
			" without a new delivery), the same in both systems: " +
			"on a fleet every vehicle has its own CPU, and here every node's dials and handshakes at once would share two cores " +
			"(in a trial with 200 nodes in zones of 100, handshakes then missed their 5 s grace period 9,700 times). " +
			"Publishers whose message did not reach every receiver publish again, in rounds (at most " + strconv.Itoa(fleetWarmupRounds) +
			" in all), until each has been delivered whole once; the load is measured after that. " +
			"The last column counts what ztmesh's validators dropped over the whole run (warm-up and load), by reason.",
		Header: []string{"nodes", "batches", "ztmesh delivery", "ztmesh p50 ms", "ztmesh p95 ms", "ztmesh rounds", "repeated publishers", "publishers warmed up",
			"baseline delivery", "baseline p50 ms", "baseline p95 ms", "ztmesh drops"},
	}
	cdf := &Plot{File: fleetFile(sc.Name, "latency-cdf.png"), Title: "Fleet: latency CDF", XLabel: "latency (ms)", YLabel: "fraction of deliveries"}
	overTime := &Plot{File: fleetFile(sc.Name, "delivery-over-time.png"), Title: "Fleet: delivery ratio of the messages sent in each second",
		XLabel: "second of load", YLabel: "delivery ratio"}
	latTime := &Plot{File: fleetFile(sc.Name, "latency-over-time.png"), Title: "Fleet: p95 latency of the messages sent in each second",
		XLabel: "second of load", YLabel: "p95 latency (ms)"}
	mem := &Plot{File: fleetFile(sc.Name, "memory.png"), Title: "Fleet: memory per node", XLabel: "nodes", YLabel: "MB per node"}
	cpu := &Plot{File: fleetFile(sc.Name, "cpu.png"), Title: "Fleet: CPU during load", XLabel: "nodes", YLabel: "cores busy"}
	var (
		zHeap, bHeap, zRSS, bRSS, zCPU, bCPU Series
		findings                             []string
	)
	zHeap.Name, bHeap.Name, zRSS.Name, bRSS.Name, zCPU.Name, bCPU.Name = "ztmesh heap", "baseline heap", "ztmesh RSS", "baseline RSS", "ztmesh", "baseline"
	for _, p := range pairs {
		z, b := p.z, p.base
		n := float64(z.nodes)
		sweep.Add(z.nodes, len(p.load.zones), fmt.Sprintf("%.3g", p.load.rate), len(p.load.publishers), fmt.Sprintf("%.0f", p.load.offered()),
			fleetCell(z.setup.Seconds(), b.setup.Seconds(), "%.1f"),
			fleetCell(z.ratio(), b.ratio(), "%.4f"),
			fleetCell(ms(z.pct(0.5)), ms(b.pct(0.5)), "%.0f"),
			fleetCell(ms(z.pct(0.95)), ms(b.pct(0.95)), "%.0f"),
			fleetCell(ms(z.pct(0.99)), ms(b.pct(0.99)), "%.0f"),
			fleetCell(z.heapPerNode(), b.heapPerNode(), "%.2f"),
			fleetCell(z.rssPerNode(), b.rssPerNode(), "%.2f"),
			fleetCell(z.cores, b.cores, "%.2f"),
			fleetCell(z.peers, b.peers, "%.1f"),
			z.failed, z.loadavg)
		base.Add(b.nodes, fmt.Sprintf("%.1f", b.setup.Seconds()), fmt.Sprintf("%.4f", b.ratio()),
			fmt.Sprintf("%.0f", ms(b.pct(0.5))), fmt.Sprintf("%.0f", ms(b.pct(0.95))), fmt.Sprintf("%.0f", ms(b.pct(0.99))),
			fmt.Sprintf("%.2f", b.heapPerNode()), fmt.Sprintf("%.2f", b.rssPerNode()), fmt.Sprintf("%.2f", b.cores),
			fmt.Sprintf("%.1f", b.peers), b.loadavg)
		drops := summarize(z.dropped)
		if drops == "" {
			drops = "none"
		}
		warm.Add(z.nodes, z.warmupBatches, fmt.Sprintf("%.4f", Ratio(float64(len(z.warmup)), float64(z.warmupWant))),
			fmt.Sprintf("%.0f", ms(Percentile(z.warmup, 0.5))), fmt.Sprintf("%.0f", ms(Percentile(z.warmup, 0.95))),
			z.warmupRounds, z.warmupRepeated, fmt.Sprintf("%.4f", z.warmupWhole),
			fmt.Sprintf("%.4f", Ratio(float64(len(b.warmup)), float64(b.warmupWant))),
			fmt.Sprintf("%.0f", ms(Percentile(b.warmup, 0.5))), fmt.Sprintf("%.0f", ms(Percentile(b.warmup, 0.95))), drops)
		cdf.Series = append(cdf.Series, CDF(fmt.Sprintf("ztmesh %d", z.nodes), z.all, 200), CDF(fmt.Sprintf("baseline %d", b.nodes), b.all, 200))
		overTime.Series = append(overTime.Series, z.overTime(fmt.Sprintf("ztmesh %d", z.nodes)), b.overTime(fmt.Sprintf("baseline %d", b.nodes)))
		latTime.Series = append(latTime.Series, z.latencyOverTime(fmt.Sprintf("ztmesh %d", z.nodes)), b.latencyOverTime(fmt.Sprintf("baseline %d", b.nodes)))
		zHeap.X, zHeap.Y = append(zHeap.X, n), append(zHeap.Y, z.heapPerNode())
		bHeap.X, bHeap.Y = append(bHeap.X, n), append(bHeap.Y, b.heapPerNode())
		zRSS.X, zRSS.Y = append(zRSS.X, n), append(zRSS.Y, z.rssPerNode())
		bRSS.X, bRSS.Y = append(bRSS.X, n), append(bRSS.Y, b.rssPerNode())
		zCPU.X, zCPU.Y = append(zCPU.X, n), append(zCPU.Y, z.cores)
		bCPU.X, bCPU.Y = append(bCPU.X, n), append(bCPU.Y, b.cores)

		var missed []string
		if r := z.ratio(); !(r >= fleetGoalDelivery) {
			missed = append(missed, fmt.Sprintf("delivery %.4f < %.0f%% (%d of %d; %d publish errors)",
				r, 100*fleetGoalDelivery, z.delivered, z.expected, z.failed))
		}
		if p95 := z.pct(0.95); p95 >= fleetGoalP95 || len(z.all) == 0 {
			missed = append(missed, fmt.Sprintf("p95 %s ≥ %s", p95.Round(time.Millisecond), fleetGoalP95))
		}
		if len(missed) > 0 {
			findings = append(findings, fmt.Sprintf("Goal missed at %d nodes: %s (baseline: delivery %.4f, p95 %s).",
				z.nodes, strings.Join(missed, "; "), b.ratio(), b.pct(0.95).Round(time.Millisecond)))
		} else {
			at := ""
			if p.load.rate < 1 {
				at = fmt.Sprintf(" at the reduced rate of %.3g Hz", p.load.rate)
			}
			findings = append(findings, fmt.Sprintf("Goal met at %d nodes%s: delivery %.4f, p95 %s.",
				z.nodes, at, z.ratio(), z.pct(0.95).Round(time.Millisecond)))
		}
	}
	s.Text = append(s.Text, findings...)
	// A log axis shows only decade ticks: use it when latencies span one.
	lo, hi := 0.0, 0.0
	for _, sr := range cdf.Series {
		for _, x := range sr.X {
			if x > 0 && (lo == 0 || x < lo) {
				lo = x
			}
			hi = max(hi, x)
		}
	}
	cdf.LogX = lo > 0 && hi/lo > 20
	mem.Series = []Series{zHeap, bHeap, zRSS, bRSS}
	cpu.Series = []Series{zCPU, bCPU}
	s.Tables = append(s.Tables, sweep, base, fleetZoneTable(last), warm)
	s.Plots = append(s.Plots, cdf, overTime, latTime, mem, cpu)
	return []*Section{s}
}

// fleetZoneTable lists the zones with the highest p95 at one size, and all
// zones together.
func fleetZoneTable(p fleetPair) *Table {
	z, b := p.z, p.base
	order := make([]int, len(z.zone))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, c int) int {
		return -fleetCompare(Percentile(z.zone[a].lat, 0.95), Percentile(z.zone[c].lat, 0.95))
	})
	shown := min(len(order), fleetZonesShown)
	t := &Table{
		Caption: fmt.Sprintf("Per zone at %d nodes: the %d zones (of %d) with the highest ztmesh p95, then all zones together. "+
			"Ratios in parentheses are to the baseline's same zone.", z.nodes, shown, len(order)),
		Header: []string{"zone", "members", "messages", "delivery", "p50 ms", "p95 ms", "p99 ms"},
	}
	row := func(name string, members, published, delivered, expected int, lat []time.Duration,
		bDelivered, bExpected int, bLat []time.Duration) {
		t.Add(name, members, published,
			fleetCell(Ratio(float64(delivered), float64(expected)), Ratio(float64(bDelivered), float64(bExpected)), "%.4f"),
			fleetCell(ms(Percentile(lat, 0.5)), ms(Percentile(bLat, 0.5)), "%.0f"),
			fleetCell(ms(Percentile(lat, 0.95)), ms(Percentile(bLat, 0.95)), "%.0f"),
			fleetCell(ms(Percentile(lat, 0.99)), ms(Percentile(bLat, 0.99)), "%.0f"))
	}
	for _, i := range order[:shown] {
		zz, bz := z.zone[i], b.zone[i]
		row(zz.name, zz.members, zz.published, zz.delivered, zz.expected, zz.lat, bz.delivered, bz.expected, bz.lat)
	}
	row("all zones", z.nodes, z.published, z.delivered, z.expected, z.all, b.delivered, b.expected, b.all)
	return t
}

func fleetCompare(a, b time.Duration) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// latencyOverTime is the p95 latency of the messages sent in each second
// of load.
func (r *fleetResult) latencyOverTime(name string) Series {
	s := Series{Name: name}
	for i, b := range r.buckets {
		if len(b.lat) == 0 {
			continue
		}
		s.X = append(s.X, float64(i)+0.5)
		s.Y = append(s.Y, ms(Percentile(b.lat, 0.95)))
	}
	return s
}

// overTime is the delivery ratio of the messages sent in each second of load.
func (r *fleetResult) overTime(name string) Series {
	s := Series{Name: name}
	for i, b := range r.buckets {
		if b.expected == 0 {
			continue
		}
		s.X = append(s.X, float64(i)+0.5)
		s.Y = append(s.Y, float64(b.delivered)/float64(b.expected))
	}
	return s
}

func fleetInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ", ")
}

func fleetBandwidth(bw float64) string {
	if bw == 0 {
		return "unlimited bandwidth"
	}
	return fmt.Sprintf("%.0f MB/s per direction", bw/1e6)
}

// fleetFile makes a plot file name unique to a scenario.
func fleetFile(scenario, suffix string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, strings.ToLower(scenario)) + "-" + suffix
}
