package simulations

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	ps "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/internal/wire"
	"github.com/ztmesh/ztmesh/node"
	"github.com/ztmesh/ztmesh/pubsub"
)

// The attackers' tools: what a hostile peer can do with a libp2p host and
// the public wire formats, written against the protocol descriptions in
// docs/PROTOCOL.md rather than against the node's internals.

// rawHost is a libp2p host on the cluster's network that runs no ztmesh
// code. Its key is Ed25519, so it has a DID like any node.
type rawHost struct {
	id *did.Identity
	h  host.Host
}

func (l *lab) newRawHost() (*rawHost, error) {
	id, err := did.GenerateIdentity(rand.Reader)
	if err != nil {
		return nil, err
	}
	h, err := l.c.addHost(id.LibP2PKey())
	if err != nil {
		return nil, err
	}
	return &rawHost{id: id, h: h}, nil
}

// connect links and dials target; an error means the dial failed.
func (l *lab) connect(ctx context.Context, from host.Host, target host.Host) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if len(l.c.Net.LinksBetweenPeers(from.ID(), target.ID())) == 0 {
		if _, err := l.c.Net.LinkPeers(from.ID(), target.ID()); err != nil {
			return err
		}
	}
	return from.Connect(ctx, peer.AddrInfo{ID: target.ID(), Addrs: target.Addrs()})
}

// presentFrame and resultFrame are the handshake messages of
// /ztmesh/auth/1.0.0 (docs/PROTOCOL.md), as an attacker writes them.
type presentFrame struct {
	V          int    `json:"v"`
	Mesh       string `json:"mesh"`
	Credential string `json:"credential"`
	KeyPackage []byte `json:"key_package"`
}

type resultFrame struct {
	V        int    `json:"v"`
	Accepted bool   `json:"accepted"`
	Reason   string `json:"reason,omitempty"`
}

// present connects to target and presents token in the credential
// handshake; it returns the target's answer.
func (l *lab) present(ctx context.Context, r *rawHost, target host.Host, token string) (*resultFrame, error) {
	if err := l.connect(ctx, r.h, target); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := r.h.NewStream(ctx, target.ID(), node.AuthProtocol)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	kp, err := pubsub.NewKeyPackage(r.id, pubsub.SuiteX25519, time.Now())
	if err != nil {
		return nil, err
	}
	if err := wire.WriteJSON(s, presentFrame{V: 1, Mesh: l.c.cfg.Mesh, Credential: token, KeyPackage: kp}, node.MaxHandshakeMessage); err != nil {
		return nil, err
	}
	var res resultFrame
	if err := wire.ReadJSON(s, &res, node.MaxHandshakeMessage); err != nil {
		return nil, err
	}
	return &res, nil
}

// forgeCredential rewrites a credential signed by signer so that it claims
// claimed as its issuer (header kid, iss and the VC's issuer), and signs it
// again with signer's key: what someone without the issuer's key can make.
func forgeCredential(token string, claimed, signer *did.Identity) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", errors.New("forge: not a compact JWS")
	}
	var header, payload map[string]any
	for i, dst := range []*map[string]any{&header, &payload} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			return "", err
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(dst); err != nil {
			return "", err
		}
	}
	header["kid"] = claimed.DID().KeyID()
	payload["iss"] = claimed.DID().String()
	if vc, ok := payload["vc"].(map[string]any); ok {
		switch iss := vc["issuer"].(type) {
		case map[string]any:
			iss["id"] = claimed.DID().String()
		case string:
			vc["issuer"] = claimed.DID().String()
		}
	}
	h, err := json.Marshal(header)
	if err != nil {
		return "", err
	}
	p, err := json.Marshal(payload)
	if err != nil {
		return "", err
	}
	input := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p)
	sig := ed25519.Sign(ed25519.NewKeyFromSeed(signer.Seed()), []byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// injector writes GossipSub RPCs by hand on its own streams: whatever
// messages it is given, byte for byte, to whichever peer it chooses. It is
// a compromised member of zone 0: GossipSub streams exist only with
// verified members (pubsub/gate.go), so an outsider cannot inject at all,
// and what a member injects must still pass the validator.
type injector struct {
	*rawHost
	token   string // its credential, presented before its first stream to a target
	mu      sync.Mutex
	streams map[peer.ID]network.Stream
}

func (l *lab) newInjector() (*injector, error) {
	r, err := l.newRawHost()
	if err != nil {
		return nil, err
	}
	tok, err := l.c.Issue(r.id, NodeSpec{Zones: []string{l.zones[0]}, Role: "vehicle", Trust: l.sc.Trust}, did.IssueOptions{})
	if err != nil {
		return nil, err
	}
	l.addAttacker(r.id.DID(), "")
	return &injector{rawHost: r, token: tok, streams: map[peer.ID]network.Stream{}}, nil
}

// inject sends msgs to target in one RPC.
func (in *injector) inject(ctx context.Context, l *lab, target host.Host, msgs []*pb.Message) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	s := in.streams[target.ID()]
	if s == nil {
		res, err := l.present(ctx, in.rawHost, target, in.token)
		if err != nil {
			return err
		}
		if !res.Accepted {
			return fmt.Errorf("handshake refused: %s", res.Reason)
		}
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if s, err = in.h.NewStream(ctx, target.ID(), ps.GossipSubID_v11); err != nil {
			return err
		}
		in.streams[target.ID()] = s
	}
	data, err := proto.Marshal(&pb.RPC{Publish: msgs})
	if err != nil {
		return err
	}
	_ = s.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := s.Write(append(binary.AppendUvarint(nil, uint64(len(data))), data...)); err != nil {
		s.Reset()
		delete(in.streams, target.ID())
		return err
	}
	return nil
}

func (in *injector) close() {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, s := range in.streams {
		s.Close()
	}
	in.h.Close()
}

// signGossip signs a GossipSub message as GossipSub's strict signing does,
// with key as the origin's.
func signGossip(key crypto.PrivKey, m *pb.Message) error {
	m.Signature, m.Key = nil, nil
	b, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	m.Signature, err = key.Sign(append([]byte("libp2p-pubsub:"), b...))
	return err
}

// spy is a credentialed member of a zone whose node is compromised: it
// joins the zone's topic at the GossipSub level, beside ztmesh, and keeps
// the raw signed messages it receives (ciphertext, which it can still
// replay or tamper with).
type spy struct {
	m      *Member
	mu     sync.Mutex
	recent []captured // newest last, bounded
	hist   []captured // one every histEvery, for replays beyond the seen-cache window
	byFrom map[peer.ID]captured
}

type captured struct {
	at  time.Time
	msg *pb.Message
}

const (
	spyRecent = 512
	spyHist   = 1024
	histEvery = 500 * time.Millisecond
)

func (l *lab) newSpy(ctx context.Context, zone string) (*spy, error) {
	m, err := l.startAttacker(ctx, "apparatus", NodeSpec{Zones: []string{zone}, Role: "vehicle", Trust: l.sc.Trust}, nil, nil)
	if err != nil {
		return nil, err
	}
	t, err := pubsub.ZoneTopic(l.c.cfg.Mesh, zone, attackChannel)
	if err != nil {
		return nil, err
	}
	tp, err := m.Mesh().PubSub().Join(t.String())
	if err != nil {
		return nil, err
	}
	sub, err := tp.Subscribe()
	if err != nil {
		return nil, err
	}
	s := &spy{m: m, byFrom: map[peer.ID]captured{}}
	go func() {
		for {
			msg, err := sub.Next(ctx)
			if err != nil {
				return
			}
			if msg.ReceivedFrom == m.Host().ID() {
				continue
			}
			c := captured{at: time.Now(), msg: proto.CloneOf(msg.Message)}
			s.mu.Lock()
			s.byFrom[msg.GetFrom()] = c
			if l.isHonest(msg.GetFrom()) {
				if len(s.hist) == 0 || c.at.Sub(s.hist[len(s.hist)-1].at) >= histEvery {
					s.hist = append(s.hist, c)
					if len(s.hist) > spyHist {
						s.hist = s.hist[len(s.hist)-spyHist/2:]
					}
				}
				s.recent = append(s.recent, c)
				if len(s.recent) > spyRecent {
					s.recent = s.recent[len(s.recent)-spyRecent/2:]
				}
			}
			s.mu.Unlock()
		}
	}()
	return s, nil
}

// since returns captured honest messages no older than d.
func (s *spy) since(d time.Duration) []captured {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []captured
	for _, c := range s.recent {
		if time.Since(c.at) <= d {
			out = append(out, c)
		}
	}
	return out
}

func (s *spy) history() []captured {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]captured(nil), s.hist...)
}

func (s *spy) from(p peer.ID) (captured, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.byFrom[p]
	return c, ok
}

// keyRequest and keyResponse are /ztmesh/keys/1.0.0's messages
// (docs/PROTOCOL.md).
type keyRequest struct {
	V     int    `json:"v"`
	Topic string `json:"topic"`
	KeyID []byte `json:"key_id"`
}

type keyResponse struct {
	V      int    `json:"v"`
	OK     bool   `json:"ok"`
	Reason string `json:"reason,omitempty"`
	Sealed []byte `json:"sealed,omitempty"`
}

// requestKey asks origin for one of its sender keys, from h.
func (l *lab) requestKey(ctx context.Context, h host.Host, origin host.Host, topic string, keyID []byte) (*keyResponse, error) {
	if err := l.connect(ctx, h, origin); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := h.NewStream(ctx, origin.ID(), pubsub.KeyProtocol)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	if err := wire.WriteJSON(s, keyRequest{V: 1, Topic: topic, KeyID: keyID}, 8<<10); err != nil {
		return nil, err
	}
	var resp keyResponse
	if err := wire.ReadJSON(s, &resp, 8<<10); err != nil {
		return nil, err
	}
	return &resp, nil
}

// envelopeKeyID is the sender key ID in a sealed envelope's header
// (version, kind, key ID: docs/PROTOCOL.md).
func envelopeKeyID(data []byte) ([]byte, bool) {
	if len(data) < 26 {
		return nil, false
	}
	return bytes.Clone(data[2:10]), true
}

// envelopeHeader is the size of a sealed envelope's header: the first
// byte after it is the first byte of ciphertext.
const envelopeHeader = 26

// atkEvents records the nodes' security events (handshake refusals, drops,
// quarantines, refused key requests) from their logs, to say what stopped
// each attack, as the victims saw it. It passes every record on to next.
type atkEvents struct {
	mu   sync.Mutex
	list []atkEvent
}

type atkEvent struct {
	at                             time.Time
	node, typ, reason, peer, didOf string
}

var atkSecurityEvents = map[string]bool{
	"handshake_refused": true, "peer_dropped": true, "connection_refused": true, "peer_quarantined": true,
	"key_request_refused": true, "control_refused": true, "rate_limited": true, "revocations_applied": true,
	"sync_disconnect": true, "state_chunk_refused": true, "state_entry_refused": true,
}

type atkLogHandler struct {
	ev    *atkEvents
	next  slog.Handler
	attrs []slog.Attr
}

func (h *atkLogHandler) Enabled(ctx context.Context, lv slog.Level) bool { return lv >= slog.LevelInfo }

func (h *atkLogHandler) Handle(ctx context.Context, r slog.Record) error {
	var e atkEvent
	set := func(a slog.Attr) {
		switch a.Key {
		case "node_id":
			e.node = a.Value.String()
		case "event_type":
			e.typ = a.Value.String()
		case "reason":
			e.reason = a.Value.String()
		case "peer":
			e.peer = a.Value.String()
		case "did":
			e.didOf = a.Value.String()
		}
	}
	for _, a := range h.attrs {
		set(a)
	}
	r.Attrs(func(a slog.Attr) bool { set(a); return true })
	if atkSecurityEvents[e.typ] {
		e.at = r.Time
		h.ev.mu.Lock()
		h.ev.list = append(h.ev.list, e)
		h.ev.mu.Unlock()
	}
	if h.next != nil && h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func (h *atkLogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	n := &atkLogHandler{ev: h.ev, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
	if h.next != nil {
		n.next = h.next.WithAttrs(as)
	}
	return n
}

func (h *atkLogHandler) WithGroup(name string) slog.Handler {
	n := &atkLogHandler{ev: h.ev, attrs: h.attrs}
	if h.next != nil {
		n.next = h.next.WithGroup(name)
	}
	return n
}

// about returns the events honest nodes logged about any of the attacker's
// peer IDs or DIDs since t, counted by "type: reason".
func (ev *atkEvents) about(l *lab, who map[string]bool, since time.Time) map[string]int {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	out := map[string]int{}
	for _, e := range ev.list {
		if e.at.Before(since) || !l.honestDIDs[e.node] || !(who[e.peer] || who[e.didOf]) {
			continue
		}
		out[e.typ+": "+e.reason]++
	}
	return out
}

// summarize writes counts as "a ×3, b ×1", most frequent first.
func summarize[N int | uint64](counts map[string]N) string {
	type kv struct {
		k string
		v N
	}
	var all []kv
	for k, v := range counts {
		if v > 0 {
			all = append(all, kv{k, v})
		}
	}
	if len(all) == 0 {
		return ""
	}
	for i := range all {
		for j := i + 1; j < len(all); j++ {
			if all[j].v > all[i].v || (all[j].v == all[i].v && all[j].k < all[i].k) {
				all[i], all[j] = all[j], all[i]
			}
		}
	}
	parts := make([]string, len(all))
	for i, x := range all {
		parts[i] = fmt.Sprintf("%s ×%d", x.k, x.v)
	}
	return strings.Join(parts, ", ")
}
