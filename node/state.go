package node

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/ztmesh/ztmesh/crdt"
	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/internal/wire"
	"github.com/ztmesh/ztmesh/policy"
	"github.com/ztmesh/ztmesh/pubsub"
)

// Shared state. Each replicated state belongs to a zone: its deltas travel on
// the zone channel "state-<name>" through the sealed envelope, and its
// anti-entropy runs over StateProtocol between verified members that the
// policy lets read the zone. Writes are authorized by the policy's
// state_write action, by the writer and again by every node that merges
// them.

// StateProtocol is anti-entropy for shared state.
const StateProtocol protocol.ID = "/ztmesh/state/1.0.0"

const (
	// StateFile is the state store in the data dir (mode 0600).
	StateFile = "state.db"
	// stateChannelPrefix names the zone channel of a state.
	stateChannelPrefix = "state-"
	// antiEntropyEvery is how often each open state reconciles with a peer.
	antiEntropyEvery = 30 * time.Second
	maxStateRequest  = 64 << 10
)

// stateKey names one replicated state: a zone and a name.
type stateKey struct{ zone, name string }

func (k stateKey) replicaName() string { return k.zone + "." + k.name }
func (k stateKey) channel() string     { return stateChannelPrefix + k.name }

// states holds the node's open replicas.
type states struct {
	n     *Node
	store *crdt.Store
	clock *crdt.Clock

	mu   sync.Mutex
	open map[stateKey]*openState
}

type openState struct {
	key stateKey
	r   *crdt.Replica
	sub *pubsub.Subscription
}

func (n *Node) openStates() error {
	store, err := crdt.OpenStore(filepath.Join(n.cfg.Dir, StateFile))
	if err != nil {
		return fmt.Errorf("state store: %w", err)
	}
	n.states = &states{n: n, store: store, clock: crdt.NewClock(n.now, 0), open: map[stateKey]*openState{}}
	n.host.SetStreamHandler(StateProtocol, n.states.handleAntiEntropy)
	n.goLoop(n.states.antiEntropyLoop)
	return nil
}

func (s *states) close() error {
	s.mu.Lock()
	var errs []error
	for _, o := range s.open {
		o.sub.Cancel()
		errs = append(errs, o.r.Close())
	}
	s.open = map[stateKey]*openState{}
	s.mu.Unlock()
	errs = append(errs, s.store.Close())
	return errors.Join(errs...)
}

// State opens (or returns the open) replica of a zone's state. The node
// must be allowed to subscribe to the state's channel: reading state is
// reading the zone.
func (n *Node) State(zone, name string, kind crdt.Kind) (*crdt.Replica, error) {
	return n.states.get(zone, name, kind)
}

func (s *states) get(zone, name string, kind crdt.Kind) (*crdt.Replica, error) {
	k := stateKey{zone, name}
	t, err := pubsub.ZoneTopic(s.n.cfg.Mesh, zone, k.channel())
	if err != nil {
		return nil, fmt.Errorf("state %q in zone %q: %w", name, zone, err)
	}
	if len(k.replicaName()) > crdt.MaxStateName {
		return nil, fmt.Errorf("state %q in zone %q: zone and name together must be under %d characters", name, zone, crdt.MaxStateName)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if o, ok := s.open[k]; ok {
		if o.r.Kind() != kind {
			return nil, fmt.Errorf("state %q in zone %q is a %s, not a %s", name, zone, o.r.Kind(), kind)
		}
		return o.r, nil
	}
	sub, err := s.n.mesh.Subscribe(zone, k.channel())
	if err != nil {
		return nil, err // denied by policy: this node may not read the zone
	}
	r, err := crdt.NewReplica(k.replicaName(), kind, s.n.id, s.clock, s.store, s.authorizer(t),
		crdt.WithTransport(stateTransport{s.n.mesh, k}))
	if err != nil {
		sub.Cancel()
		return nil, err
	}
	o := &openState{key: k, r: r, sub: sub}
	s.open[k] = o
	s.n.goLoop(func(ctx context.Context) { s.receive(ctx, o) })
	// Catch up with whoever is connected now.
	for _, p := range s.n.roster.connected.List() {
		s.n.goLoop(func(ctx context.Context) { s.reconcile(ctx, p.ID, o) })
	}
	return r, nil
}

// stateTransport broadcasts a state's deltas on its zone channel.
type stateTransport struct {
	mesh *pubsub.Mesh
	k    stateKey
}

func (t stateTransport) Broadcast(ctx context.Context, _ string, delta []byte) error {
	_, err := t.mesh.Publish(ctx, t.k.zone, t.k.channel(), delta)
	return err
}

// authorizer asks the policy whether a writer may write a key of a state.
// The writer's credential is its current one if it is connected, ours if
// it is us, or the last one it presented to us while still valid and not
// revoked; a writer we never verified is refused. Its trust score is this
// node's effective trust in it (as for publishing), with its attestation
// and quarantine; our own writes carry our credential's score.
func (s *states) authorizer(t pubsub.Topic) crdt.Authorizer {
	return func(origin did.DID, state, key string) error {
		cred := s.n.roster.Credential(origin)
		if cred == nil {
			return fmt.Errorf("writer %s is not a member known to this node", origin)
		}
		sub := policy.SubjectOf(cred)
		if origin != s.n.id.DID() {
			trust, attested, quarantine := s.n.standing(cred)
			if quarantine != "" {
				return fmt.Errorf("%w: state_write of %q by %s: quarantined here (%s)", policy.ErrDenied, key, origin, quarantine)
			}
			sub.TrustScore, sub.Attested = trust, attested
		}
		name := strings.TrimPrefix(state, t.Zone+".")
		in := policy.Input{Action: policy.ActionStateWrite, Mesh: t.Mesh, Zone: t.Zone, Channel: t.Channel, Topic: t.String(),
			State: name, Key: key, Now: s.n.now(), Subject: sub}
		if d := s.n.policy.Decide(context.Background(), &in); !d.Allow {
			return fmt.Errorf("%w: state_write of %q by %s: %s", policy.ErrDenied, key, origin, strings.Join(d.Reasons, "; "))
		}
		return nil
	}
}

// receive merges the deltas that arrive on a state's channel. The zone
// envelope has authenticated the origin; Apply checks the delta is its own.
func (s *states) receive(ctx context.Context, o *openState) {
	for {
		d, err := o.sub.Next(ctx)
		if err != nil {
			return
		}
		if d.Origin == s.n.id.DID() {
			continue // our own delta, already applied
		}
		delta, err := crdt.DecodeDelta(d.Data)
		if err == nil {
			_, err = o.r.Apply(d.Origin, delta)
		}
		if err != nil {
			s.n.log.Warn("state delta refused", "event_type", "state_delta_refused", "state", o.key.replicaName(),
				"origin", d.Origin.String(), "reason", oneLine(err))
		}
	}
}

// stateRequest asks a peer for what our replica lacks.
type stateRequest struct {
	V      int    `json:"v"`
	Zone   string `json:"zone"`
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	Digest []byte `json:"digest"`
}

// reconcile runs anti-entropy for one state with one peer: send our digest,
// apply the chunks it answers with.
func (s *states) reconcile(ctx context.Context, p peer.ID, o *openState) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	dg, err := o.r.Digest()
	if err != nil {
		return
	}
	st, err := s.n.host.NewStream(ctx, p, StateProtocol)
	if err != nil {
		return // the peer does not run this protocol or is gone
	}
	defer st.Close()
	_ = st.SetDeadline(time.Now().Add(30 * time.Second))
	req := stateRequest{V: 1, Zone: o.key.zone, Name: o.key.name, Kind: string(o.r.Kind()), Digest: dg}
	if err := wire.WriteJSON(st, req, maxStateRequest); err != nil {
		st.Reset()
		return
	}
	_ = st.CloseWrite()
	// Skipped entries are logged as one line per stream, not one per
	// entry: a peer can send 4,096 in a chunk.
	var (
		skipped   int
		firstSkip error
	)
	defer func() {
		if skipped > 0 {
			s.n.log.Info("state entries skipped", "event_type", "state_entry_refused", "peer", p.String(), "state", o.key.replicaName(),
				"count", skipped, "reason", oneLine(firstSkip))
		}
	}()
	for entries := 0; entries < crdt.MaxRoundEntries; entries += crdt.MaxEntries {
		chunk, err := wire.ReadFrame(st, crdt.MaxChunkSize)
		if err != nil {
			return // EOF ends the answer
		}
		if len(chunk) == 0 {
			return
		}
		_, sk, err := o.r.ApplyChunk(chunk)
		if err != nil {
			s.n.log.Warn("state chunk refused", "event_type", "state_chunk_refused", "peer", p.String(), "state", o.key.replicaName(), "reason", oneLine(err))
			st.Reset()
			if junkChunk(err) {
				s.n.onMisbehave(p, "invalid state chunk")
			}
			return
		}
		if len(sk) > 0 && firstSkip == nil {
			firstSkip = sk[0]
		}
		skipped += len(sk)
	}
	// MaxRoundEntries reached: the rest comes next round.
	st.Reset()
}

// junkChunk reports whether a chunk refused with err is the sender's
// fault: not well formed, over a limit, for another state, or carrying an
// entry whose signature fails (a replica relays only what it verified).
// A format version or a closed replica is not.
func junkChunk(err error) bool {
	return errors.Is(err, crdt.ErrBadSignature) || errors.Is(err, crdt.ErrMalformed) ||
		errors.Is(err, crdt.ErrTooLarge) || errors.Is(err, crdt.ErrWrongState) || errors.Is(err, crdt.ErrAttribution)
}

// handleAntiEntropy answers a peer's digest with what it lacks, if the peer
// is a verified member allowed to read the state's zone channel.
func (s *states) handleAntiEntropy(st network.Stream) {
	defer st.Close()
	_ = st.SetDeadline(time.Now().Add(30 * time.Second))
	p := st.Conn().RemotePeer()
	var req stateRequest
	if err := wire.ReadJSON(st, &req, maxStateRequest); err != nil || req.V != 1 {
		st.Reset()
		return
	}
	k := stateKey{req.Zone, req.Name}
	t, err := pubsub.ZoneTopic(s.n.cfg.Mesh, req.Zone, k.channel())
	if err != nil {
		st.Reset()
		return
	}
	mem, ok := s.n.mesh.AwaitMember(p, 5*time.Second)
	if !ok || !s.n.mesh.Allowed(policy.ActionSubscribe, t, mem) {
		s.n.log.Warn("state request refused", "event_type", "state_request_refused", "peer", p.String(), "zone", truncate(req.Zone), "reason", "not allowed to read the zone")
		st.Reset()
		return
	}
	s.mu.Lock()
	o, ok := s.open[k]
	s.mu.Unlock()
	if !ok || string(o.r.Kind()) != req.Kind {
		return // we do not replicate it: nothing to give
	}
	err = o.r.Missing(req.Digest, crdt.MaxChunkSize, func(chunk []byte) error {
		return wire.WriteFrame(st, chunk, crdt.MaxChunkSize)
	})
	if err != nil {
		st.Reset()
	}
}

// antiEntropyLoop reconciles every open state with one random verified
// peer every antiEntropyEvery, and with every newly verified peer.
func (s *states) antiEntropyLoop(ctx context.Context) {
	t := time.NewTicker(antiEntropyEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		peers := s.n.roster.connected.List()
		if len(peers) == 0 {
			continue
		}
		s.mu.Lock()
		open := make([]*openState, 0, len(s.open))
		for _, o := range s.open {
			open = append(open, o)
		}
		s.mu.Unlock()
		for i, o := range open {
			s.reconcile(ctx, peers[(int(time.Now().UnixNano())+i)%len(peers)].ID, o)
		}
	}
}

// peerVerified reconciles every open state with a newly verified peer: a
// node that (re)joins, or whose partition heals, catches up at once.
func (s *states) peerVerified(p peer.ID) {
	s.mu.Lock()
	open := make([]*openState, 0, len(s.open))
	for _, o := range s.open {
		open = append(open, o)
	}
	s.mu.Unlock()
	for _, o := range open {
		s.n.goLoop(func(ctx context.Context) { s.reconcile(ctx, p, o) })
	}
}
