package node

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/record"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/internal/wire"
	"github.com/ztmesh/ztmesh/pubsub"
)

// The roster is the one owner of what this node knows about the other
// members of its mesh:
//
//   - the connected peers it verified in the handshake (the Registry),
//   - the members it learned from their announcements, connected or not
//     (the directory), with a cache of the announcements it verified,
//   - the last credential each member presented, for judging the state it
//     wrote while it was connected.
//
// It owns the member announcement format and its verification, and it is
// pubsub's Directory: it applies announcements from the member topics and
// from syncs, and lists what this node can hand on. Every credential it
// hands out has been re-checked against the clock and the revocations in
// force (did.Verifier.Recheck).
//
// What it does not own: trust and quarantine (the trust book), the
// handshake that admits a connected peer (auth.go), connections, logging
// and metrics. It tells the node of every change to a member's entry
// through one hook (changed), after the change is visible.
//
// The directory holds only members that share a zone with this node: the
// only ones whose messages it reads. Announcements travel on the member
// topic of each of the member's zones (pubsub/members.go), and a sync
// offers a peer only the members it shares a zone with, so a node verifies
// the members of its zones and no others.
type roster struct {
	verifier *did.Verifier
	now      func() time.Time
	self     rosterSelf
	// records are where members can be dialed: the peer records they
	// signed, from their announcements and from identify. nil if the
	// peerstore keeps none (then announcements carry no addresses).
	records peerstore.CertifiedAddrBook
	changed func(peer.ID) // after a member's entry changed

	connected *Registry

	mu        sync.Mutex
	directory map[peer.ID]dirEntry         // members known from their announcements
	verified  map[[32]byte]*did.Credential // announcement hashes: verified (its credential) or being verified (nil)
	presented map[did.DID]*did.Credential  // the last credential each member presented

	ownRecord     []byte // our own signed peer record, marshalled, when the host signs none
	ownRecordAddr string // the addresses it was made for
}

// rosterSelf is what the roster knows of its own node, for its own
// announcement and for the scope of the directory.
type rosterSelf struct {
	id         peer.ID
	did        did.DID
	credential func() *did.Credential // in force
	keyPackage func() []byte          // in force, marshalled
	addrs      func() []ma.Multiaddr
	key        crypto.PrivKey // signs our peer record when the host does not
}

func newRoster(v *did.Verifier, now func() time.Time, self rosterSelf, addrs peerstore.AddrBook, changed func(peer.ID)) *roster {
	records, _ := peerstore.GetCertifiedAddrBook(addrs)
	r := &roster{
		verifier: v, now: now, self: self, records: records, changed: changed,
		connected: newRegistry(),
		directory: map[peer.ID]dirEntry{},
		verified:  map[[32]byte]*did.Credential{},
		presented: map[did.DID]*did.Credential{},
	}
	r.connected.changed = changed
	return r
}

const (
	maxAnnouncement = 32 << 10
	// announceInterval is how often a node repeats its announcement. Every
	// announcement reaches every node of the member's zones, so a zone of N
	// members carries N/announceInterval of them per second; new peers learn the
	// directory on connecting (sync) and renewals announce at once, so the
	// repeat only refreshes what a partition may have lost.
	announceInterval = 15 * time.Minute

	// announcementVersion is the version this node writes: 2 carries the
	// member's addresses as its signed peer record. Version 1 carried
	// them unsigned, and any relayer could rewrite them; a node still
	// reads version 1 but never dials what it lists.
	announcementVersion = 2
	// maxPeerRecord bounds the signed peer record in an announcement, and
	// maxRecordAddrs the addresses it lists.
	maxPeerRecord  = 4 << 10
	maxRecordAddrs = 16
	// recordTTL is how long a member's signed addresses are kept without a
	// new copy: two announcement intervals.
	recordTTL = 2 * announceInterval
)

// announcement is a member announcement on the wire (docs/PROTOCOL.md): a
// credential (signed by a pinned issuer, subject = the member), a key
// package and a peer record (both signed by the member), so it
// authenticates itself whoever relays it, addresses included.
type announcement struct {
	V          int    `json:"v"`
	Credential string `json:"credential"`
	KeyPackage []byte `json:"key_package"`
	// Addrs (version 1 only) are addresses any relayer could have
	// written: read, never used.
	Addrs []string `json:"addrs,omitempty"`
	// PeerRecord (version 2, optional) is the member's libp2p signed peer
	// record (record.Envelope of a peer.PeerRecord), marshalled.
	PeerRecord []byte `json:"peer_record,omitempty"`
}

// decodeAnnouncement decodes an announcement strictly and checks its
// version and sizes; it verifies nothing.
func decodeAnnouncement(token []byte) (announcement, error) {
	var a announcement
	if len(token) > maxAnnouncement {
		return a, fmt.Errorf("member announcement of %d bytes", len(token))
	}
	if err := wire.DecodeStrict(token, &a); err != nil {
		return a, fmt.Errorf("malformed member announcement: %w", err)
	}
	switch {
	case a.V != 1 && a.V != announcementVersion:
		return a, fmt.Errorf("malformed member announcement: version %d, want 1 or %d", a.V, announcementVersion)
	case a.V == 1 && a.PeerRecord != nil:
		return a, errors.New("malformed member announcement: a peer record in version 1")
	case a.V != 1 && a.Addrs != nil:
		return a, fmt.Errorf("malformed member announcement: unsigned addresses in version %d", a.V)
	case len(a.PeerRecord) > maxPeerRecord:
		return a, fmt.Errorf("malformed member announcement: peer record of %d bytes", len(a.PeerRecord))
	}
	return a, nil
}

// verifyPeerRecord checks the peer record of an announcement of member p:
// a peer record signed by p's own key, for p, of at most maxRecordAddrs
// addresses. A relayer cannot make one, only hand on one p made (maybe an
// older one: the peerstore keeps the highest sequence number). nil if the
// announcement carries none.
func verifyPeerRecord(b []byte, p peer.ID) (*record.Envelope, error) {
	if b == nil {
		return nil, nil
	}
	env, rec, err := record.ConsumeEnvelope(b, peer.PeerRecordEnvelopeDomain)
	if err != nil {
		return nil, fmt.Errorf("member announcement: peer record: %w", err)
	}
	pr, ok := rec.(*peer.PeerRecord)
	switch {
	case !ok:
		return nil, errors.New("member announcement: peer record of the wrong type")
	case pr.PeerID != p:
		return nil, errors.New("member announcement: peer record of another peer")
	case !p.MatchesPublicKey(env.PublicKey):
		return nil, errors.New("member announcement: peer record signed by another key")
	case len(pr.Addrs) > maxRecordAddrs:
		return nil, fmt.Errorf("member announcement: peer record of %d addresses", len(pr.Addrs))
	}
	return env, nil
}

// takeRecord keeps a member's verified peer record if it is newer than
// (or as new as, refreshing it) the one held.
func (r *roster) takeRecord(env *record.Envelope) {
	if env != nil && r.records != nil {
		_, _ = r.records.ConsumePeerRecord(env, recordTTL) // refused: an older one, or the book is full
	}
}

// recordOf is the signed peer record held for p, marshalled; nil if none.
func (r *roster) recordOf(p peer.ID) []byte {
	if r.records == nil {
		return nil
	}
	env := r.records.GetPeerRecord(p)
	if env == nil {
		return nil
	}
	b, err := env.Marshal()
	if err != nil || len(b) > maxPeerRecord {
		return nil
	}
	return b
}

// ownPeerRecord is this node's signed peer record: the host's (identify
// hands out the same one), or, for hosts that sign none (mocknet), one of
// our own, made again when our addresses change.
func (r *roster) ownPeerRecord() []byte {
	if b := r.recordOf(r.self.id); b != nil {
		if _, err := verifyPeerRecord(b, r.self.id); err == nil {
			return b
		}
	}
	addrs := r.self.addrs()
	addrs = addrs[:min(len(addrs), maxRecordAddrs)]
	key := fmt.Sprint(addrs)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ownRecord != nil && r.ownRecordAddr == key {
		return r.ownRecord
	}
	if r.self.key == nil {
		return nil
	}
	env, err := record.Seal(peer.PeerRecordFromAddrInfo(peer.AddrInfo{ID: r.self.id, Addrs: addrs}), r.self.key)
	if err != nil {
		return nil
	}
	b, err := env.Marshal()
	if err != nil || len(b) > maxPeerRecord {
		return nil
	}
	r.ownRecord, r.ownRecordAddr = b, key
	return b
}

type dirEntry struct {
	cred *did.Credential
	kp   *pubsub.KeyPackage
	hash pubsub.MemberHash // of the announcement this node hands on
}

// Admit records a peer verified in the handshake, replacing an earlier
// entry (a renewal, reported as renewed).
func (r *roster) Admit(p Peer) (renewed bool) {
	_, renewed = r.connected.Get(p.ID)
	r.mu.Lock()
	r.presented[p.DID] = p.Credential
	r.mu.Unlock()
	r.connected.put(p)
	return renewed
}

// Remove forgets a connected peer (disconnected, expired, revoked); what
// it announced stays in the directory while its credential is valid.
func (r *roster) Remove(p peer.ID) (Peer, bool) { return r.connected.remove(p) }

// forget removes from the directory the members whose credential gone
// reports (expired, revoked) and returns them: they may have pulled this
// node's sender keys while they were members, so the caller rotates them.
// An entry is reported once; a renewed announcement brings it back.
func (r *roster) forget(gone func(*did.Credential) bool) []peer.ID {
	r.mu.Lock()
	var out []peer.ID
	for p, e := range r.directory {
		if gone(e.cred) {
			delete(r.directory, p)
			out = append(out, p)
		}
	}
	r.mu.Unlock()
	if r.changed != nil {
		for _, p := range out {
			r.changed(p)
		}
	}
	return out
}

// Connected returns a verified connected peer.
func (r *roster) Connected(p peer.ID) (Peer, bool) { return r.connected.Get(p) }

// connectedDID returns the verified connected peer holding d.
func (r *roster) connectedDID(d did.DID) (Peer, bool) {
	for _, p := range r.connected.List() {
		if p.DID == d {
			return p, true
		}
	}
	return Peer{}, false
}

// Member returns the credential and key package of a member: a verified
// connected peer, or one known from its announcement while its credential
// is still valid and not revoked.
func (r *roster) Member(p peer.ID) (*did.Credential, *pubsub.KeyPackage, bool) {
	if e, ok := r.connected.Get(p); ok {
		return e.Credential, e.KeyPackage, true
	}
	r.mu.Lock()
	e, ok := r.directory[p]
	r.mu.Unlock()
	if !ok || r.verifier.Recheck(e.cred, r.now()) != nil {
		return nil, nil, false
	}
	return e.cred, e.kp, true
}

// Directory returns the members known from their announcements whose
// credential is still valid here, connected or not, by peer ID.
func (r *roster) Directory() map[peer.ID]*did.Credential {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	out := make(map[peer.ID]*did.Credential, len(r.directory))
	for p, e := range r.directory {
		if r.verifier.Recheck(e.cred, now) == nil {
			out[p] = e.cred
		}
	}
	return out
}

// Credential returns the credential of a member, for authorizing its
// writes: ours, or the last one it presented (in a handshake or an
// announcement) while still valid and not revoked. nil if the node never
// verified it.
func (r *roster) Credential(d did.DID) *did.Credential {
	if d == r.self.did {
		return r.self.credential()
	}
	r.mu.Lock()
	c := r.presented[d]
	r.mu.Unlock()
	if c == nil || r.verifier.Recheck(c, r.now()) != nil {
		return nil
	}
	return c
}

// Announcement is this node's own member announcement.
func (r *roster) Announcement() ([]byte, error) {
	return json.Marshal(announcement{V: announcementVersion, Credential: r.self.credential().Raw,
		KeyPackage: r.self.keyPackage(), PeerRecord: r.ownPeerRecord()})
}

// ApplyMember implements pubsub.Directory.
func (r *roster) ApplyMember(zone string, token []byte) (bool, error) {
	if len(token) > maxAnnouncement {
		return false, fmt.Errorf("member announcement of %d bytes", len(token))
	}
	// Most copies are byte for byte one already verified: skip even the
	// decoding for them.
	raw := sha256.Sum256(token)
	r.mu.Lock()
	known := r.verified[raw]
	r.mu.Unlock()
	if known != nil {
		// Held and authentic, its peer record (if any) taken: spread it,
		// apply nothing; unless its credential has since expired or been
		// revoked.
		return false, r.admits(known, zone)
	}
	a, err := decodeAnnouncement(token)
	if err != nil {
		return false, err
	}
	// Every new peer's sync repeats the announcements this node already
	// holds; verifying each again made joining a mesh of N members cost
	// O(N) credential verifications per connection. The cache is keyed by
	// the parts the issuer signed: copies differ in the peer record they
	// carry (the member's newest one that each relayer holds).
	sum := [32]byte(pubsub.HashMember(a.Credential, a.KeyPackage))
	// Claim the hash before verifying (nil: in flight), so that the copies
	// arriving at once from several new peers are verified once; a
	// failure releases it.
	r.mu.Lock()
	known, present := r.verified[sum]
	if !present {
		r.verified[sum] = nil
	}
	r.mu.Unlock()
	switch {
	case known != nil:
		// A copy of a held announcement: its peer record may be newer
		// than the one held (the first copy's relayer had an older one).
		if err := r.admits(known, zone); err != nil {
			return false, err
		}
		p, err := known.Subject.PeerID()
		if err != nil {
			return false, err
		}
		env, err := verifyPeerRecord(a.PeerRecord, p)
		if err != nil {
			return false, err
		}
		// Not cached by its raw hash: copies may differ in anything a
		// relayer writes, and a cache entry per copy would grow without
		// bound. A copy costs a decoding and a signature check.
		r.takeRecord(env)
		return false, nil
	case present:
		return false, fmt.Errorf("%w: announcement being verified", pubsub.ErrStale)
	}
	ok := false
	defer func() {
		if !ok {
			r.mu.Lock()
			delete(r.verified, sum)
			r.mu.Unlock()
		}
	}()
	cred, kp, err := r.verify(a, zone)
	if errors.Is(err, errOwnAnnouncement) {
		ok = true
		return false, fmt.Errorf("%w: our own announcement", pubsub.ErrStale)
	}
	if err != nil {
		return false, err
	}
	p, err := cred.Subject.PeerID()
	if err != nil {
		return false, err
	}
	env, err := verifyPeerRecord(a.PeerRecord, p)
	if err != nil {
		return false, err
	}
	// The newest record wins whatever the announcement: a relayed older
	// announcement may carry a newer record.
	r.takeRecord(env)
	r.mu.Lock()
	old, had := r.directory[p]
	same := had && old.cred.ID == cred.ID && bytes.Equal(old.kp.Public, kp.Public)
	// A relayed copy of an older announcement must not roll back a renewal.
	older := had && !same && (cred.IssuedAt.Before(old.cred.IssuedAt) ||
		cred.IssuedAt.Equal(old.cred.IssuedAt) && kp.Expires.Before(old.kp.Expires))
	if !same && !older {
		r.directory[p] = dirEntry{cred: cred, kp: kp, hash: pubsub.HashMember(cred.Raw, kp.Marshal())}
		r.presented[cred.Subject] = cred
	}
	// The hashes are only a cache of verified tokens: bound them by the
	// directory's size (a renewal makes a new one).
	if len(r.verified) > 8*len(r.directory)+64 {
		clear(r.verified)
	}
	r.verified[sum], r.verified[raw] = cred, cred
	r.mu.Unlock()
	ok = true
	if same || older {
		return false, nil
	}
	r.changed(p)
	return true, nil
}

var errOwnAnnouncement = errors.New("own announcement")

// verify checks a decoded announcement that came on zone's member topic
// ("" for the control topic or a sync): the credential verifies for its
// holder and is in scope, the key package is the holder's.
func (r *roster) verify(a announcement, zone string) (*did.Credential, *pubsub.KeyPackage, error) {
	// Whether the member concerns this node at all is decided on the zones
	// it claims, before paying for a verification; what is kept rests on
	// the verified zones.
	holder, claimed, err := did.PeekZones([]byte(a.Credential))
	if err != nil {
		return nil, nil, err
	}
	if holder == r.self.did {
		return nil, nil, errOwnAnnouncement
	}
	if err := r.inScope(claimed, zone); err != nil {
		return nil, nil, err
	}
	cred, err := r.verifier.VerifyHolder([]byte(a.Credential), holder, r.now())
	if err != nil {
		return nil, nil, err
	}
	if err := r.inScope(cred.Claims.Zones, zone); err != nil {
		return nil, nil, err
	}
	kp, err := pubsub.ParseKeyPackage(a.KeyPackage, holder, r.now())
	if err != nil {
		return nil, nil, err
	}
	return cred, kp, nil
}

// admits checks a held announcement again: its credential must still be
// valid, and in scope for the topic it came on.
func (r *roster) admits(c *did.Credential, zone string) error {
	if err := r.verifier.Recheck(c, r.now()); err != nil {
		return fmt.Errorf("member announcement: %w", err)
	}
	return r.inScope(c.Claims.Zones, zone)
}

// inScope checks a member's zones: an announcement on a zone's member topic
// must be of a member of that zone (else it is refused: whoever forwarded
// it should not have), and the directory takes only members that share a
// zone with this node (others are ignored).
func (r *roster) inScope(zones []string, topicZone string) error {
	if topicZone != "" && !(did.Claims{Zones: zones}).InZone(topicZone) {
		return fmt.Errorf("member announcement on the member topic of zone %s for a member of %v", topicZone, zones)
	}
	if !did.SharesZone(zones, r.self.credential().Claims.Zones) {
		return fmt.Errorf("%w: member of %v shares no zone with this node", pubsub.ErrIgnored, zones)
	}
	return nil
}

// handOn is a member announcement this node can give a peer's sync.
type handOn struct {
	id   peer.ID
	cred *did.Credential
	kp   *pubsub.KeyPackage // nil for ourselves
	hash pubsub.MemberHash
}

// HandOns lists the members this node can announce to peer to (all it
// holds for the empty ID): those in its directory, its verified peers
// (from what they presented in the handshake: an announcement
// authenticates itself, so anyone may assemble and relay it), and itself,
// each only if it shares a zone with to.
func (r *roster) HandOns(to peer.ID) []handOn {
	shares := func(*did.Credential) bool { return true }
	if to != "" {
		e, ok := r.connected.Get(to)
		if !ok {
			return nil
		}
		toZones := e.Credential.Claims.Zones
		shares = func(c *did.Credential) bool { return did.SharesZone(c.Claims.Zones, toZones) }
	}
	now := r.now()
	r.mu.Lock()
	out := make([]handOn, 0, len(r.directory)+r.connected.Len()+1)
	held := make(map[peer.ID]bool, len(r.directory))
	for p, e := range r.directory {
		if p == to || !shares(e.cred) || r.verifier.Recheck(e.cred, now) != nil {
			continue // a peer would ask for it and refuse it, at every sync
		}
		out = append(out, handOn{p, e.cred, e.kp, e.hash})
		held[p] = true
	}
	r.mu.Unlock()
	for _, p := range r.connected.List() {
		if !held[p.ID] && p.ID != to && p.KeyPackage != nil && shares(p.Credential) {
			out = append(out, handOn{p.ID, p.Credential, p.KeyPackage, pubsub.HashMember(p.Credential.Raw, p.KeyPackage.Marshal())})
		}
	}
	if own := r.self.credential(); shares(own) {
		out = append(out, handOn{id: r.self.id, cred: own, hash: pubsub.HashMember(own.Raw, r.self.keyPackage())})
	}
	return out
}

// MemberHashes implements pubsub.Directory.
func (r *roster) MemberHashes(to peer.ID) []pubsub.MemberHash {
	hs := r.HandOns(to)
	out := make([]pubsub.MemberHash, len(hs))
	for i, h := range hs {
		out[i] = h.hash
	}
	return out
}

// MemberTokens implements pubsub.Directory. Tokens are made when asked
// rather than kept as received: a node holds an entry for every member of
// the mesh, and the raw announcement would double what each costs.
func (r *roster) MemberTokens(want []pubsub.MemberHash) [][]byte {
	wanted := make(map[pubsub.MemberHash]bool, len(want))
	for _, h := range want {
		wanted[h] = true
	}
	var out [][]byte
	for _, h := range r.HandOns("") {
		if !wanted[h.hash] {
			continue
		}
		wanted[h.hash] = false // once
		var tok []byte
		var err error
		if h.kp == nil { // ourselves
			tok, err = r.Announcement()
		} else {
			// Only the member's own signed record: never an address this
			// node learned from anyone else.
			tok, err = json.Marshal(announcement{V: announcementVersion, Credential: h.cred.Raw,
				KeyPackage: h.kp.Marshal(), PeerRecord: r.recordOf(h.id)})
		}
		if err == nil {
			out = append(out, tok)
		}
	}
	return out
}

// standingVersions are the versions of members' standing that pubsub's
// score memo keys on (pubsub.Members.StandingVersion). The roster and the
// trust book bump them, after each change, through the one hook each is
// given; a peer's version is the sum of a global epoch and its own count,
// so both kinds of bump make it grow.
type standingVersions struct {
	epoch atomic.Uint64
	mu    sync.Mutex
	peers map[peer.ID]uint64
	max   uint64 // the largest count in peers
}

// maxVersioned bounds the peers with a count of their own; past it, the
// counts are dropped and the epoch jumps past all of them.
const maxVersioned = 1 << 16

func (v *standingVersions) changed(p peer.ID) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.peers == nil || len(v.peers) >= maxVersioned {
		v.epoch.Add(v.max + 1)
		v.peers, v.max = map[peer.ID]uint64{}, 0
	}
	v.peers[p]++
	v.max = max(v.max, v.peers[p])
}

func (v *standingVersions) changedAll() { v.epoch.Add(1) }

func (v *standingVersions) of(p peer.ID) uint64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.epoch.Load() + v.peers[p]
}
