package simulations

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"runtime"
	"time"

	ps "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ztmesh/ztmesh/pubsub"
)

// The hardening scenario adapts two attacks of the GossipSub v1.1
// evaluation (Vyzovitis et al., 2020) to a mesh where every peer holds a
// credential. A peer without one never gets past the handshake (the
// attack suite measures that), so the attackers here are credentialed
// members that misbehave: they stay in the zone meshes and drop every
// zone message instead of forwarding it. Their GossipSub router runs a
// validator that Ignores every message of the zone topic: nothing is
// delivered to them or forwarded by them, nothing is advertised in
// gossip, and they never prune. Plain GossipSub runs the same attackers
// the same way, on the same links, as the baseline.
//
//   - Covert flash: attackers behave for the first third of the run, so
//     they are grafted into meshes and earn score; then all of them stop
//     forwarding at once.
//   - Cold boot: attackers drop from the start; they connect first and
//     to more honest nodes than honest nodes do, then the honest nodes
//     connect, and traffic starts at once.

func init() { register("hardening", runHardening) }

const (
	// attackerFanout is how many honest nodes of its zone each attacker
	// dials, relative to the honest degree: attackers seek mesh slots.
	attackerFanout = 3
	// coldBootWarmup is how long the cold-boot mesh gets before traffic:
	// a few GossipSub heartbeats, to graft anything at all.
	coldBootWarmup = 2 * time.Second
)

// hardeningNet is one network (ztmesh or plain GossipSub) of honest nodes
// and attackers under load.
type hardeningNet struct {
	name    string
	load    *zoneLoad
	dropAll func() error // every attacker stops forwarding
	close   func()
}

// dropValidator is the attackers' GossipSub validator: drop everything.
func dropValidator(context.Context, peer.ID, *ps.Message) ps.ValidationResult {
	return ps.ValidationIgnore
}

func dropTopic(g *ps.PubSub, topic string) error {
	_ = g.UnregisterTopicValidator(topic) // ztmesh's own validator, if any
	return g.RegisterTopicValidator(topic, dropValidator)
}

// hardeningLinks returns the connections of a hardening network: the
// honest topology, and each attacker dialing attackerFanout x degree
// honest nodes of its zone.
func hardeningLinks(sc *Scenario, honest, attackers int, zones []string) (honestPairs, attackerPairs [][2]int) {
	specs := sc.Specs(honest)
	honestPairs = Topology(specs, sc.Degree, sc.Cross, sc.Seed)
	r := mrand.New(mrand.NewPCG(sc.Seed, 17))
	for a := honest; a < honest+attackers; a++ {
		var cand []int
		for j := range honest {
			if zones[j] == zones[a] {
				cand = append(cand, j)
			}
		}
		r.Shuffle(len(cand), func(x, y int) { cand[x], cand[y] = cand[y], cand[x] })
		for _, h := range cand[:min(len(cand), attackerFanout*sc.Degree)] {
			attackerPairs = append(attackerPairs, [2]int{a, h})
		}
	}
	return honestPairs, attackerPairs
}

// ztmeshHardening starts honest nodes and attackers as one ztmesh cluster.
// With cold, attackers drop from the start and connect first.
func ztmeshHardening(ctx context.Context, env *Env, sc *Scenario, honest, attackers int, cold bool) (*hardeningNet, error) {
	n := honest + attackers
	specs := sc.Specs(n)
	zones := make([]string, n)
	isHonest := make([]bool, n)
	for i, s := range specs {
		zones[i], isHonest[i] = s.Zones[0], i < honest
	}
	c, err := NewCluster(ctx, ClusterConfig{Nodes: specs, Link: sc.Link.Link(), Logger: env.Logger})
	if err != nil {
		return nil, err
	}
	l := newZoneLoad(zones, isHonest, sc.MessageSize, sc.Rate)
	h := &hardeningNet{name: "ztmesh", load: l, close: func() { l.stop(); c.Close() }}
	fail := func(err error) (*hardeningNet, error) { h.close(); return nil, err }
	for i, m := range c.Nodes {
		ep, err := newZtmeshEndpoint(m.Node, zones[i])
		if err != nil {
			return fail(err)
		}
		l.set(ctx, i, ep)
	}
	h.dropAll = func() error {
		var errs []error
		for _, m := range c.Nodes[honest:] {
			t, err := pubsub.ZoneTopic(m.Config().Mesh, zones[m.Index], zoneLoadChannel)
			if err != nil {
				return err
			}
			errs = append(errs, dropTopic(m.Mesh().PubSub(), t.String()))
		}
		return errors.Join(errs...)
	}
	if cold {
		if err := h.dropAll(); err != nil {
			return fail(err)
		}
	}
	hosts := make([]host.Host, n)
	ids := make([]peer.ID, n)
	for i, m := range c.Nodes {
		hosts[i], ids[i] = m.Host(), m.Host().ID()
	}
	hp, ap := hardeningLinks(sc, honest, attackers, zones)
	for _, pairs := range [][][2]int{ap, hp} { // attackers are there first
		if err := connectPairs(ctx, c.Net, hosts, pairs); err != nil {
			return fail(err)
		}
	}
	if err := linkZoneMembers(c.Net, ids, zones); err != nil {
		return fail(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	err = c.AwaitVerified(wctx)
	cancel()
	if err != nil {
		return fail(err)
	}
	return h, nil
}

// plainHardening is the same network on plain GossipSub.
func plainHardening(ctx context.Context, sc *Scenario, honest, attackers int, cold bool) (*hardeningNet, error) {
	n := honest + attackers
	specs := sc.Specs(n)
	zones := make([]string, n)
	isHonest := make([]bool, n)
	for i, s := range specs {
		zones[i], isHonest[i] = s.Zones[0], i < honest
	}
	bctx, cancel := context.WithCancel(ctx)
	// No links yet (specs without zones draw none): they are dialed
	// below, attackers first, exactly as in ztmesh.
	b, err := NewBaseline(bctx, make([]NodeSpec, n), sc.Link.Link(), 0, 0, sc.Seed)
	if err != nil {
		cancel()
		return nil, err
	}
	l := newZoneLoad(zones, isHonest, sc.MessageSize, sc.Rate)
	h := &hardeningNet{name: "plain GossipSub", load: l, close: func() { l.stop(); b.Close(); cancel() }}
	fail := func(err error) (*hardeningNet, error) { h.close(); return nil, err }
	for i := range b.Hosts {
		ep, err := newPlainZoneEndpoint(b.Subs[i], zones[i])
		if err != nil {
			return fail(err)
		}
		l.set(bctx, i, ep)
	}
	h.dropAll = func() error {
		var errs []error
		for i := honest; i < n; i++ {
			errs = append(errs, dropTopic(b.Subs[i], "zone/"+zones[i]+"/"+zoneLoadChannel))
		}
		return errors.Join(errs...)
	}
	if cold {
		if err := h.dropAll(); err != nil {
			return fail(err)
		}
	}
	ids := make([]peer.ID, n)
	for i, x := range b.Hosts {
		ids[i] = x.ID()
	}
	hp, ap := hardeningLinks(sc, honest, attackers, zones)
	for _, pairs := range [][][2]int{ap, hp} {
		if err := connectPairs(ctx, b.Net, b.Hosts, pairs); err != nil {
			return fail(err)
		}
	}
	if err := linkZoneMembers(b.Net, ids, zones); err != nil {
		return fail(err)
	}
	return h, nil
}

// hardeningResult is one attack on one network.
type hardeningResult struct {
	net            string
	before, during float64         // delivery ratios (before: NaN for cold boot)
	latB, latD     []time.Duration // sorted latencies
	series, p95    Series          // delivery ratio and p95 latency per second
	cores          float64         // CPU the process used during the run
}

func runHardening(ctx context.Context, env *Env, sc *Scenario) ([]*Section, error) {
	var secs []*Section
	for _, honest := range sc.Sizes(env.Quick) {
		attackers := sc.Attackers
		if env.Quick && len(sc.QuickNodes) > 0 && len(sc.Nodes) > 0 && sc.Nodes[0] > 0 {
			// Keep the attackers' share of the mesh in quick runs.
			attackers = max(1, sc.Attackers*honest/sc.Nodes[0])
		}
		sec := &Section{Title: fmt.Sprintf("%s: %d honest nodes, %d attackers", sc.Name, honest, attackers)}
		if sc.Description != "" {
			sec.Text = append(sec.Text, sc.Description)
		}
		d := sc.RunFor(env.Quick)
		sec.Text = append(sec.Text, fmt.Sprintf("%d honest nodes and %d attackers in %d zones (honest degree %d and %d cross links; each attacker dials %d honest nodes of its zone; %s links). "+
			"Honest nodes publish %.3g messages/s of %d bytes in their zone for %s; delivery counts each message once per honest member of the zone. "+
			"Attackers hold valid credentials: a peer without one is refused at the handshake and never reaches GossipSub (the attack suite measures that), so in ztmesh a flash or cold-boot attack needs compromised members. "+
			"An attacker stays in the zone's meshes and drops every message (its GossipSub validator Ignores them all: nothing forwarded, nothing gossiped). "+
			"Covert flash: attackers behave for the first third of the run, then all stop at once. Cold boot: attackers drop from the start and connect before the honest nodes do; traffic starts %s after the mesh forms. "+
			"Both networks get %s of uncounted warm-up traffic before the measured run (in ztmesh, receivers pull each sender's key on its first message); in a cold boot the attackers already drop during it. "+
			"Plain GossipSub with default settings runs the same attackers on the same links.",
			honest, attackers, sc.Zones, sc.Degree, sc.Cross, attackerFanout*sc.Degree, time.Duration(sc.Link.Latency), sc.Rate, sc.MessageSize, d, coldBootWarmup, min(zoneLoadWarmup, d/2)))
		tbl := &Table{Caption: fmt.Sprintf("CPU is the whole process's during the run, in cores (the machine has %d).", runtime.NumCPU()),
			Header: []string{"attack", "network", "delivery before", "delivery during", "p50 during", "p95 during", "p99 during", "p95 before", "CPU"}}
		ratios := &Table{Caption: "ztmesh / plain GossipSub.", Header: []string{"attack", "delivery during", "p50 during", "p95 during", "p99 during"}}
		for _, cold := range []bool{false, true} {
			attack := "covert flash"
			if cold {
				attack = "cold boot"
			}
			var res []*hardeningResult
			for _, plain := range []bool{false, true} {
				r, err := hardeningRun(ctx, env, sc, honest, attackers, cold, plain, d)
				if err != nil {
					return append(secs, sec), fmt.Errorf("%s: %w", attack, err)
				}
				res = append(res, r)
				before, latBefore := "-", "-"
				if !cold {
					before, latBefore = fmt.Sprintf("%.4f", r.before), roundLatency(Percentile(r.latB, 0.95)).String()
				}
				tbl.Add(attack, r.net, before, fmt.Sprintf("%.4f", r.during), roundLatency(Percentile(r.latD, 0.5)), roundLatency(Percentile(r.latD, 0.95)),
					roundLatency(Percentile(r.latD, 0.99)), latBefore, r.cores)
			}
			z, p := res[0], res[1]
			ratios.Add(attack, Ratio(z.during, p.during), Ratio(float64(Percentile(z.latD, 0.5)), float64(Percentile(p.latD, 0.5))),
				Ratio(float64(Percentile(z.latD, 0.95)), float64(Percentile(p.latD, 0.95))), Ratio(float64(Percentile(z.latD, 0.99)), float64(Percentile(p.latD, 0.99))))
			file := fmt.Sprintf("%s-%d-%s", sc.Name, honest, map[bool]string{false: "flash", true: "coldboot"}[cold])
			title := fmt.Sprintf("%s, %d honest nodes + %d attackers", attack, honest, attackers)
			sec.Plots = append(sec.Plots,
				&Plot{File: file + "-delivery.png", Title: title + ": delivery", XLabel: "seconds (by publication time)", YLabel: "honest delivery ratio",
					Series: []Series{z.series, p.series}},
				&Plot{File: file + "-p95.png", Title: title + ": p95 latency", XLabel: "seconds (by publication time)", YLabel: "p95 latency (ms)",
					Series: []Series{z.p95, p.p95}})
			if z.during < 0.5 {
				sec.Failures = append(sec.Failures, fmt.Sprintf("%s: ztmesh delivered %.3f of honest traffic during the attack", attack, z.during))
			}
			sec.Text = append(sec.Text, fmt.Sprintf("%s: honest delivery during the attack %.4f with ztmesh, %.4f with plain GossipSub; p95 latency %s and %s.",
				attack, z.during, p.during, roundLatency(Percentile(z.latD, 0.95)), roundLatency(Percentile(p.latD, 0.95))))
		}
		sec.Tables = append(sec.Tables, tbl, ratios)
		secs = append(secs, sec)
	}
	return secs, nil
}

func hardeningRun(ctx context.Context, env *Env, sc *Scenario, honest, attackers int, cold, plain bool, d time.Duration) (*hardeningResult, error) {
	what := map[bool]string{false: "covert flash", true: "cold boot"}[cold]
	var (
		h   *hardeningNet
		err error
	)
	if plain {
		env.Printf("hardening: %s on plain GossipSub, %d + %d nodes", what, honest, attackers)
		h, err = plainHardening(ctx, sc, honest, attackers, cold)
	} else {
		env.Printf("hardening: %s on ztmesh, starting %d + %d nodes", what, honest, attackers)
		h, err = ztmeshHardening(ctx, env, sc, honest, attackers, cold)
	}
	if err != nil {
		return nil, err
	}
	defer h.close()
	if cold {
		time.Sleep(coldBootWarmup)
	} else if plain {
		time.Sleep(3 * time.Second) // meshes at the heartbeats
	} else {
		time.Sleep(announceWait) // announcements, and meshes at the heartbeats
	}
	// Uncounted warm-up traffic: in ztmesh, every receiver pulls each
	// sender's key on its first message. In a cold boot the attackers
	// already drop.
	h.load.run(ctx, min(zoneLoadWarmup, d/2), sc.Seed)
	awaitIdle(ctx, time.Second, 20*time.Second)
	onset := time.Duration(0)
	if !cold {
		onset = d / 3
	}
	var attackErr error
	done := make(chan struct{})
	if !cold {
		go func() {
			defer close(done)
			select {
			case <-ctx.Done():
			case <-time.After(onset):
				env.Printf("hardening: %s: attackers stop forwarding", h.name)
				attackErr = h.dropAll()
			}
		}()
	} else {
		close(done)
	}
	h.load.run(ctx, d, sc.Seed)
	<-done
	if attackErr != nil {
		return nil, attackErr
	}
	r := &hardeningResult{net: h.name}
	r.before, r.latB = h.load.window(0, onset)
	r.during, r.latD = h.load.window(onset, d)
	_, r.series = h.load.ratio(h.name)
	r.p95 = h.load.latencySeries(h.name, 0.95)
	r.cores = h.load.busy()
	return r, nil
}
