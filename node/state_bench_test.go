package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	ps "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ztmesh/ztmesh/crdt"
	"github.com/ztmesh/ztmesh/pubsub"
)

// BenchmarkStateConvergence measures how fast shared state converges: a
// 200 KB perception map, rewritten at 10 Hz by one node, replicated on 20
// nodes. Next to it, in the same run and on the same topology, the raw
// GossipSub latency of a 200 KB message.
//
//   - ztmesh: 20 nodes started like every node test here (real hosts on
//     127.0.0.1, credentials for zone "north", the default policy, state
//     stores on disk), each with the LWW map "map" open. Node 0 Puts a fresh
//     200 KB value under its key <DID>/map every 100 ms; an update has
//     converged when every replica (the writer's included) has reported,
//     through Replica.Watch, holding it or a newer one. That is commit, seal,
//     sign, GossipSub, validation, open, delta decode, entry verification,
//     authorization and the synced commit on every node.
//   - gossipsub: 20 plain go-libp2p hosts (libp2p.New, 127.0.0.1 over TCP)
//     with ps.NewGossipSub and its default options (strict signing, flood
//     publishing); host 0 publishes a 200 KB message every 100 ms; a
//     message has arrived when every subscriber (the publisher's own
//     subscription included) has received it or a newer one.
//
// Both link every pair of nodes (see convEdges for why). Before anything is
// timed the topic meshes are grafted and warm-up updates reach every
// replica, so every ztmesh node already holds the writer's sender key.
//
// One op is, for each of the two, convUpdates updates (5 s at 10 Hz); the
// order alternates from op to op. Metrics, per implementation:
// <impl>-p50-ms and <impl>-p99-ms, from the Put or Publish call until every
// replica holds the update; <impl>-delivery-ratio, the share of updates
// each remote replica saw itself rather than only a newer one (1: no loss,
// no reordering); <impl>-cpu-ms/update, the process's CPU time (every host
// is in it) per update; <impl>-setup-s, start, link, verify, graft and warm
// up. And the ratios ztmesh/gossipsub: p50-ratio, p99-ratio, cpu-ratio. The
// log adds, for ztmesh, the time until the zone channel of every remote
// node delivered the delta, before the state decodes and commits it. No
// number fails the benchmark.
//
//	go test -run '^$' -bench StateConvergence -benchtime 1x ./node
//
// takes about 15 s. Every host runs in this process: ztmesh needs about
// 1.6 cores of a 2-core machine at 10 Hz, so any other load there turns
// its queues into seconds of latency. For numbers to act on, use an idle
// machine and -benchtime 3x -count 3; compare the ratios.
func BenchmarkStateConvergence(b *testing.B) {
	nets := [2]*convNet{newGossipSubConvNet(b), newStateConvNet(b)}
	var st [2]convStats
	order := [2]int{0, 1}
	for b.Loop() {
		for _, i := range order {
			st[i].add(nets[i].run(b, convUpdates))
		}
		order[0], order[1] = order[1], order[0]
	}
	for i, n := range nets {
		p := n.name + "-"
		b.ReportMetric(st[i].quantileMs(0.50), p+"p50-ms")
		b.ReportMetric(st[i].quantileMs(0.99), p+"p99-ms")
		b.ReportMetric(st[i].deliveryRatio(), p+"delivery-ratio")
		b.ReportMetric(n.setup.Seconds(), p+"setup-s")
		if c := st[i].cpuMsPerUpdate(); c >= 0 {
			b.ReportMetric(c, p+"cpu-ms/update")
		}
		b.Logf("%s: %d updates, %d converged; publish call p50 %.1f ms p99 %.1f ms; first remote replica p50 %.1f ms; send rate %.1f Hz",
			n.name, st[i].updates, len(st[i].lat), msQuantile(st[i].publish, 0.50), msQuantile(st[i].publish, 0.99),
			msQuantile(st[i].first, 0.50), st[i].rate())
		if n.tap != nil {
			b.Logf("%s: delta delivered by the zone channel of every remote node (before decode and commit) p50 %.1f ms p99 %.1f ms, for %d updates",
				n.name, msQuantile(st[i].zone, 0.50), msQuantile(st[i].zone, 0.99), len(st[i].zone))
		}
		if n.diag != nil {
			b.Logf("%s: %s", n.name, n.diag())
		}
	}
	gs, zt := &st[0], &st[1]
	b.ReportMetric(zt.quantileMs(0.50)/gs.quantileMs(0.50), "p50-ratio")
	b.ReportMetric(zt.quantileMs(0.99)/gs.quantileMs(0.99), "p99-ratio")
	if zc, gc := zt.cpuMsPerUpdate(), gs.cpuMsPerUpdate(); zc > 0 && gc > 0 {
		b.ReportMetric(zc/gc, "cpu-ratio")
	}
}

const (
	convNodes   = 20
	convSize    = 200 << 10
	convEvery   = 100 * time.Millisecond // 10 Hz
	convUpdates = 50                     // per op and implementation
	// convLostAfter is how long a batch waits, after its last update, for
	// that update to reach every replica.
	convLostAfter = 5 * time.Second
	convZone      = "north"
	convState     = "map"
	// convHeader is the update's sequence number at the start of each value.
	convHeader = 8
)

// convEdges links every pair of nodes. A ztmesh node accepts a zone
// message, and merges a state entry, only from an origin it has verified
// itself (pubsub's "unknown origin"), so on a sparser topology the writer's
// updates never reach the nodes not linked to it.
func convEdges() [][2]int {
	var out [][2]int
	for i := range convNodes {
		for j := i + 1; j < convNodes; j++ {
			out = append(out, [2]int{i, j})
		}
	}
	return out
}

// convNet is one implementation on the topology: replica 0 writes, every
// replica (0 included) reports what it holds through record.
type convNet struct {
	name    string
	publish func(ctx context.Context, data []byte) error
	setup   time.Duration
	diag    func() string // extra detail for the log, or nil

	mu   sync.Mutex
	next uint64                 // last sequence number used, never reused
	sent map[uint64]time.Time   // when each update's Put or Publish was called
	got  map[uint64][]time.Time // when each replica first reported each update
	// tap, for ztmesh only: when each node's zone channel delivered each
	// update's delta, before the state decodes and commits it.
	tap map[uint64][]time.Time
}

func newConvNet(name string) *convNet {
	return &convNet{name: name, sent: map[uint64]time.Time{}, got: map[uint64][]time.Time{}}
}

// record notes that replica holds the update whose value is data, unless
// the update belongs to a finished batch.
func (c *convNet) record(replica int, data []byte, at time.Time) {
	if len(data) < convHeader {
		return
	}
	seq := binary.BigEndian.Uint64(data)
	c.mu.Lock()
	defer c.mu.Unlock()
	if g, ok := c.got[seq]; ok && g[replica].IsZero() {
		g[replica] = at
	}
}

// tapped notes that the zone channel of node delivered the update seq.
func (c *convNet) tapped(node int, seq uint64, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if g, ok := c.tap[seq]; ok && g[node].IsZero() {
		g[node] = at
	}
}

// heldBy reports whether every replica holds seq or a newer update.
func (c *convNet) heldBy(seq uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for r := range convNodes {
		held := false
		for s := seq; s <= c.next && !held; s++ {
			if g, ok := c.got[s]; ok && !g[r].IsZero() {
				held = true
			}
		}
		if !held {
			return false
		}
	}
	return true
}

// run sends updates at 10 Hz, waits for the last one to reach every
// replica (or convLostAfter), and returns the batch's numbers.
func (c *convNet) run(b *testing.B, updates int) convStats {
	ctx := context.Background()
	tick := time.NewTicker(convEvery)
	defer tick.Stop()
	seqs := make([]uint64, 0, updates)
	var publish []time.Duration
	cpu0, cpuOK := processCPU()
	for i := range updates {
		if i > 0 {
			<-tick.C
		}
		data := make([]byte, convSize)
		rand.Read(data[convHeader:])
		c.mu.Lock()
		c.next++
		seq := c.next
		binary.BigEndian.PutUint64(data, seq)
		c.got[seq] = make([]time.Time, convNodes)
		if c.tap != nil {
			c.tap[seq] = make([]time.Time, convNodes)
		}
		start := time.Now()
		c.sent[seq] = start
		c.mu.Unlock()
		if err := c.publish(ctx, data); err != nil {
			b.Fatalf("%s: update %d: %v", c.name, seq, err)
		}
		publish = append(publish, time.Since(start))
		seqs = append(seqs, seq)
	}
	last := seqs[len(seqs)-1]
	for deadline := time.Now().Add(convLostAfter); !c.heldBy(last) && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	cpu1, cpuOK1 := processCPU()

	c.mu.Lock()
	defer c.mu.Unlock()
	st := convStats{updates: updates, publish: publish, intervals: updates - 1, sending: c.sent[last].Sub(c.sent[seqs[0]])}
	if cpuOK && cpuOK1 {
		st.cpu = cpu1 - cpu0
	} else {
		st.cpu = -1
	}
	for i, seq := range seqs {
		var worst, first time.Duration
		converged := true
		for r := range convNodes {
			if r != 0 {
				st.expected++
				if !c.got[seq][r].IsZero() {
					st.delivered++
				}
			}
			// The replica holds seq from when it first held seq or a newer update.
			var held time.Time
			for _, s := range seqs[i:] {
				if t := c.got[s][r]; !t.IsZero() && (held.IsZero() || t.Before(held)) {
					held = t
				}
			}
			if held.IsZero() {
				converged = false
				continue
			}
			d := held.Sub(c.sent[seq])
			worst = max(worst, d)
			if r != 0 && (first == 0 || d < first) {
				first = d
			}
		}
		if converged {
			st.lat = append(st.lat, worst)
			st.first = append(st.first, first)
		}
		if c.tap != nil {
			var all time.Duration
			for r := 1; r < convNodes; r++ {
				t := c.tap[seq][r]
				if t.IsZero() {
					all = -1
					break
				}
				all = max(all, t.Sub(c.sent[seq]))
			}
			if all >= 0 {
				st.zone = append(st.zone, all)
			}
		}
	}
	for _, seq := range seqs {
		delete(c.sent, seq)
		delete(c.got, seq)
		delete(c.tap, seq)
	}
	return st
}

// warm sends batches of a few updates until one reaches every replica
// without loss: the topic mesh is grafted and every key is pulled.
func (c *convNet) warm(b *testing.B) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := c.run(b, 5)
		if len(st.lat) == st.updates && st.delivered == st.expected {
			return
		}
		if time.Now().After(deadline) {
			if c.diag != nil {
				b.Log(c.diag())
			}
			b.Fatalf("%s: warm-up updates still not reaching every replica after 30s (%d/%d converged, %d/%d delivered)",
				c.name, len(st.lat), st.updates, st.delivered, st.expected)
		}
	}
}

// convStats are the numbers of one or more batches.
type convStats struct {
	updates             int
	lat                 []time.Duration // per converged update: until every replica held it
	first               []time.Duration // per converged update: until the first remote replica held it
	publish             []time.Duration // how long each Put or Publish call took
	zone                []time.Duration // ztmesh: until every remote node's zone channel delivered the delta
	delivered, expected int             // (update, remote replica) pairs that saw the update itself
	intervals           int             // between updates sent
	sending             time.Duration   // the sum of those intervals
	cpu                 time.Duration   // CPU time of the process (every host) while sending and waiting; -1 if unknown
}

func (s *convStats) add(o convStats) {
	s.updates += o.updates
	s.lat = append(s.lat, o.lat...)
	s.first = append(s.first, o.first...)
	s.publish = append(s.publish, o.publish...)
	s.zone = append(s.zone, o.zone...)
	s.delivered += o.delivered
	s.expected += o.expected
	s.intervals += o.intervals
	if s.cpu >= 0 && o.cpu >= 0 {
		s.cpu += o.cpu
	} else {
		s.cpu = -1
	}
	s.sending += o.sending
}

func (s *convStats) quantileMs(q float64) float64 { return msQuantile(s.lat, q) }

// cpuMsPerUpdate is the process's CPU time per update, every host
// included, or -1 if unknown.
func (s *convStats) cpuMsPerUpdate() float64 {
	if s.cpu < 0 || s.updates == 0 {
		return -1
	}
	return float64(s.cpu) / float64(time.Millisecond) / float64(s.updates)
}

func (s *convStats) deliveryRatio() float64 {
	if s.expected == 0 {
		return 0
	}
	return float64(s.delivered) / float64(s.expected)
}

// rate is how many updates per second were sent: 10, unless the Put or
// Publish call could not keep up.
func (s *convStats) rate() float64 {
	if s.sending <= 0 {
		return 0
	}
	return float64(s.intervals) / s.sending.Seconds()
}

// processCPU returns the CPU time (user + system) of the process so far,
// from /proc/self/stat (Linux, 100 ticks a second).
func processCPU() (time.Duration, bool) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command name may contain spaces
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state); utime and stime are fields 14 and 15
	if len(f) < 13 {
		return 0, false
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(u+st) * 10 * time.Millisecond, true
}

// msQuantile is the q-quantile (nearest rank) of ds in milliseconds, or -1
// if ds is empty.
func msQuantile(ds []time.Duration, q float64) float64 {
	if len(ds) == 0 {
		return -1
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	i = min(max(i, 0), len(s)-1)
	return float64(s[i]) / float64(time.Millisecond)
}

// newStateConvNet starts 20 ztmesh nodes in zone north, links them, opens
// the state on each, and warms it up.
func newStateConvNet(b *testing.B) *convNet {
	start := time.Now()
	m := newMesh(b)
	nodes := make([]*testNode, convNodes)
	for i := range nodes {
		nodes[i] = m.startIn([]string{convZone})
	}
	started := time.Since(start)
	edges := convEdges()
	for _, e := range edges {
		connect(b, nodes[e[0]], nodes[e[1]])
	}
	for _, e := range edges {
		x, y := nodes[e[0]], nodes[e[1]]
		eventually(b, 10*time.Second, "neighbours verified", func() bool {
			return verifiedBy(x, y.host.ID()) && verifiedBy(y, x.host.ID())
		})
	}
	verified := time.Since(start)

	reps := make([]*crdt.Replica, convNodes)
	for i, n := range nodes {
		r, err := n.State(convZone, convState, crdt.LWWMap)
		if err != nil {
			b.Fatal(err)
		}
		reps[i] = r
	}
	key := ownKey(nodes[0], convState)
	c := newConvNet("ztmesh")
	c.publish = func(ctx context.Context, data []byte) error {
		_, err := reps[0].Put(ctx, key, data)
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	for i, r := range reps {
		changes := r.Watch(ctx)
		go func() {
			for ch := range changes {
				if ch.Key == key && !ch.Deleted {
					c.record(i, ch.Value, time.Now())
				}
			}
		}()
	}
	// A second subscription on each node's state channel times the zone
	// messaging alone. Its deltas are not decoded: the sequence number is
	// read from the first base64 characters of the value.
	c.tap = map[uint64][]time.Time{}
	tapped := make([]atomic.Uint64, convNodes)
	for i, n := range nodes {
		sub, err := n.Mesh().Subscribe(convZone, stateChannelPrefix+convState)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(sub.Cancel)
		go func() {
			for {
				d, err := sub.Next(ctx)
				if err != nil {
					return
				}
				tapped[i].Add(1)
				if seq, ok := deltaSeq(d.Data); ok {
					c.tapped(i, seq, time.Now())
				}
			}
		}()
	}
	t, err := pubsub.ZoneTopic(nodes[0].cfg.Mesh, convZone, stateChannelPrefix+convState)
	if err != nil {
		b.Fatal(err)
	}
	waitSubscribed(b, t.String(), func(i int) (*ps.PubSub, peer.ID) { return nodes[i].Mesh().PubSub(), nodes[i].host.ID() })
	c.diag = func() string {
		var dropped uint64
		rejected := map[string]uint64{}
		for i, n := range nodes {
			dropped += reps[i].DroppedChanges()
			for k, v := range n.Mesh().Stats().Rejected() {
				rejected[k] += v
			}
		}
		// Every delta the remote nodes' zone channels delivered, against
		// every update sent (warm-up included): fewer means GossipSub lost
		// or dropped some.
		var read uint64
		refused := 0
		for i, n := range nodes[1:] {
			read += tapped[i+1].Load()
			if n.logs.find(map[string]string{"event_type": "state_delta_refused"}) != nil {
				refused++
			}
		}
		c.mu.Lock()
		sent := c.next
		c.mu.Unlock()
		return fmt.Sprintf("deltas delivered to the remote nodes %d of %d sent; nodes that refused a delta %d; watch changes dropped %d; messages rejected or ignored, by reason: %v",
			read, sent*(convNodes-1), refused, dropped, rejected)
	}
	c.warm(b)
	c.setup = time.Since(start)
	b.Logf("ztmesh setup: %d nodes started in %s, linked and verified at %s, warm at %s",
		convNodes, started.Round(time.Millisecond), verified.Round(time.Millisecond), c.setup.Round(time.Millisecond))
	return c
}

// deltaSeq reads an update's sequence number from an encoded delta
// without decoding it: the value is the first base64 string after
// "value":, and its first 12 characters are 9 bytes.
func deltaSeq(delta []byte) (uint64, bool) {
	const field = `"value":"`
	i := bytes.Index(delta, []byte(field))
	if i < 0 || len(delta) < i+len(field)+12 {
		return 0, false
	}
	var head [9]byte
	if _, err := base64.StdEncoding.Decode(head[:], delta[i+len(field):i+len(field)+12]); err != nil {
		return 0, false
	}
	return binary.BigEndian.Uint64(head[:]), true
}

// newGossipSubConvNet starts 20 plain go-libp2p hosts with default
// GossipSub, links them like the ztmesh nodes, and warms up the topic.
func newGossipSubConvNet(b *testing.B) *convNet {
	start := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	name := "ztmesh/" + DefaultMesh + "/zone/" + convZone + "/" + stateChannelPrefix + convState
	hosts := make([]host.Host, convNodes)
	subs := make([]*ps.PubSub, convNodes)
	c := newConvNet("gossipsub")
	var first *ps.Topic
	for i := range hosts {
		h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { h.Close() })
		p, err := ps.NewGossipSub(ctx, h)
		if err != nil {
			b.Fatal(err)
		}
		t, err := p.Join(name)
		if err != nil {
			b.Fatal(err)
		}
		s, err := t.Subscribe()
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(s.Cancel)
		go func() {
			for {
				msg, err := s.Next(ctx)
				if err != nil {
					return
				}
				c.record(i, msg.Data, time.Now())
			}
		}()
		hosts[i], subs[i] = h, p
		if i == 0 {
			first = t
		}
	}
	for _, e := range convEdges() {
		x, y := hosts[e[0]], hosts[e[1]]
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		err := x.Connect(cctx, peer.AddrInfo{ID: y.ID(), Addrs: y.Addrs()})
		ccancel()
		if err != nil {
			b.Fatal(err)
		}
	}
	c.publish = func(ctx context.Context, data []byte) error { return first.Publish(ctx, data) }
	waitSubscribed(b, name, func(i int) (*ps.PubSub, peer.ID) { return subs[i], hosts[i].ID() })
	c.warm(b)
	c.setup = time.Since(start)
	return c
}

// waitSubscribed waits until every node knows each of its neighbours as a
// subscriber of topic.
func waitSubscribed(b *testing.B, topic string, node func(i int) (*ps.PubSub, peer.ID)) {
	for _, e := range convEdges() {
		for _, pair := range [2][2]int{{e[0], e[1]}, {e[1], e[0]}} {
			p, _ := node(pair[0])
			_, q := node(pair[1])
			eventually(b, 10*time.Second, "neighbour subscribed to "+topic, func() bool {
				return slices.Contains(p.ListPeers(topic), q)
			})
		}
	}
}
