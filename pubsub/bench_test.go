package pubsub

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	ps "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/policy"
)

// Zone messaging benchmarks: ztmesh against plain GossipSub with its default
// options (strict signing), in the same run, on the same topology.
//
// The network benchmarks run real hosts over 127.0.0.1 in this process (see
// bench_helpers_test.go): 2 hosts, and 20 hosts with every pair connected;
// host 0 publishes, every other host subscribes. Payloads are 1 KB and
// 200 KB. Before anything is timed the topic mesh is grafted and a few
// messages are sent, so the ztmesh receivers already hold the sender key.
//
//   - BenchmarkZoneThroughput/hosts=H/size=S/impl=I: the publisher keeps at
//     most a window of messages not yet delivered to every subscriber (an
//     unbounded burst drops messages). One op is one batch of messages.
//     msgs/s counts messages delivered to every subscriber per second;
//     p50-ms and p99-ms are per-delivery latencies under that load;
//     delivery-ratio must be 1; cpu-us/msg is the process CPU time (every
//     host is in this process) per message, on Linux.
//   - BenchmarkZoneLatency/...: the same, one message at a time (window 1),
//     so the latencies are free of queueing.
//   - BenchmarkZoneVsGossipSub/hosts=H/size=S: both implementations in one
//     benchmark, in alternating order, with both loads; it reports each
//     one's numbers with a gossipsub- or ztmesh- prefix and the ratios
//     ztmesh/gossipsub: throughput-ratio (target >= 0.9), p99-ratio and
//     serial-p99-ratio (target <= 1.2), cpu-ratio. Other load on the
//     machine moves msgs/s and the latencies a lot; cpu-ratio, which counts
//     only this process's CPU time, much less.
//
// Run them all with
//
//	go test -run '^$' -bench '^BenchmarkZone' ./pubsub
//
// Each op is a batch of messages, so -benchtime=1x sends one batch per
// benchmark and finishes in about half a minute; the machine is shared and
// every host is in one process, so one batch is noisy: for numbers to act
// on, use -benchtime=8x -count=3 or more. Each pattern element matches one
// level of the name ('ZoneVsGossipSub/hosts=2$' leaves out hosts=20).
//
// The ratios: BenchmarkZoneVsGossipSub reports them directly. Across runs,
// with confidence intervals, compare the per-implementation benchmarks with
// benchstat, which puts gossipsub and ztmesh side by side:
//
//	go test -run '^$' -bench '^BenchmarkZone(Throughput|Latency)' -count 6 ./pubsub > zone.txt
//	benchstat -col /impl zone.txt
//
// The BenchmarkCost* microbenchmarks are the per-message CPU costs, next to
// a bare Ed25519 verify (BenchmarkCostEd25519VerifyBaseline):
// what GossipSub's strict signing costs the publisher (Sign) and every hop
// (Verify), and what ztmesh adds: on the publisher, a policy decision, Seal
// and the validation of its own message (ValidateZone/origin=self); on
// every receiving hop, ValidateZone/origin=peer (the topic, member, policy,
// envelope, skew, key lookup, Open and replay checks), whose parts are
// MemberSubject, PolicyDecideCached, Open and ReplayWindow.
//
// No benchmark fails on a number: they report.

var zoneImpls = []string{implGossipSub, implZtmesh}

var zoneHosts = []int{2, 20}

// zoneCase is a topology and payload size, and how much to send per op.
// Every host runs in this process, so on the shared 2-core machine that
// runs make bench the numbers are CPU-bound; the batches are sized to take
// 0.1-0.6 s there.
//
// The window is the largest that never dropped a message in either
// implementation, with a margin: GossipSub's validation queue and
// subscription buffers hold 32 messages by default, and a publisher that
// runs ahead of them loses messages, which the harness then waits for
// (lostAfter) or gossip recovers a second later. With 20 hosts every
// message arrives in several copies (each mesh peer forwards it, and
// copies that arrive before the first is validated are all queued), so the
// window is smaller.
type zoneCase struct {
	hosts  int
	size   string
	bytes  int
	window int // throughput runs: messages not yet delivered to every subscriber, at most
	batch  int // throughput runs: messages per op (per implementation)
	serial int // latency runs: messages per op (per implementation), one at a time
}

var zoneCases = []zoneCase{
	{hosts: 2, size: "1KB", bytes: 1 << 10, window: 16, batch: 1024, serial: 256},
	{hosts: 2, size: "200KB", bytes: 200 << 10, window: 8, batch: 128, serial: 64},
	{hosts: 20, size: "1KB", bytes: 1 << 10, window: 8, batch: 128, serial: 64},
	{hosts: 20, size: "200KB", bytes: 200 << 10, window: 2, batch: 16, serial: 8},
}

// forZone runs f for every case, as hosts=H/size=S. The nets of a topology
// are built once, on first use, and shared by its sizes.
func forZone(b *testing.B, f func(b *testing.B, nets *netCache, zc zoneCase)) {
	for _, hosts := range zoneHosts {
		b.Run(fmt.Sprintf("hosts=%d", hosts), func(b *testing.B) {
			nets := newNetCache(b, hosts)
			for _, zc := range zoneCases {
				if zc.hosts == hosts {
					b.Run("size="+zc.size, func(b *testing.B) { f(b, nets, zc) })
				}
			}
		})
	}
}

func BenchmarkZoneThroughput(b *testing.B) {
	forZone(b, func(b *testing.B, nets *netCache, zc zoneCase) {
		for _, impl := range zoneImpls {
			b.Run("impl="+impl, func(b *testing.B) {
				n := nets.get(b, impl)
				n.warm(b, zc.bytes, zc.window)
				var st runStats
				for b.Loop() {
					st.add(n.run(b, zc.batch, zc.bytes, zc.window))
				}
				st.report(b, "")
			})
		}
	})
}

func BenchmarkZoneLatency(b *testing.B) {
	forZone(b, func(b *testing.B, nets *netCache, zc zoneCase) {
		for _, impl := range zoneImpls {
			b.Run("impl="+impl, func(b *testing.B) {
				n := nets.get(b, impl)
				n.warm(b, zc.bytes, 1)
				var st runStats
				for b.Loop() {
					st.add(n.run(b, zc.serial, zc.bytes, 1))
				}
				st.report(b, "")
			})
		}
	})
}

// BenchmarkZoneVsGossipSub measures both implementations in one benchmark
// and reports the ratios ztmesh/gossipsub. One op is, for each
// implementation, a windowed batch and then a one-at-a-time batch; the
// order of the implementations alternates from op to op, so neither always
// runs on a warmer or a busier machine.
func BenchmarkZoneVsGossipSub(b *testing.B) {
	forZone(b, func(b *testing.B, nets *netCache, zc zoneCase) {
		impls := [2]*benchNet{nets.get(b, implGossipSub), nets.get(b, implZtmesh)}
		for _, n := range impls {
			n.warm(b, zc.bytes, zc.window)
		}
		var win, ser [2]runStats
		order := [2]int{0, 1}
		for b.Loop() {
			for _, i := range order {
				win[i].add(impls[i].run(b, zc.batch, zc.bytes, zc.window))
			}
			for _, i := range order {
				ser[i].add(impls[i].run(b, zc.serial, zc.bytes, 1))
			}
			order[0], order[1] = order[1], order[0]
		}
		gs, zt := &win[0], &win[1]
		for i, name := range zoneImpls {
			p := name + "-"
			b.ReportMetric(win[i].msgsPerSec(), p+"msgs/s")
			b.ReportMetric(win[i].quantileMs(0.50), p+"p50-ms")
			b.ReportMetric(win[i].quantileMs(0.99), p+"p99-ms")
			b.ReportMetric(ser[i].quantileMs(0.50), p+"serial-p50-ms")
			b.ReportMetric(ser[i].quantileMs(0.99), p+"serial-p99-ms")
			all := win[i]
			all.add(ser[i])
			b.ReportMetric(all.deliveryRatio(), p+"delivery-ratio")
			if c := win[i].cpuUsPerMsg(); c >= 0 {
				b.ReportMetric(c, p+"cpu-us/msg")
			}
		}
		b.ReportMetric(ratio(zt.msgsPerSec(), gs.msgsPerSec()), "throughput-ratio")
		b.ReportMetric(ratio(zt.quantileMs(0.99), gs.quantileMs(0.99)), "p99-ratio")
		b.ReportMetric(ratio(ser[1].quantileMs(0.50), ser[0].quantileMs(0.50)), "serial-p50-ratio")
		b.ReportMetric(ratio(ser[1].quantileMs(0.99), ser[0].quantileMs(0.99)), "serial-p99-ratio")
		if zt.cpuUsPerMsg() > 0 && gs.cpuUsPerMsg() > 0 {
			b.ReportMetric(ratio(zt.cpuUsPerMsg(), gs.cpuUsPerMsg()), "cpu-ratio")
		}
	})
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// Per-message CPU costs.

var costSizes = []struct {
	name  string
	bytes int
}{{"1KB", 1 << 10}, {"200KB", 200 << 10}}

func forCostSize(b *testing.B, f func(b *testing.B, payload []byte)) {
	for _, sz := range costSizes {
		b.Run("size="+sz.name, func(b *testing.B) {
			payload := make([]byte, sz.bytes)
			rand.Read(payload)
			b.ReportAllocs()
			f(b, payload)
		})
	}
}

// BenchmarkCostEd25519VerifyBaseline is a bare crypto/ed25519 verify of the
// payload: the floor under GossipSub's per-hop signature check.
func BenchmarkCostEd25519VerifyBaseline(b *testing.B) {
	forCostSize(b, func(b *testing.B, payload []byte) {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		sig := ed25519.Sign(priv, payload)
		for b.Loop() {
			if !ed25519.Verify(pub, payload, sig) {
				b.Fatal("signature does not verify")
			}
		}
	})
}

// gossipMessage is a GossipSub message as Topic.Publish builds it: from, a
// sequence number, the topic and data.
func gossipMessage(pid peer.ID, data []byte) *pb.Message {
	topic := benchTopic
	return &pb.Message{From: []byte(pid), Data: data, Seqno: binary.BigEndian.AppendUint64(nil, 1), Topic: &topic}
}

func benchLibP2PKey(b *testing.B) (crypto.PrivKey, peer.ID) {
	id, err := did.GenerateIdentity(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	key := id.LibP2PKey()
	pid, err := peer.IDFromPrivateKey(key)
	if err != nil {
		b.Fatal(err)
	}
	return key, pid
}

// gossipSign is what go-libp2p-pubsub v0.19.0 does to sign a message under
// strict signing (sign.go, signMessage): marshal, prefix, sign, and look
// whether the key must travel with the message.
func gossipSign(key crypto.PrivKey, pid peer.ID, m *pb.Message) error {
	m.Signature, m.Key = nil, nil
	data, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	sig, err := key.Sign(append([]byte(ps.SignPrefix), data...))
	if err != nil {
		return err
	}
	m.Signature = sig
	if pk, _ := pid.ExtractPublicKey(); pk == nil {
		return fmt.Errorf("key not in the peer ID")
	}
	return nil
}

// gossipVerify is what go-libp2p-pubsub v0.19.0 does on every hop to check
// a message's signature (sign.go, verifyMessageSignature): extract the key
// from the origin's peer ID, marshal a copy without the signature, prefix,
// verify.
func gossipVerify(m *pb.Message) error {
	pid, err := peer.IDFromBytes(m.From)
	if err != nil {
		return err
	}
	pub, err := pid.ExtractPublicKey()
	if err != nil {
		return err
	}
	xm := proto.CloneOf(m)
	xm.Signature, xm.Key = nil, nil
	data, err := proto.Marshal(xm)
	if err != nil {
		return err
	}
	ok, err := pub.Verify(append([]byte(ps.SignPrefix), data...), m.Signature)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("invalid signature")
	}
	return nil
}

// BenchmarkCostSign is strict signing's cost on the publisher, per message.
func BenchmarkCostSign(b *testing.B) {
	forCostSize(b, func(b *testing.B, payload []byte) {
		key, pid := benchLibP2PKey(b)
		m := gossipMessage(pid, payload)
		for b.Loop() {
			if err := gossipSign(key, pid, m); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkCostVerify is strict signing's cost on every hop, per message.
func BenchmarkCostVerify(b *testing.B) {
	forCostSize(b, func(b *testing.B, payload []byte) {
		key, pid := benchLibP2PKey(b)
		m := gossipMessage(pid, payload)
		if err := gossipSign(key, pid, m); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if err := gossipVerify(m); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkCostSeal is sealEnvelope: AES-256-GCM with the associated data.
func BenchmarkCostSeal(b *testing.B) {
	forCostSize(b, func(b *testing.B, payload []byte) {
		k := testKey(b, benchTopic)
		now := time.Now()
		var seq uint64
		for b.Loop() {
			seq++
			if _, err := sealEnvelope(k, benchTopic, origin, seq, now, payload); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkCostOpen is parseEnvelope and open.
func BenchmarkCostOpen(b *testing.B) {
	forCostSize(b, func(b *testing.B, payload []byte) {
		k := testKey(b, benchTopic)
		env, err := sealEnvelope(k, benchTopic, origin, 1, time.Now(), payload)
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			e, err := parseEnvelope(env)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := e.open(k, benchTopic, origin); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// costPair is two linked ztmesh nodes in zone north, for the benchmarks
// that need a real Mesh.
func costPair(b *testing.B) (a, c *tnode) {
	b.Helper()
	iss, err := did.GenerateIdentity(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	ver, err := did.NewVerifier([]did.DID{iss.DID()})
	if err != nil {
		b.Fatal(err)
	}
	if a, err = benchNode(b, iss, ver, []string{benchZone}); err != nil {
		b.Fatal(err)
	}
	if c, err = benchNode(b, iss, ver, []string{benchZone}); err != nil {
		b.Fatal(err)
	}
	if err := benchLink(a, c); err != nil {
		b.Fatal(err)
	}
	return a, c
}

func benchZoneTopic(b *testing.B) Topic {
	t, err := ZoneTopic("fleet", benchZone, benchChannel)
	if err != nil {
		b.Fatal(err)
	}
	return t
}

// BenchmarkCostMemberSubject is Member.Subject, which the validator calls on
// every message to build the policy subject of the origin.
func BenchmarkCostMemberSubject(b *testing.B) {
	a, c := costPair(b)
	mem, ok := c.members.Member(a.h.ID())
	if !ok {
		b.Fatal("a is no member of c")
	}
	b.ReportAllocs()
	for b.Loop() {
		if s := mem.Subject(); s.CredentialID == "" {
			b.Fatal("no credential ID")
		}
	}
}

// BenchmarkCostPolicyDecideCached is Mesh.decide as the validator calls it
// for a known member: a decision cache hit (the subject has a credential ID).
func BenchmarkCostPolicyDecideCached(b *testing.B) {
	a, c := costPair(b)
	mem, _ := c.members.Member(a.h.ID())
	subj, t := mem.Subject(), benchZoneTopic(b)
	if d := c.mesh.decide(policy.ActionPublish, t, subj); !d.Allow {
		b.Fatal(d.Reasons)
	}
	b.ReportAllocs()
	for b.Loop() {
		if d := c.mesh.decide(policy.ActionPublish, t, subj); !d.Allow {
			b.Fatal(d.Reasons)
		}
	}
}

// BenchmarkCostPolicyDecideUncached is the same decision with the cache
// off: a full evaluation of the default policy, what a miss costs.
func BenchmarkCostPolicyDecideUncached(b *testing.B) {
	a, _ := costPair(b)
	e, err := policy.New(policy.WithCacheSize(0))
	if err != nil {
		b.Fatal(err)
	}
	subj, t := policy.SubjectOf(a.cred), benchZoneTopic(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		in := policy.Input{Action: policy.ActionPublish, Mesh: t.Mesh, Zone: t.Zone, Channel: t.Channel, Topic: t.String(), Subject: subj, Now: time.Now()}
		if d := e.Decide(ctx, &in); !d.Allow {
			b.Fatal(d.Reasons)
		}
	}
}

// BenchmarkCostReplayWindow is the replay check as the validator does it,
// under the key state's lock. Sequence numbers are per node, not per topic,
// so under one key they advance by more than 1 when the origin publishes on
// several topics: gap=G advances by G each message.
func BenchmarkCostReplayWindow(b *testing.B) {
	for _, gap := range []uint64{1, 64, replayWindowBits - 1} {
		b.Run(fmt.Sprintf("gap=%d", gap), func(b *testing.B) {
			var st recvState
			var seq uint64
			b.ReportAllocs()
			for b.Loop() {
				seq += gap
				st.mu.Lock()
				fresh := st.win.check(seq)
				st.lastUsed = t0
				st.mu.Unlock()
				if !fresh {
					b.Fatal("fresh sequence number taken for a replay")
				}
			}
		})
	}
}

// BenchmarkCostValidateZone is the whole zone validator (checkZone) for a
// message whose sender key is already held, after GossipSub's signature
// check: origin=peer on a receiving hop, origin=self on the publisher,
// which validates its own message when it publishes.
func BenchmarkCostValidateZone(b *testing.B) {
	a, c := costPair(b)
	t := benchZoneTopic(b)
	topic := t.String()
	k, err := a.mesh.ownKey(topic)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	// c holds a's key, as after a key pull; a holds its own.
	recvs := map[string]*recvState{"peer": c.mesh.storeRecv(recvKeyID{a.h.ID(), k.id}, k)}
	if recvs["self"], err = a.mesh.receiverKey(ctx, a.h.ID(), k.id, topic); err != nil {
		b.Fatal(err)
	}
	validators := map[string]*Mesh{"peer": c.mesh, "self": a.mesh}
	forCostSize(b, func(b *testing.B, payload []byte) {
		// A ring of distinct messages; the replay window is reset at every
		// turn of the ring (64 messages), so no message is a replay.
		const ring = 64
		msgs := make([]*ps.Message, ring)
		for i := range msgs {
			env, err := sealEnvelope(k, topic, a.h.ID(), uint64(i+1), time.Now(), payload)
			if err != nil {
				b.Fatal(err)
			}
			msgs[i] = &ps.Message{Message: &pb.Message{From: []byte(a.h.ID()), Data: env, Topic: &topic}, ReceivedFrom: a.h.ID()}
		}
		for _, who := range []string{"peer", "self"} {
			b.Run("origin="+who, func(b *testing.B) {
				m, st := validators[who], recvs[who]
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if i%ring == 0 {
						st.mu.Lock()
						st.win = replayWindow{}
						st.mu.Unlock()
					}
					if res, reason := m.checkZone(ctx, a.h.ID(), msgs[i%ring]); res != accept {
						b.Fatalf("message %d not accepted: %s", i, reason)
					}
					i++
				}
			})
		}
	})
}
