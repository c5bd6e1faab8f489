package pubsub

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ztmesh/ztmesh/internal/wire"
)

// maxSyncMessage caps a sync message: a few revocation lists, a bundle,
// reference values and the member hashes (44 bytes each in JSON).
const maxSyncMessage = 8 << 20

// Member exchange limits: hashes offered in one sync, and announcements per
// frame of the answer (each at most 32 KiB, so a frame stays under 8 MiB).
const (
	maxSyncMembers  = 100_000
	maxSyncLists    = 64 // revocation lists or quarantine announcements
	membersPerFrame = 200
	syncTimeout     = 30 * time.Second
	// maxWantMessage caps a want list: maxSyncMembers indexes of at most
	// 6 digits and a comma each, and the envelope.
	maxWantMessage = maxSyncMembers*8 + 64
)

// Limits on what one peer may make us do over SyncProtocol (issue 15,
// "memory and CPU through /ztmesh/sync/1.0.0").
const (
	// MaxSyncStreamsPerPeer is how many sync streams one peer may have
	// open to this node at once; a stream over it is reset unread. An
	// honest peer opens one on connect and one per direct push, and
	// pushes to one peer are rarely more than a couple at a time.
	MaxSyncStreamsPerPeer = 4
	// SyncMisbehaveLimit is how many invalid sync streams (a frame over
	// its limit, not strict JSON, or breaking the exchange) one peer may
	// send before this node closes its connections to it. Each one is
	// also counted against the peer's trust (Config.OnMisbehave).
	SyncMisbehaveLimit = 3
)

// syncGuard counts the sync streams each peer has open and the invalid
// ones it sent. Its zero value is ready to use.
type syncGuard struct {
	mu   sync.Mutex
	open map[peer.ID]int
	bad  map[peer.ID]int
}

// enter reserves a stream slot for p, or reports that p has
// MaxSyncStreamsPerPeer open already.
func (g *syncGuard) enter(p peer.ID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.open == nil {
		g.open = map[peer.ID]int{}
	}
	if g.open[p] >= MaxSyncStreamsPerPeer {
		return false
	}
	g.open[p]++
	return true
}

func (g *syncGuard) leave(p peer.ID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.open[p]--; g.open[p] <= 0 {
		delete(g.open, p)
	}
}

// invalid counts an invalid stream from p and reports whether p has now
// reached SyncMisbehaveLimit (its count starts again from zero).
func (g *syncGuard) invalid(p peer.ID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.bad == nil {
		g.bad = map[peer.ID]int{}
	}
	g.bad[p]++
	if g.bad[p] < SyncMisbehaveLimit {
		return false
	}
	delete(g.bad, p)
	return true
}

// errSyncProtocol marks a sync stream that broke the protocol (as opposed
// to one cut by the network or a deadline).
var errSyncProtocol = errors.New("invalid sync data")

// readSync reads one frame of at most limit bytes and decodes it strictly
// into v. A frame over the limit or not strict JSON is errSyncProtocol;
// a stream that ends or times out is not.
func readSync(s network.Stream, v any, limit int) error {
	body, err := wire.ReadFrame(s, limit)
	if errors.Is(err, wire.ErrTooLarge) {
		return fmt.Errorf("%w: %v", errSyncProtocol, err)
	}
	if err != nil {
		return err
	}
	if err := wire.DecodeStrict(body, v); err != nil {
		return fmt.Errorf("%w: %v", errSyncProtocol, err)
	}
	return nil
}

// syncInvalid counts an invalid sync stream against p: in its trust
// (OnMisbehave), and towards SyncMisbehaveLimit, at which this node
// closes its connections to p.
func (m *Mesh) syncInvalid(p peer.ID, err error) {
	m.stats.SyncInvalid.Add(1)
	if m.cfg.OnMisbehave != nil {
		m.cfg.OnMisbehave(p, "invalid sync data")
	}
	if !m.syncGuard.invalid(p) {
		return
	}
	m.stats.SyncDisconnects.Add(1)
	m.log.Warn("peer disconnected after invalid sync data", "event_type", "sync_disconnect", "peer", p.String(),
		"reason", fmt.Sprintf("%d invalid sync streams, the last: %v", SyncMisbehaveLimit, err))
	_ = m.h.Network().ClosePeer(p)
}

// MemberHash identifies a member announcement by its signed parts (the
// credential and the key package), not the addresses a relayer lists.
type MemberHash [32]byte

// HashMember returns the MemberHash of a credential and key package.
func HashMember(credential string, keyPackage []byte) MemberHash {
	h := sha256.New()
	h.Write([]byte(credential))
	h.Write([]byte{0})
	h.Write(keyPackage)
	var sum MemberHash
	h.Sum(sum[:0])
	return sum
}

// MarshalText encodes a MemberHash as base64 (44 bytes in JSON, not an
// array of 32 numbers).
func (h MemberHash) MarshalText() ([]byte, error) {
	return []byte(base64.StdEncoding.EncodeToString(h[:])), nil
}

// UnmarshalText decodes a base64 MemberHash of exactly 32 bytes.
func (h *MemberHash) UnmarshalText(b []byte) error {
	if len(b) != base64.StdEncoding.EncodedLen(len(h)) {
		return fmt.Errorf("member hash of %d characters", len(b))
	}
	n, err := base64.StdEncoding.Decode(h[:], b)
	if err != nil || n != len(h) {
		return fmt.Errorf("member hash: %v", err)
	}
	return nil
}

// syncMessage hands a peer the control content in force here, and the
// hashes of the member announcements held here; the peer asks for those it
// lacks (wantMessage) and gets them in membersMessage frames.
type syncMessage struct {
	V            int          `json:"v"`
	Revocations  [][]byte     `json:"revocations"`
	Bundle       []byte       `json:"bundle,omitempty"`
	Reference    []byte       `json:"reference,omitempty"`
	MemberHashes []MemberHash `json:"member_hashes,omitempty"`
	// Quarantines carries quarantine announcements, in direct pushes only.
	Quarantines [][]byte `json:"quarantines,omitempty"`
}

// wantMessage lists, by index into member_hashes, the announcements the
// receiver of a sync lacks.
type wantMessage struct {
	V    int   `json:"v"`
	Want []int `json:"want"`
}

// membersMessage carries asked-for announcements; the last frame is Done.
type membersMessage struct {
	V       int      `json:"v"`
	Members [][]byte `json:"members"`
	Done    bool     `json:"done"`
}

func (msg *syncMessage) check() error {
	if msg.V != 1 {
		return fmt.Errorf("sync message v%d", msg.V)
	}
	if len(msg.MemberHashes) > maxSyncMembers {
		return fmt.Errorf("sync offers %d members, more than %d", len(msg.MemberHashes), maxSyncMembers)
	}
	if len(msg.Revocations) > maxSyncLists || len(msg.Quarantines) > maxSyncLists {
		return fmt.Errorf("sync of %d revocation lists and %d quarantine announcements, more than %d",
			len(msg.Revocations), len(msg.Quarantines), maxSyncLists)
	}
	return nil
}

func (w *wantMessage) check(offered int) error {
	if w.V != 1 || len(w.Want) > offered {
		return fmt.Errorf("want message v%d for %d of %d members", w.V, len(w.Want), offered)
	}
	for _, i := range w.Want {
		if i < 0 || i >= offered {
			return fmt.Errorf("want index %d of %d members", i, offered)
		}
	}
	return nil
}

func (mm *membersMessage) check() error {
	if mm.V != 1 || len(mm.Members) > membersPerFrame {
		return fmt.Errorf("members frame v%d with %d announcements", mm.V, len(mm.Members))
	}
	return nil
}

// SyncTo hands a newly verified peer what it may have missed: revocation
// lists, policy bundle and reference values, and the member announcements
// it does not hold. Members go by hash first, so a peer that knows most of
// the mesh (the usual case) costs 44 bytes per member, not 3 KB.
func (m *Mesh) SyncTo(ctx context.Context, p peer.ID) error {
	st := m.cfg.Control.ControlState()
	hashes := m.cfg.Directory.MemberHashes(p)
	if len(hashes) > maxSyncMembers {
		hashes = hashes[:maxSyncMembers]
	}
	if len(st.Revocations) == 0 && len(st.Bundle) == 0 && len(st.Reference) == 0 && len(hashes) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	s, err := m.h.NewStream(ctx, p, SyncProtocol)
	if err != nil {
		return err
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(syncTimeout))
	msg := syncMessage{V: 1, Revocations: st.Revocations, Bundle: st.Bundle, Reference: st.Reference, MemberHashes: hashes}
	if err := wire.WriteJSON(s, msg, maxSyncMessage); err != nil || len(hashes) == 0 {
		return err
	}
	var want wantMessage
	if err := wire.ReadJSON(s, &want, maxWantMessage); err != nil {
		return fmt.Errorf("want list: %w", err)
	}
	if err := want.check(len(hashes)); err != nil {
		s.Reset()
		return err
	}
	wanted := make([]MemberHash, len(want.Want))
	for i, j := range want.Want {
		wanted[i] = hashes[j]
	}
	toks := m.cfg.Directory.MemberTokens(wanted)
	for len(toks) > 0 {
		n := min(len(toks), membersPerFrame)
		if err := wire.WriteJSON(s, membersMessage{V: 1, Members: toks[:n]}, maxSyncMessage); err != nil {
			return err
		}
		toks = toks[n:]
	}
	return wire.WriteJSON(s, membersMessage{V: 1, Done: true}, maxSyncMessage)
}

// pushConcurrency bounds the streams a direct push opens at once.
const pushConcurrency = 16

// directPush returns the sync message that carries a revocation list, a
// policy bundle, reference values or a quarantine announcement straight to
// every verified neighbour, and whether typ is one of those.
//
// GossipSub publishes only to the topic mesh (flood publishing stays off:
// it would skip the peer filter), and a neighbour that connected since the
// last heartbeat is in no mesh yet. A node busy verifying a thousand new
// members may also drop control messages from its full validation queue
// (seen at 1,000 simulated nodes: a revocation reached 14 of them). For the
// rare pushes that cut nodes off or change the rules, that is too weak: the
// origin hands them to each verified neighbour over the sync protocol, and
// every node that applies one as new, from GossipSub or from a sync, hands
// it on the same way (relay). Each node relays an item once, when it is
// new to it, so a push costs one stream per connection. A neighbour
// verified after the snapshot gets revocations, bundle and reference values
// in its on-connect sync (quarantine announcements are not held for it).
// Member announcements and evidence are periodic and numerous, and go by
// GossipSub alone; a node that misses the evidence of a compromised member
// still judges it from the quarantine announcement, which carries it.
func directPush(typ string, token []byte) (syncMessage, bool) {
	switch typ {
	case controlRevocations:
		return syncMessage{V: 1, Revocations: [][]byte{token}}, true
	case controlPolicy:
		return syncMessage{V: 1, Bundle: token}, true
	case controlReference:
		return syncMessage{V: 1, Reference: token}, true
	case controlQuarantine:
		return syncMessage{V: 1, Quarantines: [][]byte{token}}, true
	}
	return syncMessage{}, false
}

// relay hands control content newly applied here to the verified
// neighbours other than the one it came from (self for our own).
func (m *Mesh) relay(typ string, token []byte, from peer.ID) {
	if msg, ok := directPush(typ, token); ok {
		m.goLoop(func(ctx context.Context) { m.pushToPeers(ctx, msg, from) })
	}
}

// pushToPeers sends msg to every connected verified member but skip, a few
// at a time.
func (m *Mesh) pushToPeers(ctx context.Context, msg syncMessage, skip peer.ID) {
	sem := make(chan struct{}, pushConcurrency)
	var wg sync.WaitGroup
	for _, p := range m.h.Network().Peers() {
		if p == skip {
			continue
		}
		if mem, ok := m.cfg.Members.Member(p); !ok || mem.Quarantined {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := m.sendSync(ctx, p, msg); err != nil {
				m.log.Debug("direct push failed", "event_type", "push_failed", "peer", p.String(), "reason", err.Error())
			}
		}()
	}
	wg.Wait()
}

// sendSync sends one sync message that offers no members (a direct push).
func (m *Mesh) sendSync(ctx context.Context, p peer.ID, msg syncMessage) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := m.h.NewStream(ctx, p, SyncProtocol)
	if err != nil {
		return err
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	return wire.WriteJSON(s, msg, maxSyncMessage)
}

// handleSync applies what a peer sent. Everything in it is issuer-signed
// and verified by the apply functions; older content is ignored.
func (m *Mesh) handleSync(s network.Stream) {
	from := s.Conn().RemotePeer()
	// At most MaxSyncStreamsPerPeer at once, counted before anything
	// else: even waiting for the member costs a goroutine.
	if !m.syncGuard.enter(from) {
		m.stats.SyncRefused.Add(1)
		s.Reset()
		return
	}
	defer m.syncGuard.leave(from)
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(syncTimeout))
	// Only verified members may make us read (up to 8 MiB, as it arrives).
	if _, ok := m.AwaitMember(from, 5*time.Second); !ok {
		s.Reset()
		return
	}
	var msg syncMessage
	err := readSync(s, &msg, maxSyncMessage)
	if err == nil {
		if err = msg.check(); err != nil {
			err = fmt.Errorf("%w: %v", errSyncProtocol, err)
		}
	}
	if err != nil {
		s.Reset()
		if errors.Is(err, errSyncProtocol) {
			m.syncInvalid(from, err)
		}
		return
	}
	for _, r := range msg.Revocations {
		m.applySynced(from, controlRevocations, r, "revocation list")
	}
	if len(msg.Reference) > 0 {
		m.applySynced(from, controlReference, msg.Reference, "reference values")
	}
	if len(msg.Bundle) > 0 {
		m.applySynced(from, controlPolicy, msg.Bundle, "policy bundle")
	}
	for _, q := range msg.Quarantines {
		m.applySynced(from, controlQuarantine, q, "quarantine announcement")
	}
	if len(msg.MemberHashes) == 0 {
		return
	}
	if err := m.fetchMembers(s, msg.MemberHashes); err != nil {
		m.log.Debug("member sync", "event_type", "sync_failed", "peer", from.String(), "reason", err.Error())
		s.Reset()
		if errors.Is(err, errSyncProtocol) {
			m.syncInvalid(from, err)
		}
	}
}

// applySynced applies one revocation list, bundle, reference values or
// quarantine announcement from a peer's sync, and relays it if it is new
// here.
func (m *Mesh) applySynced(from peer.ID, typ string, token []byte, what string) {
	changed, err := m.applyControl(from, &controlMessage{Type: typ, Token: token})
	switch {
	case err != nil && !isRollback(err):
		m.log.Warn("synced "+what+" refused", "event_type", "sync_refused", "peer", from.String(), "reason", err.Error())
	case changed:
		m.log.Info(what+" synced from peer", "event_type", "sync_applied", "peer", from.String())
		m.relay(typ, token, from)
	}
}

// fetchMembers asks for the offered announcements not held here and
// applies what comes, at most as many as were asked for.
func (m *Mesh) fetchMembers(s network.Stream, offered []MemberHash) error {
	have := map[MemberHash]bool{}
	for _, h := range m.cfg.Directory.MemberHashes("") {
		have[h] = true
	}
	want := wantMessage{V: 1, Want: []int{}}
	for i, h := range offered {
		if !have[h] {
			want.Want = append(want.Want, i)
			have[h] = true // offered twice: ask once
		}
	}
	if err := wire.WriteJSON(s, want, maxWantMessage); err != nil {
		return err
	}
	for got := 0; ; {
		var mm membersMessage
		if err := readSync(s, &mm, maxSyncMessage); err != nil {
			return err
		}
		if err := mm.check(); err != nil {
			return fmt.Errorf("%w: %v", errSyncProtocol, err)
		}
		if got += len(mm.Members); got > len(want.Want) {
			return fmt.Errorf("%w: sent %d announcements, %d were asked for", errSyncProtocol, got, len(want.Want))
		}
		for _, tok := range mm.Members {
			if _, err := m.cfg.Directory.ApplyMember("", tok); err != nil && !isRollback(err) {
				m.log.Debug("synced member announcement refused", "event_type", "sync_refused",
					"peer", s.Conn().RemotePeer().String(), "reason", err.Error())
			}
		}
		if mm.Done {
			return nil
		}
	}
}
