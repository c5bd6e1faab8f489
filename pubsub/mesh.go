package pubsub

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	ps "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/policy"
)

// Member is a verified peer as the node knows it.
type Member struct {
	Credential  *did.Credential
	KeyPackage  *KeyPackage // nil if the peer presented none
	TrustScore  float64     // effective trust (the credential's, adjusted locally)
	Attested    bool
	Quarantined bool
	// RateLimit, if set, replaces Config.RateLimit for the zone messages
	// this member originates.
	RateLimit RateLimit
}

// Members gives the mesh the node's verified peers.
type Members interface {
	// Member returns the verified member behind a connected peer.
	Member(p peer.ID) (Member, bool)
	// StandingVersion changes, after the change is visible through
	// Member, whenever p's standing changes for a reason other than the
	// passage of time: verified or gone, renewed, revoked, quarantined or
	// released, new evidence, a rejected message, a rate-limit violation.
	// The mesh's memo of scores (Config.AppScoreTTL) keys on it.
	StandingVersion(p peer.ID) uint64
}

// Control applies the issuer-signed and node-signed content of the
// control topic. Apply* return changed=false (and no error) for content
// already in force, and an error wrapping ErrStale (or did.ErrRollback /
// policy.ErrRollback) for older content.
type Control interface {
	ApplyRevocations(token []byte) (changed bool, err error)
	ApplyPolicyBundle(token []byte) (changed bool, err error)
	// ApplyReference applies issuer-signed attestation reference values.
	ApplyReference(token []byte) (changed bool, err error)
	// ApplyEvidence applies a node's signed attestation evidence; origin is
	// the author GossipSub authenticated, which must be its subject.
	ApplyEvidence(origin peer.ID, token []byte) (changed bool, err error)
	// ApplyQuarantine judges a signed quarantine announcement: the
	// accused's own evidence, which the node checks against its own
	// reference values. An announcement that does not justify a quarantine
	// here is refused with an error wrapping ErrIgnored (or ErrStale).
	ApplyQuarantine(token []byte) (changed bool, err error)
	// ControlState returns the issuer-signed content in force, to hand to
	// late joiners.
	ControlState() ControlState
}

// Directory holds the member announcements of the members a node shares a
// zone with, whether it is connected to them or not.
type Directory interface {
	// ApplyMember applies a member announcement: a credential and a key
	// package, both self-authenticating, so that members this node is not
	// connected to can be verified as message origins and key requesters.
	// zone is the zone whose member topic carried it, "" for the control
	// topic or a sync. A member that shares no zone with the node is
	// refused with an error wrapping ErrIgnored.
	ApplyMember(zone string, token []byte) (changed bool, err error)
	// MemberHashes lists the member announcements this node can hand on to
	// peer to (those of members sharing a zone with it), or, for the empty
	// ID, all it holds: its directory, its verified peers and itself.
	MemberHashes(to peer.ID) []MemberHash
	// MemberTokens returns the announcements with these hashes that this
	// node can hand on.
	MemberTokens(want []MemberHash) [][]byte
}

// ControlState is what a node hands a newly verified peer.
type ControlState struct {
	Revocations [][]byte
	Bundle      []byte
	Reference   []byte
}

// ErrStale marks control content older than what is in force: ignored, not
// held against the sender.
var ErrStale = errors.New("stale control content")

// ErrIgnored marks control content that is authentic but that this node
// does not act on, for reasons of its own (a quarantine announcement whose
// evidence passes against the reference values in force here): Ignored,
// not held against the sender, who may judge differently.
var ErrIgnored = errors.New("control content not acted on")

// ErrJudgedHere marks authentic control content that this node refuses by
// its own clock or lists (evidence from too far in the future here, say):
// Ignored when a relay forwarded it, which judged it by its own; Rejected
// when its origin sent it itself. Credentials expired, not yet valid or
// revoked (the did errors) and expired key packages count as such without
// it.
var ErrJudgedHere = errors.New("control content refused by this node's clock or lists")

// Config holds a Mesh's dependencies and settings. Zero settings take the
// defaults noted.
type Config struct {
	Mesh       string
	Identity   *did.Identity
	Credential func() *did.Credential // the node's own current credential
	Policy     *policy.Engine
	Members    Members
	Control    Control
	Directory  Directory
	Logger     *slog.Logger
	Now        func() time.Time

	// MaxSkew is how far a message's time may be from ours (default 2m).
	// Older messages are rejected as stale, whatever GossipSub remembers.
	MaxSkew time.Duration
	// RotateEvery is the sender key lifetime (default 10m).
	RotateEvery time.Duration
	// Suite is the KEM for sealing sender keys (default SuiteHybrid).
	Suite string
	// SeenTTL is GossipSub's seen-cache lifetime (default GossipSub's, 2m).
	SeenTTL time.Duration
	// KeyFetchTimeout bounds pulling a sender key, dialing the origin if need be (default 5s).
	KeyFetchTimeout time.Duration
	// KeyConnGrace is how long a connection opened only to fetch a sender
	// key stays before it is closed, if GossipSub has not grafted the peer
	// by then (default 5s; negative keeps such connections open).
	KeyConnGrace time.Duration
	// OnReject, if set, is told about every zone message refused that the
	// peer which handed it over is to blame for: its origin, sending an
	// invalid message itself (for the node's trust scores). GossipSub is
	// told Reject for it only when no honest relay could have forwarded the
	// same message (validate.go).
	OnReject func(forwarder peer.ID, reason string)
	// OnMisbehave, if set, is told about misbehaviour this node can pin on
	// p itself, whoever forwarded it: an origin's authentic message that
	// is invalid in a way only its origin could cause, invalid data p sent
	// us on a stream. The node counts it against p's trust.
	OnMisbehave func(p peer.ID, reason string)
	// AttestInterval is how often members broadcast their evidence
	// (default 60s, as node.Config's). Each origin may publish
	// evidencePerInterval evidence messages per AttestInterval on the
	// control topic, in bursts of evidenceBurst (ratelimit.go).
	AttestInterval time.Duration
	// RateLimit bounds each origin's messages on each zone topic (default
	// DefaultRatePerSecond, bursts of DefaultRateBurst; a member's own
	// Member.RateLimit takes precedence). Messages over it are Ignored and
	// counted in Stats.RateLimited.
	RateLimit RateLimit
	// AppScoreTTL is how long GossipSub's application-specific score of a
	// peer (its standing from Members) is reused while the peer's
	// Members.StandingVersion stays the same. The default, 0, asks Members
	// every time; with a TTL only the passage of time (decaying penalties,
	// evidence growing stale) goes unnoticed for up to this long.
	AppScoreTTL time.Duration
}

// Protocol IDs of the mesh's own streams.
const (
	KeyProtocol  protocol.ID = "/ztmesh/keys/1.0.0"
	SyncProtocol protocol.ID = "/ztmesh/sync/1.0.0"
)

// ErrDenied wraps a policy refusal of the node's own publish or subscribe;
// it is policy.ErrDenied.
var ErrDenied = policy.ErrDenied

// Mesh is a node's zone messaging.
type Mesh struct {
	cfg  Config
	h    host.Host
	ps   *ps.PubSub
	log  *slog.Logger
	self peer.ID
	km   *keyMaterial
	seq  atomic.Uint64

	joinMu  sync.Mutex // serializes join; never held with mu
	mu      sync.RWMutex
	joined  map[string]*joinedTopic
	own     map[string]*senderKey    // current sender key per topic
	retired map[KeyID]retiredKey     // previous own keys, still served for in-flight messages
	recv    map[recvKeyID]*recvState // keys of other senders
	fetches map[recvKeyID]*fetchCall // key pulls in flight
	// equivocated holds the keys whose origin sealed us a key that their
	// ID does not name, and when: refused without another pull.
	equivocated map[recvKeyID]time.Time
	control     *ps.Subscription

	// memberTopics holds the joined member topic of each of the node's
	// zones (members.go).
	memberMu     sync.Mutex
	memberTopics map[string]*ps.Topic

	stats  Stats
	limits limiter
	// The control and member topics' limits (ratelimit.go).
	ctlLimits limiter
	ctlSeen   ctlWindows
	ctlFloods floodLog
	syncGuard syncGuard // sync streams per peer (sync.go)
	localPub  sync.Map  // seq -> *Delivery of our publication being validated
	scores    atomic.Pointer[map[peer.ID]float64]
	memo      scoreMemo // of appScore

	tracer         *meshTracer  // which peers are in our topic meshes
	keyConnsClosed atomic.Int64 // connections opened for a key fetch and closed again

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// loopMu orders goLoop against Close: relays start goroutines from
	// validators and stream handlers, which may still run while closing.
	loopMu sync.Mutex
	closed bool
}

type joinedTopic struct {
	topic Topic
	t     *ps.Topic
}

type retiredKey struct {
	key     *senderKey
	expires time.Time
}

type recvKeyID struct {
	origin peer.ID
	id     KeyID
}

type recvState struct {
	mu       sync.Mutex
	key      *senderKey
	win      replayWindow
	lastUsed time.Time
}

type fetchCall struct {
	done chan struct{}
	key  *senderKey
	err  error
}

// Stats counts the mesh's traffic. Read it with Mesh.Stats.
type Stats struct {
	Published    atomic.Uint64
	Delivered    atomic.Uint64
	KeyRotations atomic.Uint64
	// SyncRefused counts sync streams reset unread because their peer had
	// MaxSyncStreamsPerPeer open; SyncInvalid, sync streams that broke the
	// protocol; SyncDisconnects, peers disconnected for reaching
	// SyncMisbehaveLimit of those.
	SyncRefused     atomic.Uint64
	SyncInvalid     atomic.Uint64
	SyncDisconnects atomic.Uint64
	rejected        sync.Map // reason -> *atomic.Uint64
	rateLimited     sync.Map // origin peer.ID -> *atomic.Uint64
}

// Rejected returns the count of rejected messages per reason.
func (s *Stats) Rejected() map[string]uint64 {
	out := map[string]uint64{}
	s.rejected.Range(func(k, v any) bool { out[k.(string)] = v.(*atomic.Uint64).Load(); return true })
	return out
}

func (s *Stats) reject(reason string) {
	v, _ := s.rejected.LoadOrStore(reason, new(atomic.Uint64))
	v.(*atomic.Uint64).Add(1)
}

// New starts zone messaging on h: GossipSub with strict signing, the peer
// filter, the key and sync protocols and the control topic.
func New(ctx context.Context, h host.Host, cfg Config) (*Mesh, error) {
	if cfg.Identity == nil || cfg.Credential == nil || cfg.Policy == nil || cfg.Members == nil || cfg.Control == nil || cfg.Directory == nil {
		return nil, errors.New("pubsub: Identity, Credential, Policy, Members, Control and Directory are required")
	}
	if !validSegment(cfg.Mesh) {
		return nil, fmt.Errorf("pubsub: mesh name %q", cfg.Mesh)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	if cfg.MaxSkew == 0 {
		cfg.MaxSkew = 2 * time.Minute
	}
	if cfg.RotateEvery == 0 {
		cfg.RotateEvery = 10 * time.Minute
	}
	if cfg.Suite == "" {
		cfg.Suite = SuiteHybrid
	}
	if cfg.KeyFetchTimeout == 0 {
		cfg.KeyFetchTimeout = 5 * time.Second
	}
	if cfg.AttestInterval <= 0 {
		cfg.AttestInterval = time.Minute
	}
	if cfg.KeyConnGrace == 0 {
		cfg.KeyConnGrace = 5 * time.Second
	}
	cfg.RateLimit = cfg.RateLimit.WithDefaults()
	km, err := newKeyMaterial(cfg.Identity, cfg.Suite, cfg.Now())
	if err != nil {
		return nil, err
	}
	m := &Mesh{
		cfg: cfg, h: h, log: cfg.Logger, self: h.ID(), km: km,
		joined: map[string]*joinedTopic{}, own: map[string]*senderKey{}, retired: map[KeyID]retiredKey{},
		recv: map[recvKeyID]*recvState{}, fetches: map[recvKeyID]*fetchCall{}, equivocated: map[recvKeyID]time.Time{},
		tracer: newMeshTracer(),
	}
	m.ctx, m.cancel = context.WithCancel(ctx)

	// Only this mesh's topics are tracked, at most 256 per RPC.
	subFilter := ps.WrapLimitSubscriptionFilter(
		ps.NewRegexpSubscriptionFilter(regexp.MustCompile(`^ztmesh/`+regexp.QuoteMeta(cfg.Mesh)+`/(control|zone/[a-z0-9_-]+/[a-z0-9_-]+)$`)), 256)
	opts := []ps.Option{
		ps.WithMessageSignaturePolicy(ps.StrictSign),
		ps.WithPeerFilter(m.filter),
		// Flood publishing sends to every subscribed peer without asking the
		// peer filter, and floodsub peers likewise: both off.
		ps.WithFloodPublish(false),
		ps.WithGossipSubProtocols([]protocol.ID{ps.GossipSubID_v13, ps.GossipSubID_v12, ps.GossipSubID_v11}, ps.GossipSubDefaultFeatures),
		ps.WithSubscriptionFilter(subFilter),
		ps.WithRawTracer(m.tracer),
		ps.WithMaxMessageSize(MaxMessageSize + 4<<10),
		ps.WithPeerScore(peerScoreParams(m.appScore)),
		// The plain inspection: the extended one builds a snapshot of
		// every topic of every peer each second and asks appScore twice
		// per peer, 3% of a loaded 1,000-node fleet's CPU for a score
		// alone. Each call hands over a new map.
		ps.WithPeerScoreInspect(ps.PeerScoreInspectFn(func(scores map[peer.ID]float64) {
			m.scores.Store(&scores)
		}), time.Second),
	}
	if cfg.SeenTTL > 0 {
		opts = append(opts, ps.WithSeenMessagesTTL(cfg.SeenTTL))
	}
	if m.ps, err = ps.NewGossipSub(m.ctx, gatedHost{h, m}, opts...); err != nil {
		m.cancel()
		return nil, fmt.Errorf("gossipsub: %w", err)
	}
	h.SetStreamHandler(KeyProtocol, m.handleKeyRequest)
	h.SetStreamHandler(SyncProtocol, m.handleSync)

	ct, err := m.join(ControlTopic(cfg.Mesh))
	if err != nil {
		m.Close()
		return nil, err
	}
	if m.control, err = ct.Subscribe(); err != nil {
		m.Close()
		return nil, err
	}
	m.goLoop(m.drainControl)
	m.goLoop(m.rotateLoop)
	if err := m.joinMembers(); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// Close stops the mesh and waits for its goroutines.
func (m *Mesh) Close() error {
	m.loopMu.Lock()
	m.closed = true
	m.loopMu.Unlock()
	m.cancel()
	m.h.RemoveStreamHandler(KeyProtocol)
	m.h.RemoveStreamHandler(SyncProtocol)
	if m.control != nil {
		m.control.Cancel()
	}
	m.wg.Wait()
	return nil
}

// goLoop runs f until the mesh closes; after Close it does nothing.
func (m *Mesh) goLoop(f func(ctx context.Context)) {
	m.loopMu.Lock()
	defer m.loopMu.Unlock()
	if m.closed {
		return
	}
	m.wg.Add(1)
	go func() { defer m.wg.Done(); f(m.ctx) }()
}

// KeyPackage returns the node's signed key package, to present in the handshake.
func (m *Mesh) KeyPackage() []byte { return m.km.enc }

// Scores returns GossipSub's score of each peer, refreshed every second.
func (m *Mesh) Scores() map[peer.ID]float64 {
	if s := m.scores.Load(); s != nil {
		return *s
	}
	return nil
}

// Stats returns the mesh's counters.
func (m *Mesh) Stats() *Stats { return &m.stats }

// PubSub returns the underlying GossipSub instance.
func (m *Mesh) PubSub() *ps.PubSub { return m.ps }

// join joins a topic once, with its validator. m.mu is never held while
// calling into GossipSub: its event loop calls our peer filter, which reads
// m.joined, so holding m.mu across Join would deadlock.
func (m *Mesh) join(t Topic) (*ps.Topic, error) {
	name := t.String()
	m.joinMu.Lock()
	defer m.joinMu.Unlock()
	m.mu.RLock()
	j, ok := m.joined[name]
	m.mu.RUnlock()
	if ok {
		return j.t, nil
	}
	val := m.validateZone
	switch {
	case t.IsControl():
		val = m.validateControl
	case t.IsMembers():
		val = m.validateMembers
	}
	if err := m.ps.RegisterTopicValidator(name, val, ps.WithValidatorTimeout(m.cfg.KeyFetchTimeout+time.Second)); err != nil {
		return nil, fmt.Errorf("validator for %s: %w", name, err)
	}
	pt, err := m.ps.Join(name)
	if err != nil {
		m.ps.UnregisterTopicValidator(name)
		return nil, fmt.Errorf("join %s: %w", name, err)
	}
	if err := pt.SetScoreParams(topicScoreParams()); err != nil {
		pt.Close()
		m.ps.UnregisterTopicValidator(name)
		return nil, fmt.Errorf("score parameters for %s: %w", name, err)
	}
	m.mu.Lock()
	m.joined[name] = &joinedTopic{topic: t, t: pt}
	m.mu.Unlock()
	return pt, nil
}

// topicOf parses a topic name, from the joined set when possible.
func (m *Mesh) topicOf(name string) (Topic, bool) {
	m.mu.RLock()
	j, ok := m.joined[name]
	m.mu.RUnlock()
	if ok {
		return j.topic, true
	}
	t, err := ParseTopic(name)
	if err != nil || t.Mesh != m.cfg.Mesh {
		return Topic{}, false
	}
	return t, true
}

// filter is GossipSub's peer filter: a peer is a subscriber of a topic only
// while it is a verified, unquarantined member allowed by the policy.
func (m *Mesh) filter(p peer.ID, name string) bool {
	t, ok := m.topicOf(name)
	if !ok {
		return false
	}
	mem, ok := m.cfg.Members.Member(p)
	if !ok || mem.Quarantined {
		return false
	}
	switch {
	case t.IsControl():
		return true
	case t.IsMembers():
		// Announcements are public; the topic only keeps them among the
		// zone's members.
		return mem.Credential.Claims.InZone(t.Zone)
	}
	return m.decide(policy.ActionSubscribe, t, mem.Subject()).Allow
}

// AwaitMember returns the verified member behind p, waiting up to max while
// p is connected: the two sides of a connection verify each other
// concurrently, so a peer that verified us may ask for something (a key, a
// sync, state) before our side of its handshake has finished.
//
// It polls with a growing interval (5 ms doubling to 200 ms): a handshake
// usually ends within milliseconds, and every GossipSub stream of every
// new connection waits here (gate.go), so a fixed short interval cost
// thousands of lookups a second while a large mesh was connecting.
func (m *Mesh) AwaitMember(p peer.ID, max time.Duration) (Member, bool) {
	deadline := time.Now().Add(max)
	wait := 5 * time.Millisecond
	for {
		mem, ok := m.cfg.Members.Member(p)
		if ok || time.Now().After(deadline) || m.h.Network().Connectedness(p) != network.Connected {
			return mem, ok
		}
		time.Sleep(wait)
		wait = min(2*wait, 200*time.Millisecond)
	}
}

// Allowed reports whether the policy lets a member take action on a topic.
func (m *Mesh) Allowed(a policy.Action, t Topic, mem Member) bool {
	if mem.Quarantined {
		return false
	}
	return m.decide(a, t, mem.Subject()).Allow
}

// Subject is the member as the policy sees it: its credential's claims
// with this node's view of its trust, attestation and quarantine.
func (mem Member) Subject() policy.Subject {
	s := policy.SubjectOf(mem.Credential)
	s.TrustScore, s.Attested, s.Quarantined = mem.TrustScore, mem.Attested, mem.Quarantined
	return s
}

func (m *Mesh) ownSubject() policy.Subject {
	c := m.cfg.Credential()
	return policy.SubjectOf(c)
}

func (m *Mesh) decide(a policy.Action, t Topic, s policy.Subject) policy.Decision {
	in := policy.Input{Action: a, Mesh: t.Mesh, Zone: t.Zone, Channel: t.Channel, Topic: t.String(), Subject: s, Now: m.cfg.Now()}
	return m.cfg.Policy.Decide(m.ctx, &in)
}

// Published describes a message this node published.
type Published struct {
	Topic string
	Seq   uint64
	Time  time.Time
}

// Publish seals data for a zone channel and publishes it, if the policy
// lets the node's own credential publish there.
func (m *Mesh) Publish(ctx context.Context, zone, channel string, data []byte) (*Published, error) {
	t, err := ZoneTopic(m.cfg.Mesh, zone, channel)
	if err != nil {
		return nil, err
	}
	if d := m.decide(policy.ActionPublish, t, m.ownSubject()); !d.Allow {
		return nil, fmt.Errorf("%w: publish on %s: %s", ErrDenied, t, strings.Join(d.Reasons, "; "))
	}
	pt, err := m.join(t)
	if err != nil {
		return nil, err
	}
	m.readMembers(t.Zone)
	k, err := m.ownKey(t.String())
	if err != nil {
		return nil, err
	}
	seq, now := m.seq.Add(1), m.cfg.Now()
	env, err := sealEnvelope(k, t.String(), m.self, seq, now, data)
	if err != nil {
		return nil, err
	}
	// GossipSub validates our own publication synchronously; hand the
	// validator what it would otherwise decide and decrypt again.
	m.localPub.Store(seq, &Delivery{Origin: m.cfg.Identity.DID(), Zone: t.Zone, Channel: t.Channel, Seq: seq, Time: now, Data: data})
	err = pt.Publish(ctx, env)
	m.localPub.Delete(seq)
	if err != nil {
		return nil, fmt.Errorf("publish on %s: %w", t, err)
	}
	m.stats.Published.Add(1)
	return &Published{Topic: t.String(), Seq: seq, Time: now}, nil
}

// Delivery is a verified, opened zone message.
type Delivery struct {
	Origin  did.DID
	Zone    string
	Channel string
	Seq     uint64
	Time    time.Time
	Data    []byte
}

// Subscription streams a zone channel's messages.
type Subscription struct {
	sub *ps.Subscription
	m   *Mesh
}

// Subscribe subscribes to a zone channel, if the policy lets the node's own
// credential subscribe there.
func (m *Mesh) Subscribe(zone, channel string) (*Subscription, error) {
	t, err := ZoneTopic(m.cfg.Mesh, zone, channel)
	if err != nil {
		return nil, err
	}
	if d := m.decide(policy.ActionSubscribe, t, m.ownSubject()); !d.Allow {
		return nil, fmt.Errorf("%w: subscribe to %s: %s", ErrDenied, t, strings.Join(d.Reasons, "; "))
	}
	pt, err := m.join(t)
	if err != nil {
		return nil, err
	}
	m.readMembers(t.Zone)
	sub, err := pt.Subscribe()
	if err != nil {
		return nil, err
	}
	return &Subscription{sub: sub, m: m}, nil
}

// Next returns the next message; only validated messages arrive here.
func (s *Subscription) Next(ctx context.Context) (*Delivery, error) {
	msg, err := s.sub.Next(ctx)
	if err != nil {
		return nil, err
	}
	d, ok := msg.ValidatorData.(*Delivery)
	if !ok {
		return nil, errors.New("pubsub: message without validated data") // cannot happen: every topic has our validator
	}
	s.m.stats.Delivered.Add(1)
	return d, nil
}

// Cancel ends the subscription.
func (s *Subscription) Cancel() { s.sub.Cancel() }

// drainControl reads the control topic; content is applied in the validator.
func (m *Mesh) drainControl(ctx context.Context) {
	for {
		if _, err := m.control.Next(ctx); err != nil {
			return
		}
	}
}

// Disallowed reports whether p is subscribed to one of our topics that it is
// no longer allowed in (its credential, state or the policy changed). GossipSub
// asks the peer filter when it picks peers, but keeps a peer already in a
// topic mesh; the node disconnects such a peer so it rejoins under the new
// rules.
func (m *Mesh) Disallowed(p peer.ID) bool {
	m.mu.RLock()
	names := make([]string, 0, len(m.joined))
	for name := range m.joined {
		names = append(names, name)
	}
	m.mu.RUnlock()
	for _, name := range names {
		for _, q := range m.ps.ListPeers(name) {
			if q == p && !m.filter(p, name) {
				return true
			}
		}
	}
	return false
}

// Blacklist makes GossipSub drop a peer and ignore it from now on (a revoked DID).
func (m *Mesh) Blacklist(p peer.ID) { m.ps.BlacklistPeer(p) }
