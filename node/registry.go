package node

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/pubsub"
)

// Peer is a verified peer: its identity and the credential it presented.
type Peer struct {
	ID         peer.ID
	DID        did.DID
	Credential *did.Credential
	KeyPackage *pubsub.KeyPackage
	VerifiedAt time.Time
}

// Registry holds the verified peers. An entry lives while the peer is
// connected and its credential is valid; a renewed credential replaces it.
// It is safe for concurrent use.
type Registry struct {
	mu      sync.RWMutex
	peers   map[peer.ID]Peer
	changed func(peer.ID) // if set, called after a peer is put or removed
}

func newRegistry() *Registry { return &Registry{peers: map[peer.ID]Peer{}} }

// put records p as verified, replacing any earlier entry (a renewal).
func (r *Registry) put(p Peer) {
	r.mu.Lock()
	r.peers[p.ID] = p
	r.mu.Unlock()
	if r.changed != nil {
		r.changed(p.ID)
	}
}

// remove drops a peer and reports whether it was there.
func (r *Registry) remove(id peer.ID) (Peer, bool) {
	r.mu.Lock()
	p, ok := r.peers[id]
	delete(r.peers, id)
	r.mu.Unlock()
	if ok && r.changed != nil {
		r.changed(id)
	}
	return p, ok
}

// Get returns a verified peer.
func (r *Registry) Get(id peer.ID) (Peer, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	p, ok := r.peers[id]
	return p, ok
}

// Len is the number of verified peers.
func (r *Registry) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.peers)
}

// List returns the verified peers sorted by DID.
func (r *Registry) List() []Peer {
	r.mu.RLock()
	out := make([]Peer, 0, len(r.peers))
	for _, p := range r.peers {
		out = append(out, p)
	}
	r.mu.RUnlock()
	slices.SortFunc(out, func(a, b Peer) int { return strings.Compare(a.DID.String(), b.DID.String()) })
	return out
}

// expired returns the peers whose credential expired before now - skew.
func (r *Registry) expired(now time.Time, skew time.Duration) []Peer {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []Peer
	for _, p := range r.peers {
		if now.After(p.Credential.Expires.Add(skew)) {
			out = append(out, p)
		}
	}
	return out
}
