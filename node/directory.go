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
// connection, learned from their announcements and from peers' sync. An
// announcement carries the member's credential (signed by a pinned issuer,
// subject = the member) and key package (signed by the member), so it
// authenticates itself whoever relays it. With it a node can accept zone
// messages and state written by members it is not connected to, and answer
// their key requests; their sender keys it pulls by dialing them (the
// addresses come with the announcement; the dial runs the usual handshake).
//
// The directory holds only members that share a zone with this node: the
// only ones whose messages it reads. Announcements travel on the member
// topic of each of the member's zones (pubsub/members.go), and a sync offers
// a peer only the members it shares a zone with, so a node verifies the
// members of its zones and no others.

const (
	maxAnnouncement = 32 << 10
	// announceInterval is how often a node repeats its announcement. Every
	// announcement reaches every node of the member's zones, so a zone of N
	// members carries N/announceInterval of them per second; new peers learn the
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
func (n *Node) ApplyMember(zone string, token []byte) (bool, error) {
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
		return false, n.admits(known, zone)
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
		return false, n.admits(known, zone)
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
	// Whether the member concerns this node at all is decided on the zones
	// it claims, before paying for a verification; what is kept rests on
	// the verified zones.
	holder, claimed, err := did.PeekZones([]byte(a.Credential))
	if err != nil {
		return false, err
	}
	if holder == n.id.DID() {
		ok = true
		return false, fmt.Errorf("%w: our own announcement", pubsub.ErrStale)
	}
	if err := n.inScope(claimed, zone); err != nil {
		return false, err
	}
	cred, err := n.verifier.VerifyHolder([]byte(a.Credential), holder, n.now())
	if err != nil {
		return false, err
	}
	if err := n.inScope(cred.Claims.Zones, zone); err != nil {
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
	if !same && !older {
		n.forgetScore(p)
	}
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

// admits checks a held announcement again: its credential must still be
// valid, and in scope for the topic it came on.
func (n *Node) admits(c *did.Credential, zone string) error {
	if err := n.stillValid(c); err != nil {
		return err
	}
	return n.inScope(c.Claims.Zones, zone)
}

// inScope checks a member's zones: an announcement on a zone's member topic
// must be of a member of that zone (else it is refused: whoever forwarded
// it should not have), and the directory takes only members that share a
// zone with this node (others are ignored).
func (n *Node) inScope(zones []string, topicZone string) error {
	if topicZone != "" && !(did.Claims{Zones: zones}).InZone(topicZone) {
		return fmt.Errorf("member announcement on the member topic of zone %s for a member of %v", topicZone, zones)
	}
	if !did.SharesZone(zones, n.cred.Load().Claims.Zones) {
		return fmt.Errorf("%w: member of %v shares no zone with this node", pubsub.ErrIgnored, zones)
	}
	return nil
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

// handOns lists the members this node can announce to peer to (all it
// holds for the empty ID): those in its directory, its verified peers (from
// what they presented in the handshake: an announcement authenticates
// itself, so anyone may assemble and relay it), and itself, each only if
// it shares a zone with to.
func (n *Node) handOns(to peer.ID) []handOn {
	shares := func(*did.Credential) bool { return true }
	if to != "" {
		e, ok := n.registry.Get(to)
		if !ok {
			return nil
		}
		toZones := e.Credential.Claims.Zones
		shares = func(c *did.Credential) bool { return did.SharesZone(c.Claims.Zones, toZones) }
	}
	n.dirMu.Lock()
	out := make([]handOn, 0, len(n.directory)+n.registry.Len()+1)
	held := make(map[peer.ID]bool, len(n.directory))
	for p, e := range n.directory {
		if p == to || !shares(e.cred) || n.stillValid(e.cred) != nil {
			continue // a peer would ask for it and refuse it, at every sync
		}
		out = append(out, handOn{p, e.cred, e.kp, e.hash})
		held[p] = true
	}
	n.dirMu.Unlock()
	for _, p := range n.registry.List() {
		if !held[p.ID] && p.ID != to && p.KeyPackage != nil && shares(p.Credential) {
			out = append(out, handOn{p.ID, p.Credential, p.KeyPackage, pubsub.HashMember(p.Credential.Raw, p.KeyPackage.Marshal())})
		}
	}
	if own := n.cred.Load(); shares(own) {
		out = append(out, handOn{id: n.host.ID(), cred: own, hash: pubsub.HashMember(own.Raw, n.mesh.KeyPackage())})
	}
	return out
}

// MemberHashes implements pubsub.ControlHandler.
func (n *Node) MemberHashes(to peer.ID) []pubsub.MemberHash {
	hs := n.handOns(to)
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
	for _, h := range n.handOns("") {
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
		if time.Now().Before(next) || n.registry.Len() == 0 || n.mesh.AnnouncePeers() == 0 {
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

// Announce publishes this node's member announcement on the member topics
// of its zones.
func (n *Node) Announce(ctx context.Context) error {
	tok, err := n.announcementToken()
	if err != nil {
		return err
	}
	return n.mesh.PublishMember(ctx, tok)
}
