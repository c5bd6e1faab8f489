package simulations

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/ztmesh/ztmesh/crdt"
	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/internal/wire"
	"github.com/ztmesh/ztmesh/node"
	"github.com/ztmesh/ztmesh/pubsub"
)

// Issue 15, items 3 and 4: a member with one valid credential abuses the
// sync and anti-entropy stream protocols.

// syncFloodStreams is how many parallel sync streams the attacker opens to
// each target, each declaring an 8 MiB frame and sending 1 KiB of it.
const syncFloodStreams = 64

// attackSyncFlood: a credentialed member of zone 0 opens syncFloodStreams
// parallel sync streams to each target with junk frames, then sends
// frames over the limit until it is disconnected.
func attackSyncFlood(ctx context.Context, l *lab, w time.Duration) (*attackRow, error) {
	row := newRow("sync-flood")
	z := l.zones[0]
	m, err := l.startAttacker(ctx, row.name, NodeSpec{Zones: []string{z}, Role: "vehicle", Trust: l.sc.Trust}, nil, nil)
	if err != nil {
		return nil, err
	}
	defer l.stop(m)
	row.attacker(m.ID.DID())
	targets := l.pick(z, targetsPerAttacker)
	l.connectMember(ctx, m, targets)
	junk := append(binary.BigEndian.AppendUint32(nil, 8<<20), make([]byte, 1<<10)...)
	var refused, opened int64
	disconnected := 0
	for _, t := range targets {
		var resets atomic.Int64
		var mine atomic.Bool // set once we reset the rest ourselves
		before := t.Mesh().Stats().SyncDisconnects.Load()
		var wg sync.WaitGroup
		var streams []network.Stream
		for range syncFloodStreams {
			s, err := m.Host().NewStream(ctx, t.Host().ID(), pubsub.SyncProtocol)
			if err != nil {
				continue
			}
			row.attempts++
			streams = append(streams, s)
			wg.Go(func() {
				_, _ = s.Write(junk)
				var b [1]byte
				if _, err := s.Read(b[:]); err != nil && !errors.Is(err, io.EOF) && !mine.Load() {
					resets.Add(1)
				}
			})
		}
		n := int64(len(streams))
		// The refused streams are reset at once; the others wait for the
		// rest of their frame: let them go after a short while.
		deadline := time.Now().Add(min(w, 5*time.Second))
		for resets.Load() < n-int64(pubsub.MaxSyncStreamsPerPeer) && time.Now().Before(deadline) && ctx.Err() == nil {
			sleepCtx(ctx, 20*time.Millisecond)
		}
		mine.Store(true)
		refused += resets.Load()
		opened += n
		for _, s := range streams {
			_ = s.Reset()
		}
		wg.Wait()
		// Invalid frames until the target disconnects it.
		for i := 0; i < 2*pubsub.SyncMisbehaveLimit && t.Mesh().Stats().SyncDisconnects.Load() == before && ctx.Err() == nil; i++ {
			s, err := m.Host().NewStream(ctx, t.Host().ID(), pubsub.SyncProtocol)
			if err != nil {
				break
			}
			row.attempts++
			_, _ = s.Write(binary.BigEndian.AppendUint32(nil, 0xffffffff))
			var b [1]byte
			_, _ = s.Read(b[:])
			_ = s.Reset()
		}
		if t.Mesh().Stats().SyncDisconnects.Load() > before {
			disconnected++
		}
	}
	if over := opened - int64(len(targets)*pubsub.MaxSyncStreamsPerPeer); refused < over {
		row.accepted += int(over - refused)
		row.failures = append(row.failures, fmt.Sprintf("%d streams over the per-peer cap were read", over-refused))
	}
	row.stopped = append(row.stopped, fmt.Sprintf("per-peer sync stream cap (%d): %d of %d streams reset unread", pubsub.MaxSyncStreamsPerPeer, refused, opened))
	row.notes = append(row.notes, fmt.Sprintf("disconnected by %d of %d targets after %d invalid sync streams", disconnected, len(targets), pubsub.SyncMisbehaveLimit))
	if disconnected < len(targets) {
		row.failures = append(row.failures, fmt.Sprintf("only %d of %d targets disconnected the member sending invalid sync data", disconnected, len(targets)))
	}
	return row, nil
}

// liarSigner writes entries under one member's DID and signs them with
// another key: each entry's signature fails, at a verification's cost.
type liarSigner struct {
	claimed did.DID
	key     *did.Identity
}

func (s liarSigner) DID() did.DID                           { return s.claimed }
func (s liarSigner) Sign(context string, msg []byte) []byte { return s.key.Sign(context, msg) }

// antiEntropyJunkEntries is how many junk entries the attacker serves.
const antiEntropyJunkEntries = crdt.MaxEntries

// attackAntiEntropyJunk: a credentialed member of zone 0 answers every
// anti-entropy request with entries under its own DID whose signatures are
// junk; the targets open the state and reconcile with it.
func attackAntiEntropyJunk(ctx context.Context, l *lab, w time.Duration) (*attackRow, error) {
	row := newRow("anti-entropy-junk")
	z := l.zones[0]
	m, err := l.startAttacker(ctx, row.name, NodeSpec{Zones: []string{z}, Role: "vehicle", Trust: l.sc.Trust}, nil, nil)
	if err != nil {
		return nil, err
	}
	defer l.stop(m)
	row.attacker(m.ID.DID())
	dir, err := os.MkdirTemp("", "ztmesh-junk-state")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	store, err := crdt.OpenStore(filepath.Join(dir, "junk.db"))
	if err != nil {
		return nil, err
	}
	defer store.Close()
	stranger, err := did.GenerateIdentity(nil)
	if err != nil {
		return nil, err
	}
	const name = "junk-hazards"
	allow := func(did.DID, string, string) error { return nil }
	junk, err := crdt.NewReplica(z+"."+name, crdt.LWWMap, liarSigner{m.ID.DID(), stranger}, crdt.NewClock(time.Now, 0), store, allow)
	if err != nil {
		return nil, err
	}
	defer junk.Close()
	for i := range antiEntropyJunkEntries {
		if _, err := junk.Put(ctx, fmt.Sprintf("%s/junk%d", m.ID.DID(), i), []byte("x")); err != nil {
			return nil, err
		}
	}
	var served, entries atomic.Int64
	m.Host().SetStreamHandler(node.StateProtocol, func(st network.Stream) {
		defer st.Close()
		var req struct {
			V      int    `json:"v"`
			Zone   string `json:"zone"`
			Name   string `json:"name"`
			Kind   string `json:"kind"`
			Digest []byte `json:"digest"`
		}
		if err := wire.ReadJSON(st, &req, 64<<10); err != nil || req.Name != name {
			st.Reset()
			return
		}
		served.Add(1)
		_ = junk.Missing(req.Digest, 0, func(c []byte) error {
			entries.Add(crdt.MaxEntries) // an upper bound: full chunks
			return wire.WriteFrame(st, c, crdt.MaxChunkSize)
		})
	})
	targets := l.pick(z, targetsPerAttacker)
	l.connectMember(ctx, m, targets)
	var replicas []*crdt.Replica
	for _, t := range targets {
		r, err := t.State(z, name, crdt.LWWMap) // reconciles with every connected peer
		if err != nil {
			return nil, fmt.Errorf("open state on a target: %w", err)
		}
		replicas = append(replicas, r)
	}
	deadline := time.Now().Add(max(w, 10*time.Second))
	for served.Load() < int64(len(targets)) && time.Now().Before(deadline) && ctx.Err() == nil {
		sleepCtx(ctx, 50*time.Millisecond)
	}
	sleepCtx(ctx, min(w, 2*time.Second))
	row.attempts = int(served.Load()) * antiEntropyJunkEntries
	for _, r := range replicas {
		for k := range r.Snapshot() {
			if len(k) > 0 {
				row.accepted++
			}
		}
	}
	row.notes = append(row.notes, fmt.Sprintf("%d reconcile streams served %d junk entries each", served.Load(), antiEntropyJunkEntries))
	if served.Load() == 0 {
		row.failures = append(row.failures, "no target reconciled with the attacker")
	}
	return row, nil
}
