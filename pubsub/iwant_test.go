package pubsub

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	ps "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"
)

// iwantProbe is a libp2p host that speaks GossipSub by hand: it announces a
// subscription and asks for message IDs with IWANT, and records every
// message any peer sends it. It is how a non-member would try to pull zone
// messages through gossip.
type iwantProbe struct {
	h       host.Host
	mu      sync.Mutex
	got     int
	inbound int // GossipSub streams peers opened to us
}

func newProbe(t *testing.T) *iwantProbe {
	h, err := libp2p.New(libp2p.NoListenAddrs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	p := &iwantProbe{h: h}
	h.SetStreamHandler(ps.GossipSubID_v11, func(s network.Stream) {
		p.mu.Lock()
		p.inbound++
		p.mu.Unlock()
		r := bufio.NewReader(s)
		for {
			n, err := binary.ReadUvarint(r)
			if err != nil || n > 4<<20 {
				return
			}
			buf := make([]byte, n)
			if _, err := io.ReadFull(r, buf); err != nil {
				return
			}
			var rpc pb.RPC
			if proto.Unmarshal(buf, &rpc) == nil {
				p.mu.Lock()
				p.got += len(rpc.Publish)
				p.mu.Unlock()
			}
		}
	})
	return p
}

func (p *iwantProbe) received() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.got
}

// ask connects to target, subscribes to topic and sends IWANT for ids. If
// attach, it first waits for the target's GossipSub to open its stream to
// us (before that, the target has nowhere to send an answer); a ztmesh
// node never opens one to a non-member, so the probe then asks at once.
func (p *iwantProbe) ask(t *testing.T, target peer.AddrInfo, topic string, ids []string, attach bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.h.Connect(ctx, target); err != nil {
		t.Fatal(err)
	}
	if attach {
		eventuallyT(t, 5*time.Second, "target opens its GossipSub stream", func() bool {
			p.mu.Lock()
			defer p.mu.Unlock()
			return p.inbound > 0
		})
	}
	s, err := p.h.NewStream(ctx, target.ID, ps.GossipSubID_v11)
	if err != nil {
		if attach {
			t.Fatal(err)
		}
		return // refused outright: nothing to ask through
	}
	sub := true
	rpc := &pb.RPC{
		Subscriptions: []*pb.RPC_SubOpts{{Subscribe: &sub, Topicid: &topic}},
		Control:       &pb.ControlMessage{Iwant: []*pb.ControlIWant{{MessageIDs: ids}}},
	}
	data, err := proto.Marshal(rpc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(append(binary.AppendUvarint(nil, uint64(len(data))), data...)); err != nil && attach {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
}

// TestIWANTServesOnlyMembers: a non-member that asks a node for zone
// messages by ID (IWANT, the gossip path) gets nothing. The same request to
// a stock GossipSub node returns the message, which shows the probe works.
func TestIWANTServesOnlyMembers(t *testing.T) {
	// Control: stock GossipSub answers IWANT from anyone.
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	stock, err := ps.NewGossipSub(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	const plainTopic = "plain"
	tp, _ := stock.Join(plainTopic)
	sub, _ := tp.Subscribe()
	defer sub.Cancel()
	if err := tp.Publish(context.Background(), []byte("public")); err != nil {
		t.Fatal(err)
	}
	m, err := sub.Next(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	probe := newProbe(t)
	probe.ask(t, peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}, plainTopic, []string{m.ID}, true)
	eventuallyT(t, 5*time.Second, "stock GossipSub answers the probe's IWANT", func() bool { return probe.received() > 0 })

	// ztmesh: a member publishes; a non-member asks for it by ID.
	n := newNet(t, 0, []string{"north"}, []string{"north"})
	a, b := n.nodes[0], n.nodes[1]
	if _, err := b.mesh.Subscribe("north", "maps"); err != nil {
		t.Fatal(err)
	}
	raw := capture(t, b, "north", "maps")
	waitPeers(t, a, "north", "maps", b)
	time.Sleep(1200 * time.Millisecond)
	if _, err := a.mesh.Publish(context.Background(), "north", "maps", []byte("members only")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := raw.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	topic, _ := ZoneTopic("fleet", "north", "maps")
	outsider := newProbe(t)
	outsider.ask(t, peer.AddrInfo{ID: a.h.ID(), Addrs: a.h.Addrs()}, topic.String(), []string{got.ID}, false)
	time.Sleep(2 * time.Second)
	if n := outsider.received(); n != 0 {
		t.Fatalf("non-member received %d zone messages through IWANT", n)
	}
	outsider.mu.Lock()
	inbound := outsider.inbound
	outsider.mu.Unlock()
	if inbound != 0 {
		t.Fatalf("the node opened %d GossipSub streams to a non-member", inbound)
	}
}
