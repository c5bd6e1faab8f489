package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/internal/wire"
	"github.com/ztmesh/ztmesh/pubsub"
)

// The member directory: members this node has not verified over a direct
// connection, learned from their announcements on the control topic and
// from peers' sync. An announcement carries the member's credential (signed
// by a pinned issuer, subject = the member) and key package (signed by the
// member), so it authenticates itself whoever relays it. With it a node can
// accept zone messages and state written by members it is not connected
// to, and answer their key requests; their sender keys it pulls by dialing
// them (the addresses come with the announcement; the dial runs the usual
// handshake).

const (
	maxAnnouncement  = 32 << 10
	announceInterval = 2 * time.Minute
)

type announcement struct {
	V          int      `json:"v"`
	Credential string   `json:"credential"`
	KeyPackage []byte   `json:"key_package"`
	Addrs      []string `json:"addrs"`
}

type dirEntry struct {
	cred *did.Credential
	kp   *pubsub.KeyPackage
	raw  []byte
}

// announcementToken is this node's own announcement.
func (n *Node) announcementToken() ([]byte, error) {
	return json.Marshal(announcement{V: 1, Credential: n.cred.Load().Raw, KeyPackage: n.mesh.KeyPackage(),
		Addrs: multiaddrStrings(n.host.Addrs())})
}

// ApplyMember implements pubsub.ControlHandler.
func (n *Node) ApplyMember(token []byte) (bool, error) {
	if len(token) > maxAnnouncement {
		return false, fmt.Errorf("member announcement of %d bytes", len(token))
	}
	var a announcement
	if err := wire.DecodeStrict(token, &a); err != nil || a.V != 1 {
		return false, fmt.Errorf("malformed member announcement: %v", err)
	}
	// Every new peer's sync repeats the announcements this node already
	// holds; verifying each again made joining a mesh of N members cost
	// O(N) credential verifications per connection. The cache is keyed by
	// the signed parts only: relayers list different addresses.
	h := sha256.New()
	h.Write([]byte(a.Credential))
	h.Write([]byte{0})
	h.Write(a.KeyPackage)
	var sum [32]byte
	h.Sum(sum[:0])
	n.dirMu.Lock()
	seen := n.dirSeen[sum]
	n.dirMu.Unlock()
	if seen {
		return false, fmt.Errorf("%w: announcement already held", pubsub.ErrStale)
	}
	c, err := did.Inspect([]byte(a.Credential))
	if err != nil {
		return false, err
	}
	holder := c.Subject
	if holder == n.id.DID() {
		return false, fmt.Errorf("%w: our own announcement", pubsub.ErrStale)
	}
	cred, err := n.verifier.VerifyHolder([]byte(a.Credential), holder, n.now())
	if err != nil {
		return false, err
	}
	kp, err := pubsub.ParseKeyPackage(a.KeyPackage, holder, n.now())
	if err != nil {
		return false, err
	}
	p, err := holder.PeerID()
	if err != nil {
		return false, err
	}
	n.dirMu.Lock()
	old, had := n.directory[p]
	same := had && old.cred.ID == cred.ID && bytes.Equal(old.kp.Public, kp.Public)
	if !same {
		n.directory[p] = dirEntry{cred: cred, kp: kp, raw: append([]byte(nil), token...)}
	}
	// The hashes are only a cache of verified tokens: bound them by the
	// directory's size (a peer's announcement varies with its addresses).
	if len(n.dirSeen) > 4*len(n.directory)+64 {
		clear(n.dirSeen)
	}
	n.dirSeen[sum] = true
	n.dirMu.Unlock()
	if same {
		return false, fmt.Errorf("%w: announcement of %s already held", pubsub.ErrStale, holder)
	}
	var addrs []ma.Multiaddr
	for _, s := range a.Addrs {
		if m, err := ma.NewMultiaddr(s); err == nil && len(addrs) < 16 {
			addrs = append(addrs, m)
		}
	}
	n.host.Peerstore().AddAddrs(p, addrs, peerstore.RecentlyConnectedAddrTTL)
	n.seenMu.Lock()
	n.seen[holder] = cred
	n.seenMu.Unlock()
	return true, nil
}

// directoryMember returns a member known from its announcement, while its
// credential is valid and not revoked.
func (n *Node) directoryMember(p peer.ID) (dirEntry, bool) {
	n.dirMu.Lock()
	e, ok := n.directory[p]
	n.dirMu.Unlock()
	if !ok || n.now().After(e.cred.Expires.Add(did.DefaultClockSkew)) || n.verifier.Revocations().Check(e.cred) != nil {
		return dirEntry{}, false
	}
	return e, true
}

// directoryTokens returns announcements of every member this node knows,
// for a new peer's sync: those it holds, and ones it makes for its verified
// peers from what they presented in the handshake (an announcement
// authenticates itself, so anyone may assemble and relay it).
func (n *Node) directoryTokens() [][]byte {
	n.dirMu.Lock()
	out := make([][]byte, 0, len(n.directory)+n.registry.Len())
	held := make(map[peer.ID]bool, len(n.directory))
	for p, e := range n.directory {
		out = append(out, e.raw)
		held[p] = true
	}
	n.dirMu.Unlock()
	for _, p := range n.registry.List() {
		if held[p.ID] || p.KeyPackage == nil {
			continue
		}
		tok, err := json.Marshal(announcement{V: 1, Credential: p.Credential.Raw, KeyPackage: p.KeyPackage.Marshal(),
			Addrs: multiaddrStrings(n.host.Peerstore().Addrs(p.ID))})
		if err == nil {
			out = append(out, tok)
		}
	}
	return out
}

// announceLoop announces this node once it has a peer: three times a few
// seconds apart (the first may go out before GossipSub has a mesh for the
// control topic), then every announceInterval. Announce is also called on
// renewal.
func (n *Node) announceLoop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var last time.Time
	sent := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		every := announceInterval
		if sent < 3 {
			every = 3 * time.Second
		}
		if n.registry.Len() == 0 || time.Since(last) < every {
			continue
		}
		if err := n.Announce(ctx); err == nil {
			last = time.Now()
			sent++
		}
	}
}

// Announce publishes this node's member announcement on the control topic.
func (n *Node) Announce(ctx context.Context) error {
	tok, err := n.announcementToken()
	if err != nil {
		return err
	}
	return n.mesh.PublishMember(ctx, tok)
}
