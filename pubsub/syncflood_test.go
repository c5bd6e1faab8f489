package pubsub

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestSyncFloodFromMember: a verified member opens many parallel sync
// streams, each declaring an 8 MiB frame and sending 1 KiB of it (issue
// 15, item 3; on main this took a daemon to 1.44 GB). The node reads at
// most MaxSyncStreamsPerPeer of them and resets the others unread, and
// allocates about what arrived, not what was declared.
func TestSyncFloodFromMember(t *testing.T) {
	n := newNet(t, 0)
	b := n.add([]string{"north"}, 0)
	x, _ := n.syncOnlyPeer(b, true)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	const streams, declared = 64, 8 << 20
	junk := append(binary.BigEndian.AppendUint32(nil, declared), bytes.Repeat([]byte("j"), 1<<10)...)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var (
		reset atomic.Int64
		wg    sync.WaitGroup
		open  []network.Stream
	)
	for range streams {
		s, err := x.NewStream(ctx, b.h.ID(), SyncProtocol)
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, s)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = s.Write(junk)
			var buf [1]byte
			if _, err := s.Read(buf[:]); err != nil && !errors.Is(err, io.EOF) {
				reset.Add(1)
			}
		}()
	}
	// Poll (not eventuallyT) so the allocation is reported either way.
	for deadline := time.Now().Add(20 * time.Second); reset.Load() < streams-MaxSyncStreamsPerPeer && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	runtime.ReadMemStats(&after)
	perStream := (after.TotalAlloc - before.TotalAlloc) / streams
	t.Logf("%d streams declaring %d bytes each: %d reset, %d bytes allocated per stream", streams, declared, reset.Load(), perStream)
	if perStream > 256<<10 {
		t.Errorf("allocated %d bytes per stream declaring %d and sending %d, want at most %d", perStream, declared, len(junk), 256<<10)
	}
	if got := reset.Load(); got != streams-MaxSyncStreamsPerPeer {
		t.Errorf("%d streams reset, want %d (the cap is %d)", got, streams-MaxSyncStreamsPerPeer, MaxSyncStreamsPerPeer)
	}
	for _, s := range open {
		_ = s.Reset()
	}
	wg.Wait()
}

// TestSyncInvalidDataDisconnects: a member that sends invalid sync data
// (here, frames over the limit) has each stream counted against it
// (OnMisbehave) and is disconnected at SyncMisbehaveLimit.
func TestSyncInvalidDataDisconnects(t *testing.T) {
	n := newNet(t, 0)
	var mu sync.Mutex
	misbehave := map[peer.ID]int{}
	n.config = func(c *Config) {
		c.OnMisbehave = func(p peer.ID, _ string) { mu.Lock(); misbehave[p]++; mu.Unlock() }
	}
	b := n.add([]string{"north"}, 0)
	y, _ := n.syncOnlyPeer(b, true)
	count := func() int { mu.Lock(); defer mu.Unlock(); return misbehave[y.ID()] }
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range SyncMisbehaveLimit {
		s, err := y.NewStream(ctx, b.h.ID(), SyncProtocol)
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		_, _ = s.Write(binary.BigEndian.AppendUint32(nil, 0xffffffff))
		eventuallyT(t, 20*time.Second, "invalid sync stream counted against the member", func() bool { return count() >= i+1 })
		_ = s.Reset()
	}
	eventuallyT(t, 20*time.Second, "member disconnected after invalid sync data", func() bool {
		return b.h.Network().Connectedness(y.ID()) != network.Connected
	})
}
