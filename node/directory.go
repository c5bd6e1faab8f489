package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/rand/v2"
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
	maxAnnouncement = 32 << 10
	// announceInterval is how often a node repeats its announcement. Every
	// announcement reaches every node of the mesh, so a mesh of N nodes
	// carries N/announceInterval of them per second; new peers learn the
	// directory on connecting (sync) and renewals announce at once, so the
	// repeat only refreshes what a partition may have lost.
	announceInterval = 15 * time.Minute
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
	hash pubsub.MemberHash // of the announcement this node hands on
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
	// Most copies are byte for byte one already verified: skip even the
	// decoding for them.
	raw := sha256.Sum256(token)
	n.dirMu.Lock()
	known := n.dirSeen[raw]
	n.dirMu.Unlock()
	if known != nil {
		// Held and authentic: spread it, apply nothing; unless its
		// credential has since expired or been revoked.
		return false, n.stillValid(known)
	}
	var a announcement
	if err := wire.DecodeStrict(token, &a); err != nil || a.V != 1 {
		return false, fmt.Errorf("malformed member announcement: %v", err)
	}
	// Every new peer's sync repeats the announcements this node already
	// holds; verifying each again made joining a mesh of N members cost
	// O(N) credential verifications per connection. The cache is keyed by
	// the signed parts only: relayers list different addresses.
	sum := [32]byte(pubsub.HashMember(a.Credential, a.KeyPackage))
	// Claim the hash before verifying (false: in flight), so that the
	// copies arriving at once from several new peers are verified once; a
	// failure releases it.
	n.dirMu.Lock()
	known, present := n.dirSeen[sum]
	if !present {
		n.dirSeen[sum] = nil
	}
	n.dirMu.Unlock()
	switch {
	case known != nil:
		return false, n.stillValid(known)
	case present:
		return false, fmt.Errorf("%w: announcement being verified", pubsub.ErrStale)
	}
	ok := false
	defer func() {
		if !ok {
			n.dirMu.Lock()
			delete(n.dirSeen, sum)
			n.dirMu.Unlock()
		}
	}()
	holder, err := did.Subject([]byte(a.Credential))
	if err != nil {
		return false, err
	}
	if holder == n.id.DID() {
		ok = true
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
	// A relayed copy of an older announcement must not roll back a renewal.
	older := had && !same && (cred.IssuedAt.Before(old.cred.IssuedAt) ||
		cred.IssuedAt.Equal(old.cred.IssuedAt) && kp.Expires.Before(old.kp.Expires))
	if !same && !older {
		n.directory[p] = dirEntry{cred: cred, kp: kp, hash: pubsub.HashMember(cred.Raw, kp.Marshal())}
	}
	// The hashes are only a cache of verified tokens: bound them by the
	// directory's size (a renewal makes a new one).
	if len(n.dirSeen) > 8*len(n.directory)+64 {
		clear(n.dirSeen)
	}
	n.dirSeen[sum], n.dirSeen[raw] = cred, cred
	n.dirMu.Unlock()
	ok = true
	if same || older {
		return false, nil
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

// stillValid checks a credential verified earlier against the clock and
// the revocations in force now.
func (n *Node) stillValid(c *did.Credential) error {
	if n.now().After(c.Expires.Add(did.DefaultClockSkew)) {
		return fmt.Errorf("member announcement: credential %s expired at %s", c.ID, c.Expires.Format(time.RFC3339))
	}
	return n.verifier.Revocations().Check(c)
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

// handOn is a member announcement this node can give a peer's sync.
type handOn struct {
	id   peer.ID
	cred *did.Credential
	kp   *pubsub.KeyPackage
	hash pubsub.MemberHash
}

// handOns lists the members this node can announce to a new peer: those in
// its directory, its verified peers (from what they presented in the
// handshake: an announcement authenticates itself, so anyone may assemble
// and relay it), and itself.
func (n *Node) handOns() []handOn {
	n.dirMu.Lock()
	out := make([]handOn, 0, len(n.directory)+n.registry.Len()+1)
	held := make(map[peer.ID]bool, len(n.directory))
	for p, e := range n.directory {
		if n.stillValid(e.cred) != nil {
			continue // a peer would ask for it and refuse it, at every sync
		}
		out = append(out, handOn{p, e.cred, e.kp, e.hash})
		held[p] = true
	}
	n.dirMu.Unlock()
	for _, p := range n.registry.List() {
		if !held[p.ID] && p.KeyPackage != nil {
			out = append(out, handOn{p.ID, p.Credential, p.KeyPackage, pubsub.HashMember(p.Credential.Raw, p.KeyPackage.Marshal())})
		}
	}
	own := n.cred.Load()
	out = append(out, handOn{id: n.host.ID(), cred: own, hash: pubsub.HashMember(own.Raw, n.mesh.KeyPackage())})
	return out
}

// MemberHashes implements pubsub.ControlHandler.
func (n *Node) MemberHashes() []pubsub.MemberHash {
	hs := n.handOns()
	out := make([]pubsub.MemberHash, len(hs))
	for i, h := range hs {
		out[i] = h.hash
	}
	return out
}

// MemberTokens implements pubsub.ControlHandler. Tokens are made when
// asked rather than kept as received: a node holds an entry for every
// member of the mesh, and the raw announcement would double what each
// costs.
func (n *Node) MemberTokens(want []pubsub.MemberHash) [][]byte {
	wanted := make(map[pubsub.MemberHash]bool, len(want))
	for _, h := range want {
		wanted[h] = true
	}
	var out [][]byte
	for _, h := range n.handOns() {
		if !wanted[h.hash] {
			continue
		}
		wanted[h.hash] = false // once
		var tok []byte
		var err error
		if h.kp == nil { // ourselves
			tok, err = n.announcementToken()
		} else {
			tok, err = json.Marshal(announcement{V: 1, Credential: h.cred.Raw, KeyPackage: h.kp.Marshal(),
				Addrs: multiaddrStrings(n.host.Peerstore().Addrs(h.id))})
		}
		if err == nil {
			out = append(out, tok)
		}
	}
	return out
}

// announceLoop announces this node once GossipSub has a peer on the control
// topic, again 5 s later (members that connect in between learn it only
// from the second), then every announceInterval, jittered by up to a fifth
// so that nodes started together do not announce together. Announce is
// also called on renewal. A part of the mesh that connects later learns
// the member from the syncs of the nodes it connects to, and the parts
// beyond those at its next announcement.
func (n *Node) announceLoop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var next time.Time // zero: announce as soon as there is a peer
	sent := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if time.Now().Before(next) || n.registry.Len() == 0 || n.mesh.ControlPeers() == 0 {
			continue
		}
		if err := n.Announce(ctx); err != nil {
			n.log.Debug("member announcement not published", "event_type", "announce_failed", "reason", err.Error())
			continue
		}
		sent++
		wait := 5 * time.Second
		if sent >= 2 {
			wait = announceInterval - rand.N(announceInterval/5)
		}
		next = time.Now().Add(wait)
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
