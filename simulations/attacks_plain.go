package simulations

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	ps "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// plainResult is what the same attackers achieve on plain GossipSub
// (default settings, same topology and load): the comparison column.
type plainResult struct {
	honestSent   int64   // honest messages published while the attackers listened
	outsiderRead float64 // fraction of them one uncredentialed peer received
	outsiderJunk int64   // deliveries of its messages to honest subscribers
	zoneB        string
	zoneBRead    float64 // fraction of zone B's (the second zone's) messages that peer received
	sybilRead    float64 // fraction of all honest messages the Sybils received (at least one of them)
	sybils       int
}

// runPlain runs the honest load on plain GossipSub over the same topology
// and lets one uncredentialed peer, then the Sybils, join for w each.
func (l *lab) runPlain(ctx context.Context, n int, w time.Duration, rate float64, size int) (*plainResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	specs := l.sc.Specs(n)
	b, err := NewBaseline(ctx, specs, l.sc.Link.Link(), l.sc.Degree, l.sc.Cross, l.sc.Seed)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	var junk atomic.Int64
	for i := range b.Hosts {
		t, err := b.Topic(i, l.zoneTopic(specs[i].Zones[0]))
		if err != nil {
			return nil, err
		}
		sub, err := t.Subscribe()
		if err != nil {
			return nil, err
		}
		go func() {
			for {
				m, err := sub.Next(ctx)
				if err != nil {
					return
				}
				if len(m.Data) > 0 && m.Data[0] == 'J' {
					junk.Add(1)
				}
			}
		}()
	}
	// Honest load: the same rate and size, stamped with the zone index so
	// an attacker's receipts can be told apart by zone.
	var counting atomic.Bool
	var published sync.Map // keys of the honest messages published while counting
	every := time.Duration(float64(time.Second) / rate)
	for i := range b.Hosts {
		t, _ := b.Topic(i, l.zoneTopic(specs[i].Zones[0]))
		zone1 := specs[i].Zones[0] == l.zones[1]
		go func() {
			data := make([]byte, max(size, 13))
			data[0] = 'H'
			binary.BigEndian.PutUint32(data[1:5], uint32(i))
			if zone1 {
				data[13] = 1
			}
			tick := time.NewTicker(every)
			defer tick.Stop()
			for seq := uint64(1); ; seq++ {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				binary.BigEndian.PutUint64(data[5:13], seq)
				var key [13]byte
				copy(key[:], data)
				on := counting.Load()
				if on {
					published.Store(key, zone1)
				}
				_ = t.Publish(ctx, bytes.Clone(data)) // GossipSub keeps the slice it is given
			}
		}()
	}
	time.Sleep(3 * time.Second) // meshes graft
	topics := make([]string, len(l.zones))
	for i, z := range l.zones {
		topics[i] = l.zoneTopic(z)
	}
	// listen joins k outsiders to k*3 honest hosts... and counts honest
	// messages received by any of them (each message once).
	var sent, sentZone1 int64 // published in the last window
	listen := func(k, links int, publish bool) (read, readZone1 int64, err error) {
		var mu sync.Mutex
		seen := map[[13]byte]bool{}
		var outs []host.Host
		defer func() {
			for _, h := range outs {
				h.Close()
			}
		}()
		for range k {
			h, err := b.Net.GenPeer()
			if err != nil {
				return 0, 0, err
			}
			outs = append(outs, h)
			g, err := ps.NewGossipSub(ctx, h)
			if err != nil {
				return 0, 0, err
			}
			for _, name := range topics {
				t, err := g.Join(name)
				if err != nil {
					return 0, 0, err
				}
				sub, err := t.Subscribe()
				if err != nil {
					return 0, 0, err
				}
				go func() {
					for {
						m, err := sub.Next(ctx)
						if err != nil {
							return
						}
						if m.ReceivedFrom == h.ID() || len(m.Data) < 14 || m.Data[0] != 'H' {
							continue
						}
						var key [13]byte
						copy(key[:], m.Data[:13])
						if _, ok := published.Load(key); !ok {
							continue // published outside the window
						}
						mu.Lock()
						if !seen[key] {
							seen[key] = true
							read++
							if m.Data[13] == 1 {
								readZone1++
							}
						}
						mu.Unlock()
					}
				}()
				if publish {
					go func() {
						for ctx.Err() == nil {
							_ = t.Publish(ctx, []byte("J junk from an outsider"))
							sleepCtx(ctx, 500*time.Millisecond)
						}
					}()
				}
			}
			// links honest hosts: spread over the zones for the outsider
			// (k == 1), at random for the Sybils.
			var idx []int
			if k == 1 {
				for j := 0; len(idx) < links && j < len(b.Hosts); j++ {
					idx = append(idx, (j%len(l.zones))+len(l.zones)*l.rnd.IntN(max(1, len(b.Hosts)/len(l.zones))))
				}
			} else {
				idx = l.rnd.Perm(len(b.Hosts))[:links]
			}
			for _, j := range idx {
				if j >= len(b.Hosts) {
					continue
				}
				x := b.Hosts[j]
				if _, err := b.Net.LinkPeers(h.ID(), x.ID()); err != nil {
					return 0, 0, err
				}
				_ = h.Connect(ctx, peer.AddrInfo{ID: x.ID(), Addrs: x.Addrs()})
			}
		}
		time.Sleep(2 * time.Second) // subscriptions spread
		// Only messages published from now on count (those of an earlier
		// window may still arrive by gossip).
		mu.Lock()
		published.Clear()
		clear(seen)
		read, readZone1 = 0, 0
		mu.Unlock()
		counting.Store(true)
		sleepCtx(ctx, w)
		counting.Store(false)
		sleepCtx(ctx, attackSettle)
		sent, sentZone1 = 0, 0
		published.Range(func(_, z any) bool {
			sent++
			if z.(bool) {
				sentZone1++
			}
			return true
		})
		mu.Lock()
		defer mu.Unlock()
		return read, readZone1, nil
	}
	res := &plainResult{sybils: l.sc.Attackers, zoneB: l.zones[1]}
	if res.sybils == 0 {
		res.sybils = 50
	}
	junk.Store(0)
	read, read1, err := listen(1, targetsPerAttacker, true)
	if err != nil {
		return nil, err
	}
	res.honestSent = sent
	res.outsiderRead = Ratio(float64(read), float64(sent))
	res.zoneBRead = Ratio(float64(read1), float64(sentZone1))
	res.outsiderJunk = junk.Load()
	read, _, err = listen(res.sybils, 3, false)
	if err != nil {
		return nil, err
	}
	res.sybilRead = Ratio(float64(read), float64(sent))
	return res, nil
}

// column returns the comparison cell for an attack.
func (p *plainResult) column(attack string) string {
	if p == nil {
		return ""
	}
	outsider := fmt.Sprintf("any peer may join: an outsider read %.0f%% of zone messages, its messages were delivered %d times", 100*p.outsiderRead, p.outsiderJunk)
	switch attack {
	case "no-credential", "untrusted-issuer", "forged-credential", "expired-credential", "revoked":
		return outsider
	case "zone-crossing":
		return fmt.Sprintf("no zones: a peer subscribed to %s's topic read %.0f%% of its messages", p.zoneB, 100*p.zoneBRead)
	case "junk":
		return fmt.Sprintf("no validation of content: an outsider's messages were delivered %d times", p.outsiderJunk)
	case "flood":
		return "no rate limit"
	case "sybil":
		return fmt.Sprintf("%d Sybils read %.0f%% of zone messages", p.sybils, 100*p.sybilRead)
	}
	return ""
}
