package pubsub

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
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

	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/policy"
)

// The zone-messaging benchmark harness. It builds one of two
// implementations on one topology and drives it with a paced publisher:
//
//   - implGossipSub: plain libp2p hosts (127.0.0.1, TCP, go-libp2p's default
//     options) with ps.NewGossipSub and its default options (strict signing,
//     every protocol, no peer scoring; in v0.19.0 flood publishing is off by
//     default, as ztmesh sets it), publishing raw payloads;
//   - implZtmesh: ztmesh nodes built as in harness_test.go (real credentials,
//     the real default policy and key packages, no handshake) with
//     Mesh.Publish and Mesh.Subscribe, and everything New turns on (the
//     zone validator, the peer filter, peer scoring).
//
// Both link every pair of hosts (a full mesh of connections); host 0
// publishes and every other host subscribes to one topic. The harness in
// harness_test.go takes a *testing.T, so the ztmesh nodes are built here by
// benchNode and benchLink, which do what tnet.add and tnet.link do.

const (
	implGossipSub = "gossipsub"
	implZtmesh    = "ztmesh"

	benchZone    = "north"
	benchChannel = "maps"
	// benchTopic is the zone topic; the baseline uses the same name.
	benchTopic = "ztmesh/fleet/zone/" + benchZone + "/" + benchChannel

	// payloadHeader is the harness's header at the start of every payload:
	// the message number and its send time (nanoseconds since the net's
	// base time, a monotonic clock reading).
	payloadHeader = 16

	// lostAfter is how long the publisher waits for a message to reach
	// every subscriber before it counts the message as lost and goes on.
	lostAfter = 5 * time.Second
	// meshSettle is waited once every subscription is seen: GossipSub's
	// first heartbeat (100 ms after start, then every second) grafts the
	// topic meshes.
	meshSettle = 1200 * time.Millisecond
)

// benchNet is one implementation on one topology: host 0 publishes, the
// others subscribe. It is driven from one goroutine (the benchmark's); the
// subscribers' readers report deliveries to the current tracker.
type benchNet struct {
	impl    string
	hosts   int
	subs    int
	publish func(ctx context.Context, data []byte) error

	base   time.Time // send and receive times are offsets from base
	next   uint64    // next message number: never reused, so a late delivery of a lost message is not counted twice
	filler []byte    // random payload bytes after the header
	tr     atomic.Pointer[tracker]
}

// newBenchNet builds impl on hosts hosts, links every pair, waits until
// every host sees every subscriber and GossipSub has grafted, and starts the
// readers. Everything it starts is closed by owner's cleanup.
func newBenchNet(owner testing.TB, impl string, hosts int) (*benchNet, error) {
	n := &benchNet{impl: impl, hosts: hosts, subs: hosts - 1, base: time.Now(), filler: make([]byte, 1<<20)}
	rand.Read(n.filler)
	ctx, cancel := context.WithCancel(context.Background())
	var readers sync.WaitGroup
	var err error
	var listPeers []func() []peer.ID
	var self []peer.ID
	switch impl {
	case implGossipSub:
		listPeers, self, err = n.buildGossipSub(owner, ctx, &readers)
	case implZtmesh:
		listPeers, self, err = n.buildZtmesh(owner, ctx, &readers)
	default:
		err = fmt.Errorf("unknown implementation %q", impl)
	}
	// Registered last, so it runs first: the readers stop before the hosts close.
	owner.Cleanup(func() { cancel(); readers.Wait() })
	if err != nil {
		return nil, err
	}
	if err := waitSubscribed(listPeers, self); err != nil {
		return nil, fmt.Errorf("%s, %d hosts: %w", impl, hosts, err)
	}
	time.Sleep(meshSettle)
	return n, nil
}

// buildGossipSub builds the baseline: GossipSub with its default options.
func (n *benchNet) buildGossipSub(owner testing.TB, ctx context.Context, readers *sync.WaitGroup) ([]func() []peer.ID, []peer.ID, error) {
	hs := make([]host.Host, n.hosts)
	pss := make([]*ps.PubSub, n.hosts)
	for i := range hs {
		h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
		if err != nil {
			return nil, nil, err
		}
		owner.Cleanup(func() { h.Close() })
		hs[i] = h
		if pss[i], err = ps.NewGossipSub(ctx, h); err != nil {
			return nil, nil, err
		}
	}
	if err := connectAll(hs); err != nil {
		return nil, nil, err
	}
	pub, err := pss[0].Join(benchTopic)
	if err != nil {
		return nil, nil, err
	}
	n.publish = func(ctx context.Context, data []byte) error { return pub.Publish(ctx, data) }
	for _, p := range pss[1:] {
		t, err := p.Join(benchTopic)
		if err != nil {
			return nil, nil, err
		}
		sub, err := t.Subscribe()
		if err != nil {
			return nil, nil, err
		}
		n.startReader(ctx, readers, func(ctx context.Context) ([]byte, error) {
			m, err := sub.Next(ctx)
			if err != nil {
				return nil, err
			}
			return m.Data, nil
		})
	}
	return gossipSubPeers(pss), hostIDs(hs), nil
}

// buildZtmesh builds ztmesh nodes, all members of zone north, with the
// default Config (hybrid KEM, default skew, rotation and seen-cache TTL).
func (n *benchNet) buildZtmesh(owner testing.TB, ctx context.Context, readers *sync.WaitGroup) ([]func() []peer.ID, []peer.ID, error) {
	iss, err := did.GenerateIdentity(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	ver, err := did.NewVerifier([]did.DID{iss.DID()})
	if err != nil {
		return nil, nil, err
	}
	nodes := make([]*tnode, n.hosts)
	for i := range nodes {
		if nodes[i], err = benchNode(owner, iss, ver, []string{benchZone}); err != nil {
			return nil, nil, err
		}
	}
	hs := make([]host.Host, len(nodes))
	pss := make([]*ps.PubSub, len(nodes))
	for i, a := range nodes {
		hs[i], pss[i] = a.h, a.mesh.PubSub()
		for _, b := range nodes[i+1:] {
			if err := benchLink(a, b); err != nil {
				return nil, nil, err
			}
		}
	}
	pub := nodes[0].mesh
	n.publish = func(ctx context.Context, data []byte) error {
		_, err := pub.Publish(ctx, benchZone, benchChannel, data)
		return err
	}
	for _, x := range nodes[1:] {
		sub, err := x.mesh.Subscribe(benchZone, benchChannel)
		if err != nil {
			return nil, nil, err
		}
		n.startReader(ctx, readers, func(ctx context.Context) ([]byte, error) {
			d, err := sub.Next(ctx)
			if err != nil {
				return nil, err
			}
			return d.Data, nil
		})
	}
	return gossipSubPeers(pss), hostIDs(hs), nil
}

// benchNode is tnet.add for a testing.TB, with the default Config.
func benchNode(owner testing.TB, iss *did.Identity, ver *did.Verifier, zones []string) (*tnode, error) {
	id, err := did.GenerateIdentity(rand.Reader)
	if err != nil {
		return nil, err
	}
	tok, err := did.Issue(iss, id.DID(), did.Claims{Role: "vehicle", TrustScore: 0.9, Zones: zones, SoftwareVersion: "1.4.0"}, did.IssueOptions{})
	if err != nil {
		return nil, err
	}
	cred, err := ver.VerifyHolder([]byte(tok), id.DID(), time.Now())
	if err != nil {
		return nil, err
	}
	h, err := libp2p.New(libp2p.Identity(id.LibP2PKey()), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		return nil, err
	}
	owner.Cleanup(func() { h.Close() })
	pol, err := policy.New()
	if err != nil {
		return nil, err
	}
	members := &testMembers{m: map[peer.ID]Member{}}
	ctl := &testControl{ver: ver, pol: pol}
	mesh, err := New(context.Background(), h, Config{
		Mesh: "fleet", Identity: id, Credential: func() *did.Credential { return cred }, Policy: pol,
		Members: members, Control: ctl, Directory: ctl,
	})
	if err != nil {
		return nil, err
	}
	owner.Cleanup(func() { mesh.Close() })
	return &tnode{h: h, id: id, cred: cred, mesh: mesh, members: members}, nil
}

// benchLink is tnet.link for a testing.TB.
func benchLink(a, b *tnode) error {
	for _, pair := range [][2]*tnode{{a, b}, {b, a}} {
		kp, err := ParseKeyPackage(pair[1].mesh.KeyPackage(), pair[1].id.DID(), time.Now())
		if err != nil {
			return err
		}
		pair[0].members.set(pair[1].h.ID(), Member{Credential: pair[1].cred, KeyPackage: kp, TrustScore: pair[1].cred.Claims.TrustScore})
	}
	return connect(a.h, b.h)
}

func connect(a, b host.Host) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()})
}

func connectAll(hs []host.Host) error {
	for i, a := range hs {
		for _, b := range hs[i+1:] {
			if err := connect(a, b); err != nil {
				return err
			}
		}
	}
	return nil
}

func hostIDs(hs []host.Host) []peer.ID {
	ids := make([]peer.ID, len(hs))
	for i, h := range hs {
		ids[i] = h.ID()
	}
	return ids
}

func gossipSubPeers(pss []*ps.PubSub) []func() []peer.ID {
	fs := make([]func() []peer.ID, len(pss))
	for i, p := range pss {
		fs[i] = func() []peer.ID { return p.ListPeers(benchTopic) }
	}
	return fs
}

// waitSubscribed waits until every host sees every subscriber (hosts 1..n)
// other than itself subscribed to the topic.
func waitSubscribed(listPeers []func() []peer.ID, ids []peer.ID) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		missing := 0
		for i, list := range listPeers {
			got := list()
			for j, id := range ids[1:] {
				if j+1 != i && !slices.Contains(got, id) {
					missing++
				}
			}
		}
		if missing == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d subscriptions still unseen after 20s", missing)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startReader reads one subscription until ctx ends, reporting every
// payload to the current tracker.
func (n *benchNet) startReader(ctx context.Context, wg *sync.WaitGroup, next func(context.Context) ([]byte, error)) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			data, err := next(ctx)
			if err != nil {
				return
			}
			at := time.Since(n.base)
			if len(data) < payloadHeader {
				continue
			}
			if tr := n.tr.Load(); tr != nil {
				sent := time.Duration(binary.BigEndian.Uint64(data[8:16]))
				tr.deliver(binary.BigEndian.Uint64(data[:8]), at-sent, at)
			}
		}
	}()
}

// tracker follows the messages of one run until every subscriber has them.
type tracker struct {
	subs int

	mu         sync.Mutex
	pending    map[uint64]*pendingMsg
	lat        []time.Duration // one per delivery
	deliveries int
	last       time.Duration // when the last message was completed (offset from base)
}

type pendingMsg struct {
	left int // subscribers still to deliver it
	done chan struct{}
}

func (t *tracker) expect(id uint64) {
	t.mu.Lock()
	t.pending[id] = &pendingMsg{left: t.subs, done: make(chan struct{})}
	t.mu.Unlock()
}

func (t *tracker) deliver(id uint64, lat, at time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.pending[id]
	if p == nil {
		return // a warm-up message, or one counted lost in an earlier run
	}
	t.deliveries++
	t.lat = append(t.lat, lat)
	if p.left--; p.left == 0 {
		close(p.done)
		delete(t.pending, id)
		t.last = at
	}
}

// wait waits until every subscriber has message id, for at most d.
func (t *tracker) wait(id uint64, d time.Duration) bool {
	t.mu.Lock()
	p := t.pending[id]
	t.mu.Unlock()
	if p == nil {
		return true
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-p.done:
		return true
	case <-tm.C:
		return false
	}
}

// runStats is what one or more runs measured.
type runStats struct {
	subs       int
	msgs       int             // published
	deliveries int             // (message, subscriber) pairs delivered
	elapsed    time.Duration   // first publish to last completed message, summed over runs
	lat        []time.Duration // per delivery
	cpu        time.Duration   // process CPU time (all hosts in the process), summed over runs
	cpuKnown   bool
}

// run publishes count messages of size bytes, with at most window of them
// not yet delivered to every subscriber (flow control: an unbounded burst
// drops messages), and waits until every message is delivered or lost.
// window 1 publishes one message at a time.
func (n *benchNet) run(tb testing.TB, count, size, window int) runStats {
	tb.Helper()
	if size < payloadHeader {
		size = payloadHeader
	}
	tr := &tracker{subs: n.subs, pending: make(map[uint64]*pendingMsg, window), lat: make([]time.Duration, 0, count*n.subs)}
	n.tr.Store(tr)
	defer n.tr.Store(nil)
	ctx := context.Background()
	ids := make([]uint64, count)
	cpu0, cpuOK := processCPU()
	start := time.Since(n.base)
	lost := 0
	for i := range count {
		if i >= window && !tr.wait(ids[i-window], lostAfter) {
			lost++
		}
		id := n.next
		n.next++
		ids[i] = id
		// A new buffer per message: GossipSub keeps the slice (message
		// cache, send queues) after Publish returns.
		data := make([]byte, size)
		copy(data[payloadHeader:], n.filler)
		binary.BigEndian.PutUint64(data[:8], id)
		tr.expect(id)
		binary.BigEndian.PutUint64(data[8:16], uint64(time.Since(n.base)))
		if err := n.publish(ctx, data); err != nil {
			tb.Fatalf("%s: publish: %v", n.impl, err)
		}
	}
	for _, id := range ids[max(0, count-window):] {
		if !tr.wait(id, lostAfter) {
			lost++
		}
	}
	cpu1, cpuOK1 := processCPU()
	if lost > 0 {
		tb.Logf("%s, %d hosts, %d bytes, window %d: %d of %d messages did not reach every subscriber within %s",
			n.impl, n.hosts, size, window, lost, count, lostAfter)
	}

	tr.mu.Lock()
	defer tr.mu.Unlock()
	st := runStats{subs: n.subs, msgs: count, deliveries: tr.deliveries, lat: tr.lat, cpu: cpu1 - cpu0, cpuKnown: cpuOK && cpuOK1}
	if tr.last > start {
		st.elapsed = tr.last - start
	}
	return st
}

// warm publishes a few messages of size one at a time, then a window's
// worth, unmeasured: the ztmesh receivers pull the sender key on the first
// message of a key, and both implementations open their streams and grow
// their buffers.
func (n *benchNet) warm(tb testing.TB, size, window int) {
	tb.Helper()
	w := n.run(tb, 3, size, 1)
	w.add(n.run(tb, 2*window, size, window))
	if w.deliveries != w.msgs*w.subs {
		tb.Fatalf("%s, %d hosts: warm-up delivered %d of %d", n.impl, n.hosts, w.deliveries, w.msgs*w.subs)
	}
}

func (s *runStats) add(o runStats) {
	if s.msgs == 0 {
		s.cpuKnown = o.cpuKnown
	}
	s.cpuKnown = s.cpuKnown && o.cpuKnown
	s.subs = o.subs
	s.msgs += o.msgs
	s.deliveries += o.deliveries
	s.elapsed += o.elapsed
	s.lat = append(s.lat, o.lat...)
	s.cpu += o.cpu
}

// msgsPerSec is the rate of messages delivered to every subscriber:
// deliveries / subscribers / elapsed.
func (s *runStats) msgsPerSec() float64 {
	if s.elapsed <= 0 || s.subs == 0 {
		return 0
	}
	return float64(s.deliveries) / float64(s.subs) / s.elapsed.Seconds()
}

// deliveryRatio is deliveries / (messages × subscribers); 1 under pacing.
func (s *runStats) deliveryRatio() float64 {
	if s.msgs == 0 || s.subs == 0 {
		return 0
	}
	return float64(s.deliveries) / float64(s.msgs*s.subs)
}

// quantileMs is the q-quantile (nearest rank) of the per-delivery latency, in ms.
func (s *runStats) quantileMs(q float64) float64 {
	if len(s.lat) == 0 {
		return 0
	}
	l := slices.Clone(s.lat)
	slices.Sort(l)
	i := int(q*float64(len(l))+0.5) - 1
	return float64(l[min(max(i, 0), len(l)-1)]) / 1e6
}

// cpuUsPerMsg is the process CPU time per published message in µs: the
// whole topology's work (every host runs in this process), or -1 if the
// platform does not say.
func (s *runStats) cpuUsPerMsg() float64 {
	if !s.cpuKnown || s.msgs == 0 {
		return -1
	}
	return float64(s.cpu.Microseconds()) / float64(s.msgs)
}

// report reports s on b; prefix names the implementation in a comparison.
func (s *runStats) report(b *testing.B, prefix string) {
	b.ReportMetric(s.msgsPerSec(), prefix+"msgs/s")
	b.ReportMetric(s.quantileMs(0.50), prefix+"p50-ms")
	b.ReportMetric(s.quantileMs(0.99), prefix+"p99-ms")
	b.ReportMetric(s.deliveryRatio(), prefix+"delivery-ratio")
	if c := s.cpuUsPerMsg(); c >= 0 {
		b.ReportMetric(c, prefix+"cpu-us/msg")
	}
}

// processCPU returns the CPU time (user + system) of the process so far,
// from /proc/self/stat (Linux; 10 ms resolution).
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
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state); utime, stime are fields 14, 15
	if len(f) < 13 {
		return 0, false
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, false
	}
	const userHZ = 100 // USER_HZ, 100 on every Linux architecture Go supports
	return time.Duration(u+st) * time.Second / userHZ, true
}

// netCache builds each implementation's net for one topology on first use,
// owned by the topology's benchmark, so the sub-benchmarks (sizes,
// implementations) share it and a filtered run builds only what it needs.
type netCache struct {
	owner testing.TB
	hosts int
	nets  map[string]*benchNet
}

func newNetCache(owner testing.TB, hosts int) *netCache {
	return &netCache{owner: owner, hosts: hosts, nets: map[string]*benchNet{}}
}

// get returns impl's net; b reports a build failure. Sub-benchmarks run
// one after another, so no lock is needed.
func (c *netCache) get(b *testing.B, impl string) *benchNet {
	b.Helper()
	if n := c.nets[impl]; n != nil {
		return n
	}
	n, err := newBenchNet(c.owner, impl, c.hosts)
	if err != nil {
		b.Fatal(err)
	}
	c.nets[impl] = n
	return n
}
