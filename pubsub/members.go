package pubsub

import (
	"context"
	"errors"
	"fmt"
	"slices"

	ps "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ztmesh/ztmesh/did"
)

// Member announcements travel on the member topic of each zone the member
// belongs to, ztmesh/<mesh>/zone/<zone>/_members, which only that zone's
// members join. A node thus verifies and holds the members it shares a zone
// with, the only ones whose messages it reads and whose keys it fetches,
// instead of every member of the mesh: with Z equal zones that is N²/Z
// verifications across the mesh rather than N² (at 1,000 nodes in 50
// zones, 20,000 instead of 1,000,000). A member whose credential lists
// every zone ("*") announces on the control topic, which every node reads.

// announceZones returns the zones whose member topics carry this node's
// announcement, or wildcard if its credential lists every zone.
func (m *Mesh) announceZones() (zones []string, wildcard bool) {
	for _, z := range m.cfg.Credential().Claims.Zones {
		if z == did.AllZones {
			return nil, true
		}
		zones = append(zones, z)
	}
	return zones, false
}

// joinMembers joins and reads the member topics of the node's zones (again
// after a renewal: the zones may have changed; joining twice is a no-op).
func (m *Mesh) joinMembers() error {
	zones, _ := m.announceZones()
	var errs []error
	for _, z := range zones {
		if _, err := m.memberTopic(z); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// readMembers makes sure the node reads the member topic of a zone it
// publishes or subscribes in. That is one of its credential's zones, read
// since the start, unless its credential lists every zone: a wildcard
// member learns a zone's members from then on (and the members held by its
// peers in that zone, from their syncs).
//
// A node whose credential does not list the zone (a policy may let it
// publish there) stays off the member topic: the zone's members would not
// admit it, and would disconnect a peer subscribed where it may not be.
// Only a wildcard member is in every zone.
//
// It runs on every Publish, so it returns at once for the usual node, whose
// credential lists its zones: their member topics are joined already (at
// start, and by PublishMember after a renewal).
func (m *Mesh) readMembers(zone string) {
	if !slices.Contains(m.cfg.Credential().Claims.Zones, did.AllZones) {
		return
	}
	if _, err := m.memberTopic(zone); err != nil {
		m.log.Warn("member topic not joined", "event_type", "join_failed", "zone", zone, "reason", err.Error())
	}
}

// memberTopic returns the joined member topic of zone, joining it and
// reading it (announcements are applied in the validator) the first time.
func (m *Mesh) memberTopic(zone string) (*ps.Topic, error) {
	t, err := MembersTopic(m.cfg.Mesh, zone)
	if err != nil {
		return nil, err
	}
	m.memberMu.Lock()
	defer m.memberMu.Unlock()
	if pt, ok := m.memberTopics[zone]; ok {
		return pt, nil
	}
	pt, err := m.join(t)
	if err != nil {
		return nil, err
	}
	sub, err := pt.Subscribe()
	if err != nil {
		return nil, fmt.Errorf("subscribe to %s: %w", t, err)
	}
	m.goLoop(func(ctx context.Context) {
		defer sub.Cancel()
		for {
			if _, err := sub.Next(ctx); err != nil {
				return
			}
		}
	})
	if m.memberTopics == nil {
		m.memberTopics = map[string]*ps.Topic{}
	}
	m.memberTopics[zone] = pt
	return pt, nil
}

// PublishMember publishes this node's member announcement on the member
// topic of each of its zones (the control topic for a wildcard member).
func (m *Mesh) PublishMember(ctx context.Context, token []byte) error {
	zones, wildcard := m.announceZones()
	if wildcard {
		return m.publishControl(ctx, controlMember, token)
	}
	var errs []error
	for _, z := range zones {
		pt, err := m.memberTopic(z)
		if err == nil {
			err = pt.Publish(ctx, token)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("member announcement in zone %s: %w", z, err))
		}
	}
	return errors.Join(errs...)
}

// AnnouncePeers is how many peers GossipSub counts on the topics that carry
// this node's announcement: a publication before there is one reaches
// nobody.
func (m *Mesh) AnnouncePeers() int {
	zones, wildcard := m.announceZones()
	if wildcard {
		return m.ControlPeers()
	}
	var peers []peer.ID
	for _, z := range zones {
		if t, err := MembersTopic(m.cfg.Mesh, z); err == nil {
			peers = append(peers, m.ps.ListPeers(t.String())...)
		}
	}
	slices.Sort(peers)
	return len(slices.Compact(peers))
}

// validateMembers applies a member announcement from a zone's member topic.
// The announcement authenticates itself (issuer-signed credential, key
// package signed by the member), so anyone may relay it; one for a member
// of another zone is Rejected, one expired or revoked here is Ignored
// (judgedHere).
func (m *Mesh) validateMembers(ctx context.Context, from peer.ID, msg *ps.Message) ps.ValidationResult {
	if msg.ReceivedFrom == m.self {
		return accept // our own: nothing to apply to ourselves
	}
	t, ok := m.topicOf(msg.GetTopic())
	if !ok || !t.IsMembers() {
		m.stats.reject(ReasonUnknownTopic)
		return reject
	}
	if over, reason := m.overControlLimit(from, msg, controlMember); over {
		m.stats.reject(reason)
		return ignore
	}
	_, err := m.cfg.Directory.ApplyMember(t.Zone, msg.Data)
	switch {
	case err != nil && isRollback(err):
		return ignore
	case err != nil && judgedHere(err):
		// Expired or revoked by this node's clock and lists: not the
		// relays' doing (see judgedHere).
		m.stats.reject(ReasonInvalidAnnouncement)
		return ignore
	case err != nil:
		m.stats.reject(ReasonInvalidAnnouncement)
		m.log.Warn("member announcement refused", "event_type", "control_refused", "peer", from.String(),
			"origin", msg.GetFrom().String(), "type", controlMember, "zone", t.Zone, "reason", err.Error())
		return reject
	}
	// Held already or new: either way authentic, and spread (see
	// validateControl).
	return accept
}
