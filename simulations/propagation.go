package simulations

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/ztmesh/ztmesh/attest"
	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/node"
	"github.com/ztmesh/ztmesh/policy"
	"github.com/ztmesh/ztmesh/pubsub"
)

// The propagation scenario measures how long the mesh takes to enforce
// what an operator pushes: a revocation list, a new policy bundle, and a
// quarantine (reference values that a node's evidence fails). One cluster
// per size carries all of them, in that order.

func init() { register("propagation", runPropagation) }

const (
	// revocationGoal and policyGoal are the targets for the last
	// node to enforce.
	revocationGoal = time.Second
	policyGoal     = 2 * time.Second
	// propagationTimeout is how long a push may take before every node
	// that has not enforced it is a failed check.
	propagationTimeout = 20 * time.Second
	// announceWait is how long a new mesh gets for member announcements
	// (two per node, 5 s apart) before the first push.
	announceWait = 8 * time.Second
	// unapprovedBinary is the measured hash of the one node running unapproved
	// software in the quarantine step.
	unapprovedBinary = "0bad0bad0bad0bad0bad0bad0bad0bad0bad0bad0bad0bad0bad0bad0bad0bad"
)

// Log messages the nodes write when they enforce something (node/*.go).
// Timing them from the node's own log is exact and costs nothing while the
// mesh runs; the state they describe is checked afterwards.
const (
	evRevocations = "revocation list applied"
	evPolicy      = "policy bundle applied"
	evReference   = "attestation reference values applied"
	evAttestFail  = "attestation failed" // attribute did: the subject
	evQuarantined = "peer quarantined"   // attribute did: the subject (node/trust.go reassess)
	evDropped     = "peer dropped"       // attribute peer: the peer ID
)

// enforceLog records, per event and node index, when the node first logged it.
type enforceLog struct {
	mu sync.Mutex
	at map[string]map[int]time.Time
}

func newEnforceLog() *enforceLog { return &enforceLog{at: map[string]map[int]time.Time{}} }

// key names an event about a subject ("" for none).
func enforceKey(msg, subject string) string { return msg + "|" + subject }

func (l *enforceLog) record(key string, i int, t time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := l.at[key]
	if m == nil {
		m = map[int]time.Time{}
		l.at[key] = m
	}
	if _, ok := m[i]; !ok {
		m[i] = t
	}
}

// since returns, for each node in want, how long after t0 it logged key
// (missing nodes are left out).
func (l *enforceLog) since(key string, t0 time.Time, want func(i int) bool) map[int]time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[int]time.Duration{}
	for i, t := range l.at[key] {
		if want(i) {
			out[i] = max(0, t.Sub(t0))
		}
	}
	return out
}

// enforceHandler is a node's slog handler: it records the enforcement events
// of node idx and passes every record on to next, if any.
type enforceHandler struct {
	idx  int
	log  *enforceLog
	next slog.Handler
}

func (h *enforceHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelInfo || (h.next != nil && h.next.Enabled(ctx, l))
}

func (h *enforceHandler) Handle(ctx context.Context, r slog.Record) error {
	switch r.Message {
	case evRevocations, evPolicy, evReference:
		h.log.record(enforceKey(r.Message, ""), h.idx, r.Time)
	case evAttestFail, evQuarantined, evDropped:
		attr := "did"
		if r.Message == evDropped {
			attr = "peer"
		}
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == attr {
				h.log.record(enforceKey(r.Message, a.Value.String()), h.idx, r.Time)
				return false
			}
			return true
		})
	}
	if h.next != nil && h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func (h *enforceHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	if c.next != nil {
		c.next = c.next.WithAttrs(as)
	}
	return &c
}

func (h *enforceHandler) WithGroup(name string) slog.Handler {
	c := *h
	if c.next != nil {
		c.next = c.next.WithGroup(name)
	}
	return &c
}

// propPush is one measured propagation at one size.
type propPush struct {
	what     string
	goal     time.Duration // 0: none
	times    []time.Duration
	expected int
	note     string
}

func (p *propPush) sorted() []time.Duration {
	s := slices.Clone(p.times)
	slices.Sort(s)
	return s
}

func runPropagation(ctx context.Context, env *Env, sc *Scenario) ([]*Section, error) {
	sec := &Section{Title: sc.Name}
	if sc.Description != "" {
		sec.Text = append(sec.Text, sc.Description)
	}
	sec.Text = append(sec.Text, fmt.Sprintf("Each size is one cluster (%d zones, degree %d, %d cross links per node, %s links). "+
		"Node 0 publishes on the control topic, in turn: a revocation list revoking one node; a policy bundle (the default policy, signed as a new version); "+
		"attestation reference values; then one node whose binary hash is not in them publishes its evidence. "+
		"A node's enforcement time is when it logged applying the push (revocation list, bundle, reference values) or quarantining the node, "+
		"measured from the call that published it; the state itself (peer disconnected and refused, policy version, trust and quarantine) is checked afterwards at every node. "+
		"The baseline is one plain GossipSub message of the same size reaching every node of the same topology, so the ratio is the cost of verifying and applying signed control content on the way. "+
		"Any node that has not enforced a push within %s is a failed check.",
		sc.Zones, sc.Degree, sc.Cross, time.Duration(sc.Link.Latency), propagationTimeout))
	tbl := &Table{Header: []string{"nodes", "push", "enforced by", "p50", "p95", "max", "goal", "baseline max", "max / baseline"}}
	var findings []string
	for _, n := range sc.Sizes(env.Quick) {
		pushes, base, err := propagateSize(ctx, env, sc, n, sec)
		if err != nil {
			return []*Section{sec}, fmt.Errorf("%d nodes: %w", n, err)
		}
		bs := slices.Clone(base)
		slices.Sort(bs)
		plot := &Plot{File: fmt.Sprintf("%s-%d-cdf.png", sc.Name, n), Title: fmt.Sprintf("Enforcement time, %d nodes", n),
			XLabel: "ms after publishing", YLabel: "fraction of nodes enforcing"}
		for _, p := range pushes {
			s := p.sorted()
			goal := "-"
			if p.goal > 0 {
				goal = "< " + p.goal.String()
				max := time.Duration(0)
				if len(s) > 0 {
					max = s[len(s)-1]
				}
				met := len(s) == p.expected && max < p.goal
				verdict := "met"
				if !met {
					verdict = "missed"
				}
				findings = append(findings, fmt.Sprintf("%d nodes, %s: goal %s %s (%d of %d nodes, p50 %s, max %s).",
					n, p.what, goal, verdict, len(s), p.expected, roundLatency(Percentile(s, 0.5)), roundLatency(max)))
			}
			tbl.Add(n, p.what, fmt.Sprintf("%d / %d", len(s), p.expected), roundLatency(Percentile(s, 0.5)), roundLatency(Percentile(s, 0.95)),
				roundLatency(Percentile(s, 1)), goal, roundLatency(Percentile(bs, 1)), Ratio(float64(Percentile(s, 1)), float64(Percentile(bs, 1))))
			if p.note != "" {
				findings = append(findings, fmt.Sprintf("%d nodes, %s: %s", n, p.what, p.note))
			}
			plot.Series = append(plot.Series, CDF(p.what, s, 200))
		}
		tbl.Add(n, "baseline: one plain GossipSub message", fmt.Sprintf("%d / %d", len(bs), n-1), roundLatency(Percentile(bs, 0.5)),
			roundLatency(Percentile(bs, 0.95)), roundLatency(Percentile(bs, 1)), "-", roundLatency(Percentile(bs, 1)), 1.0)
		plot.Series = append(plot.Series, CDF("baseline: plain GossipSub message", bs, 200))
		sec.Plots = append(sec.Plots, plot)
	}
	sec.Tables = append(sec.Tables, tbl)
	sec.Text = append(sec.Text, findings...)
	return []*Section{sec}, nil
}

func roundLatency(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond)
	case d >= 100*time.Millisecond:
		return d.Round(time.Millisecond)
	default:
		return d.Round(100 * time.Microsecond)
	}
}

// propagateSize runs the four pushes on one cluster of n nodes, and the
// baseline on the same topology. Failed checks go into sec.
func propagateSize(ctx context.Context, env *Env, sc *Scenario, n int, sec *Section) ([]*propPush, []time.Duration, error) {
	if n < 4 {
		return nil, nil, fmt.Errorf("propagation needs at least 4 nodes")
	}
	const publisher, witness = 0, 1 // witness: an approved node that attests too
	victim, bad := n-2, n-1
	events := newEnforceLog()
	var next slog.Handler
	if env.Logger != nil {
		next = env.Logger.Handler()
	}
	var goodHash string
	var hashMu sync.Mutex
	specs := sc.Specs(n)
	env.Printf("propagation: starting %d nodes", n)
	t0 := time.Now()
	c, err := NewCluster(ctx, ClusterConfig{
		Nodes: specs, Link: sc.Link.Link(), Progress: env.Printf,
		Configure: func(i int, _ *node.Config, o *node.Options) {
			o.Logger = slog.New(&enforceHandler{idx: i, log: events, next: next})
			hashMu.Lock()
			if i == bad {
				o.Test.BinarySHA256 = unapprovedBinary
			} else {
				goodHash = o.Test.BinarySHA256
			}
			hashMu.Unlock()
		},
	})
	if err != nil {
		return nil, nil, err
	}
	closeCluster := sync.OnceValue(c.Close)
	defer closeCluster()
	env.Printf("propagation: %d nodes started in %s; wiring", n, time.Since(t0).Round(time.Second))
	t0 = time.Now()
	if err := c.Wire(ctx, sc.Degree, sc.Cross, sc.Seed); err != nil {
		return nil, nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	err = c.AwaitVerified(wctx)
	cancel()
	if err != nil {
		return nil, nil, err
	}
	env.Printf("propagation: wired and verified in %s; waiting for the member announcements to settle", time.Since(t0).Round(time.Second))
	// A node announces itself three times, 3 s apart, once it has a peer.
	time.Sleep(announceWait)
	awaitIdle(ctx, 3*time.Second, 60*time.Second)

	all := func(except ...int) func(int) bool {
		return func(i int) bool { return !slices.Contains(except, i) }
	}
	count := func(want func(int) bool) int {
		k := 0
		for i := range n {
			if want(i) {
				k++
			}
		}
		return k
	}
	// await waits until every wanted node has logged key, or the timeout.
	await := func(key string, start time.Time, want func(int) bool) map[int]time.Duration {
		deadline := time.Now().Add(propagationTimeout)
		for {
			got := events.since(key, start, want)
			if len(got) == count(want) || time.Now().After(deadline) || ctx.Err() != nil {
				return got
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	missing := func(what string, got map[int]time.Duration, want func(int) bool) {
		var miss []int
		for i := range n {
			if _, ok := got[i]; want(i) && !ok {
				miss = append(miss, i)
			}
		}
		if len(miss) > 0 {
			// Say what each missing node looked like: cut off, or not.
			control := pubsub.ControlTopic(c.Nodes[0].Config().Mesh).String()
			var diag []string
			for _, i := range miss[:min(len(miss), 5)] {
				m := c.Nodes[i]
				diag = append(diag, fmt.Sprintf("node %d: %d connected peers, %d verified, %d on the control topic",
					i, len(m.Host().Network().Peers()), m.Registry().Len(), len(m.Mesh().PubSub().ListPeers(control))))
			}
			sec.Failures = append(sec.Failures, fmt.Sprintf("%d nodes: %d nodes did not enforce the %s within %s (nodes %s; %s)",
				n, len(miss), what, propagationTimeout, nodeList(miss), strings.Join(diag, "; ")))
		}
	}
	values := func(m map[int]time.Duration) []time.Duration {
		out := make([]time.Duration, 0, len(m))
		for _, d := range m {
			out = append(out, d)
		}
		return out
	}
	var pushes []*propPush
	pub := c.Nodes[publisher]

	// (a) Revocation of the victim's DID.
	vm := c.Nodes[victim]
	knew := count(func(i int) bool {
		if i == victim {
			return false
		}
		_, ok := c.Nodes[i].Member(vm.Host().ID())
		return ok
	})
	list, err := did.SignRevocationList(c.Issuer, &did.RevocationList{Version: 1, Subjects: []did.DID{vm.DID()}}, time.Now())
	if err != nil {
		return nil, nil, err
	}
	env.Printf("propagation: %d nodes: revoking node %d (known to %d nodes as a member)", n, victim, knew)
	start := time.Now()
	if err := pub.Mesh().PublishRevocations(ctx, []byte(list)); err != nil {
		return nil, nil, fmt.Errorf("publish revocations: %w", err)
	}
	want := all(victim)
	got := await(enforceKey(evRevocations, ""), start, want)
	missing("revocation", got, want)
	rev := &propPush{what: "revocation", goal: revocationGoal, times: values(got), expected: count(want)}
	// The victim's neighbours: when they cut it off.
	neigh := 0
	var dropped []time.Duration
	for i, d := range events.since(enforceKey(evDropped, vm.Host().ID().String()), start, want) {
		_ = i
		neigh++
		dropped = append(dropped, d)
	}
	slices.Sort(dropped)
	time.Sleep(200 * time.Millisecond) // a drop closes connections just after the log line
	var still []int
	for i, m := range c.Nodes {
		if i == victim {
			continue
		}
		_, verified := m.Registry().Get(vm.Host().ID())
		_, member := m.Member(vm.Host().ID())
		if verified || member || m.Host().Network().Connectedness(vm.Host().ID()) == network.Connected {
			still = append(still, i)
		}
	}
	if len(still) > 0 {
		sec.Failures = append(sec.Failures, fmt.Sprintf("%d nodes: %d nodes still accept, verify or stay connected to the revoked node (nodes %s)", n, len(still), nodeList(still)))
	}
	rev.note = fmt.Sprintf("%d nodes knew the revoked node as a member before; its %d direct neighbours disconnected it after p50 %s, max %s; afterwards %d nodes still accepted it.",
		knew, neigh, roundLatency(Percentile(dropped, 0.5)), roundLatency(Percentile(dropped, 1)), len(still))
	pushes = append(pushes, rev)

	// (b) A new policy bundle: the default policy, signed as version 2.
	const bundleVersion = 2
	bundle, err := policy.SignBundle(c.Issuer, policy.DefaultModules(), bundleVersion, policy.Scope{Mesh: c.cfg.Mesh, Expires: time.Now().Add(24 * time.Hour)}, time.Now())
	if err != nil {
		return nil, nil, err
	}
	// What one node pays to apply it (verify and compile), alone.
	probe, err := policy.New()
	if err != nil {
		return nil, nil, err
	}
	t1 := time.Now()
	if _, err := probe.ApplyBundle(bundle, func(d did.DID) bool { return d == c.Issuer.DID() }); err != nil {
		return nil, nil, fmt.Errorf("policy bundle: %w", err)
	}
	compile := time.Since(t1)
	env.Printf("propagation: %d nodes: publishing policy bundle version %d", n, bundleVersion)
	awaitIdle(ctx, 500*time.Millisecond, 10*time.Second)
	start = time.Now()
	u0 := ReadUsage()
	if err := pub.Mesh().PublishPolicyBundle(ctx, bundle); err != nil {
		return nil, nil, fmt.Errorf("publish policy bundle: %w", err)
	}
	got = await(enforceKey(evPolicy, ""), start, want)
	cpu := ReadUsage().CPU - u0.CPU
	missing("policy bundle", got, want)
	var stale []int
	for i, m := range c.Nodes {
		if want(i) && m.Policy().Version() != bundleVersion {
			stale = append(stale, i)
		}
	}
	if len(stale) > 0 {
		sec.Failures = append(sec.Failures, fmt.Sprintf("%d nodes: %d nodes do not run policy version %d (nodes %s)", n, len(stale), bundleVersion, nodeList(stale)))
	}
	pushes = append(pushes, &propPush{what: "policy bundle", goal: policyGoal, times: values(got), expected: count(want),
		note: fmt.Sprintf("one node alone verifies and compiles this bundle in %s; applying it also rotates the node's sender keys and re-checks its peers against the new policy. "+
			"Until the last node had it, the process used %s of CPU (%s per node); on %d cores that alone is at least %s of wall time, against a max of %s here. "+
			"On a fleet, where each node has its own CPU, a hop would cost about the link latency plus the per-node time.",
			roundLatency(compile), roundLatency(cpu), roundLatency(cpu/time.Duration(max(1, count(want)))), runtime.NumCPU(),
			roundLatency(cpu/time.Duration(runtime.NumCPU())), roundLatency(slices.Max(append(values(got), 0))))})

	// (c) Reference values approving every node's binary but one.
	ref, err := attest.SignReference(c.Issuer, &attest.Reference{Version: 1, AllowedBinaries: []string{goodHash}, Mesh: c.cfg.Mesh, Expires: time.Now().Add(24 * time.Hour)}, time.Now())
	if err != nil {
		return nil, nil, err
	}
	env.Printf("propagation: %d nodes: publishing attestation reference values", n)
	awaitIdle(ctx, 500*time.Millisecond, 10*time.Second)
	start = time.Now()
	if err := pub.Mesh().PublishReference(ctx, ref); err != nil {
		return nil, nil, fmt.Errorf("publish reference values: %w", err)
	}
	got = await(enforceKey(evReference, ""), start, want)
	missing("reference values", got, want)
	pushes = append(pushes, &propPush{what: "reference values", times: values(got), expected: count(want)})

	// The unapproved node (and, as a control, an approved one) publish
	// their evidence.
	bm := c.Nodes[bad]
	env.Printf("propagation: %d nodes: node %d publishes evidence of an unapproved binary", n, bad)
	awaitIdle(ctx, 500*time.Millisecond, 10*time.Second)
	// A node can only quarantine a member it knows (verified, or from its
	// announcement); one that does not know it refuses its messages as
	// from an unknown origin and would judge it on first contact.
	knows := map[int]bool{}
	for i, m := range c.Nodes {
		if _, ok := m.Member(bm.Host().ID()); ok && i != victim && i != bad {
			knows[i] = true
		}
	}
	start = time.Now()
	if err := bm.Attest(ctx); err != nil {
		return nil, nil, fmt.Errorf("attest: %w", err)
	}
	if err := c.Nodes[witness].Attest(ctx); err != nil {
		return nil, nil, fmt.Errorf("attest: %w", err)
	}
	wantQ := func(i int) bool { return knows[i] }
	// A node reports the node quarantined when it logs so: after judging
	// its evidence itself (if connected to it), or after checking a
	// neighbour's quarantine announcement (node/quarantine.go).
	got = await(enforceKey(evQuarantined, bm.DID().String()), start, wantQ)
	missing("quarantine", got, wantQ)
	q := &propPush{what: "quarantine", times: values(got), expected: count(wantQ)}
	judged := events.since(enforceKey(evAttestFail, bm.DID().String()), start, all(victim, bad))
	judgedTimes := values(judged)
	slices.Sort(judgedTimes)
	time.Sleep(time.Second) // reassessment runs every second
	neighbours := 0
	var trusting, unflagged, falsePos []int
	for i, m := range c.Nodes {
		if i == victim || i == bad {
			continue
		}
		if _, ok := m.Registry().Get(bm.Host().ID()); ok {
			neighbours++
		}
		mem, ok := m.Member(bm.Host().ID())
		switch {
		case !ok:
		case !mem.Quarantined && mem.TrustScore >= node.QuarantineBelow:
			trusting = append(trusting, i)
		case !mem.Quarantined:
			unflagged = append(unflagged, i)
		}
		if i != witness {
			if w, ok := m.Member(c.Nodes[witness].Host().ID()); ok && w.Quarantined {
				falsePos = append(falsePos, i)
			}
		}
	}
	if len(trusting) > 0 {
		sec.Failures = append(sec.Failures, fmt.Sprintf("%d nodes: %d nodes still trust the node with the unapproved binary (nodes %s)", n, len(trusting), nodeList(trusting)))
	}
	if len(falsePos) > 0 {
		sec.Failures = append(sec.Failures, fmt.Sprintf("%d nodes: %d nodes quarantined the approved node whose evidence passes (nodes %s)", n, len(falsePos), nodeList(falsePos)))
	}
	q.note = fmt.Sprintf("%d of %d nodes knew the node as a member when it published its evidence; the others refuse its messages as from an unknown origin and would challenge it on first contact, so they are not counted. "+
		"%d nodes judged the evidence itself as failing (trust 0: its messages refused) after p50 %s, max %s; %d are its direct neighbours. "+
		"At the end, %d nodes gave it trust 0 without the quarantine flag (it may still pull their sender keys), %d still trusted it; the approved node that attested alongside was quarantined by %d.",
		len(knows), count(all(victim, bad)), len(judged), roundLatency(Percentile(judgedTimes, 0.5)), roundLatency(Percentile(judgedTimes, 1)), neighbours,
		len(unflagged), len(trusting), len(falsePos))
	pushes = append(pushes, q)
	if err := closeCluster(); err != nil {
		env.Printf("propagation: close: %v", err)
	}

	// Baseline: one plain GossipSub message of the size of the revocation
	// control message, from node 0 to every node of the same topology.
	env.Printf("propagation: %d nodes: baseline", n)
	base, err := baselineFlood(ctx, sc, specs, len(list)+64)
	if err != nil {
		return nil, nil, fmt.Errorf("baseline: %w", err)
	}
	if len(base) < n-1 {
		sec.Failures = append(sec.Failures, fmt.Sprintf("%d nodes: baseline message reached only %d of %d nodes", n, len(base), n-1))
	}
	return pushes, base, nil
}

// baselineFlood publishes one message of size bytes from node 0 of a plain
// GossipSub network and returns when each other node received it.
func baselineFlood(ctx context.Context, sc *Scenario, specs []NodeSpec, size int) ([]time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	b, err := NewBaseline(ctx, specs, sc.Link.Link(), sc.Degree, sc.Cross, sc.Seed)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	const topic = "control"
	var (
		mu    sync.Mutex
		times []time.Duration
		start time.Time
		wg    sync.WaitGroup
	)
	for i := range b.Hosts {
		t, err := b.Topic(i, topic)
		if err != nil {
			return nil, err
		}
		s, err := t.Subscribe()
		if err != nil {
			return nil, err
		}
		if i == 0 {
			continue
		}
		wg.Go(func() {
			defer s.Cancel()
			if _, err := s.Next(ctx); err == nil {
				now := time.Now()
				mu.Lock()
				times = append(times, now.Sub(start))
				mu.Unlock()
			}
		})
	}
	// Meshes form at GossipSub's heartbeats (every second).
	for i, h := range b.Hosts {
		deadline := time.Now().Add(10 * time.Second)
		for len(b.Subs[i].ListPeers(topic)) == 0 && len(h.Network().Peers()) > 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	}
	time.Sleep(2 * time.Second)
	t, _ := b.Topic(0, topic)
	mu.Lock()
	start = time.Now()
	mu.Unlock()
	if err := t.Publish(ctx, make([]byte, size)); err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(propagationTimeout):
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	return slices.Clone(times), nil
}

// awaitIdle waits until the process has used less than a fifth of a core for
// quiet, or at most limit: measurements start on an idle mesh.
func awaitIdle(ctx context.Context, quiet, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		u0 := ReadUsage()
		time.Sleep(quiet)
		if ReadUsage().CoresSince(u0) < 0.2 {
			return
		}
	}
}

// nodeList lists a few node indices.
func nodeList(idx []int) string {
	slices.Sort(idx)
	if len(idx) > 10 {
		return fmt.Sprint(idx[:10]) + fmt.Sprintf(" and %d more", len(idx)-10)
	}
	return fmt.Sprint(idx)
}
