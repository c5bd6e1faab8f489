package simulations

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/pubsub"
)

// Issue 15, items 2 and 6: a member that lies about other members'
// addresses, and a flood of connections that never present a credential.

// announcementFrame is a member announcement as docs/PROTOCOL.md describes
// it, as an attacker writes it.
type announcementFrame struct {
	V          int      `json:"v"`
	Credential string   `json:"credential"`
	KeyPackage []byte   `json:"key_package"`
	Addrs      []string `json:"addrs,omitempty"`
	PeerRecord []byte   `json:"peer_record,omitempty"`
}

// forgedAddrBogus is where the forged announcements point.
var forgedAddrBogus = ma.StringCast("/ip4/203.0.113.7/tcp/4101")

// attackForgedAddresses: a compromised member of zone 0 (the injector)
// relays, on zone 0's member topic, copies of members' announcements,
// authentic in their signed parts, with an address of its choosing: as
// version 1's unsigned addrs, as a peer record for the member that it
// signed itself, and as its own peer record. The members are an absent
// member of zone 0 that the targets do not know yet (its first copy is
// the forged one) and an honest node of zone 0 they hold. Accepted: an
// honest node whose peerstore holds the bogus address for either.
//
// mocknet dials by link, not by address, so this row cannot show the key
// pulls a bogus address would break; it shows whether the address is
// kept, which is what a dial would use on a real network (the node test
// TestRelayedAnnouncementCannotRedirectKeyPulls shows the pulls on TCP).
func attackForgedAddresses(ctx context.Context, l *lab, w time.Duration) (*attackRow, error) {
	row := newRow("forged-addresses")
	z := l.zones[0]
	inj, err := l.newInjector()
	if err != nil {
		return nil, err
	}
	defer inj.close()
	l.addAttacker(inj.id.DID(), row.name)
	row.attacker(inj.id.DID())

	absent, err := did.GenerateIdentity(rand.Reader)
	if err != nil {
		return nil, err
	}
	absentCred, err := l.c.Issue(absent, NodeSpec{Zones: []string{z}, Role: "vehicle", Trust: l.sc.Trust}, did.IssueOptions{})
	if err != nil {
		return nil, err
	}
	absentKP, err := pubsub.NewKeyPackage(absent, pubsub.SuiteX25519, time.Now())
	if err != nil {
		return nil, err
	}
	held := l.byZone[z][0]
	absentID, _ := absent.DID().PeerID()
	origins := []struct {
		id         peer.ID
		cred       string
		keyPackage []byte
	}{
		{absentID, absentCred, absentKP},
		{held.Host().ID(), held.Credential().Raw, held.Mesh().KeyPackage()},
	}
	var tokens [][]byte
	for _, o := range origins {
		own, err := sealRecord(inj.rawHost, inj.h.ID(), forgedAddrBogus)
		if err != nil {
			return nil, err
		}
		forRecord, err := sealRecord(inj.rawHost, o.id, forgedAddrBogus)
		if err != nil {
			return nil, err
		}
		for _, a := range []announcementFrame{
			{V: 1, Credential: o.cred, KeyPackage: o.keyPackage, Addrs: []string{forgedAddrBogus.String()}},
			{V: 2, Credential: o.cred, KeyPackage: o.keyPackage, PeerRecord: forRecord},
			{V: 2, Credential: o.cred, KeyPackage: o.keyPackage, PeerRecord: own},
		} {
			tok, err := json.Marshal(a)
			if err != nil {
				return nil, err
			}
			tokens = append(tokens, tok)
		}
	}
	topic, err := pubsub.MembersTopic(l.c.cfg.Mesh, z)
	if err != nil {
		return nil, err
	}
	ts := topic.String()
	targets := l.pick(z, targetsPerAttacker)
	before := l.rejected()
	deadline := time.Now().Add(w)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		var batch []*pb.Message
		for _, tok := range tokens {
			seq := make([]byte, 8)
			_, _ = rand.Read(seq)
			m := &pb.Message{From: []byte(inj.h.ID()), Data: tok, Seqno: seq, Topic: &ts}
			if err := signGossip(inj.id.LibP2PKey(), m); err != nil {
				return nil, err
			}
			batch = append(batch, m)
		}
		for _, t := range targets {
			if err := inj.inject(ctx, l, t.Host(), batch); err == nil {
				row.attempts += len(batch)
				row.injected += len(batch)
			}
		}
		sleepCtx(ctx, 500*time.Millisecond)
	}
	sleepCtx(ctx, attackSettle)
	kept, knowAbsent := 0, 0
	for _, m := range l.c.Nodes {
		for _, o := range origins {
			if slices.ContainsFunc(m.Host().Peerstore().Addrs(o.id), forgedAddrBogus.Equal) {
				kept++
			}
		}
		if _, ok := m.Member(absentID); ok {
			knowAbsent++
		}
	}
	row.accepted += kept
	if kept > 0 {
		row.failures = append(row.failures, fmt.Sprintf("%d honest peerstores hold the forged address", kept))
	}
	for k, v := range diff(l.rejected(), before) {
		row.stopped = append(row.stopped, fmt.Sprintf("%s: %d", k, v))
	}
	if kept == 0 {
		row.stopped = append(row.stopped, "only member-signed peer records kept")
	}
	row.notes = append(row.notes, fmt.Sprintf("%d forged copies injected into %d targets; %d honest nodes hold the absent member (its signed parts are authentic), %d peerstores hold the forged address; mocknet dials by link, so key pulls are not exercised here",
		row.injected, len(targets), knowAbsent, kept))
	return row, nil
}

// sealRecord is a peer record for id listing addrs, signed by r's key:
// the record of r itself, or a forgery for anyone else.
func sealRecord(r *rawHost, id peer.ID, addrs ...ma.Multiaddr) ([]byte, error) {
	env, err := record.Seal(&peer.PeerRecord{PeerID: id, Addrs: addrs, Seq: uint64(time.Now().UnixNano())}, r.id.LibP2PKey())
	if err != nil {
		return nil, err
	}
	return env.Marshal()
}

// unauthFloodFactor: the flood is this many times a target's budget of
// unverified connections.
const unauthFloodFactor = 4

// attackUnauthConnFlood: peers without a credential connect to two honest
// targets, unauthFloodFactor times the targets' budget of unverified
// connections (node.Config.UnverifiedConns), and hold what they get for
// the window, reconnecting when dropped. Accepted: flood connections a
// target held beyond its budget, and flood peers verified.
//
// Each mocknet peer has its own address, so the per-IP cap does not bind
// here; the node test TestUncredentialedFloodLeavesMembersSlots shows it
// on TCP, with the resource manager that mocknet lacks.
func attackUnauthConnFlood(ctx context.Context, l *lab, w time.Duration) (*attackRow, error) {
	row := newRow("unauth-conn-flood")
	targets := l.pick("", 2)
	budget := l.c.Nodes[0].Config().UnverifiedConns
	var flood []*rawHost
	defer func() {
		for _, r := range flood {
			r.h.Close()
		}
	}()
	for range unauthFloodFactor * budget {
		r, err := l.newRawHost()
		if err != nil {
			return nil, err
		}
		l.addAttacker(r.id.DID(), row.name)
		row.attacker(r.id.DID())
		flood = append(flood, r)
	}
	peak, verified := 0, 0
	deadline := time.Now().Add(w)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		for _, t := range targets {
			for _, r := range flood {
				if r.h.Network().Connectedness(t.Host().ID()) != network.Connected {
					row.attempts++
					_ = l.connect(ctx, r.h, t.Host())
				}
			}
		}
		// Held: sampled after the wave, once the connections the targets
		// refused have been closed (a refused one is closed just after
		// libp2p reports it connected).
		sleepCtx(ctx, 500*time.Millisecond)
		for _, t := range targets {
			held := 0
			for _, r := range flood {
				if t.Host().Network().Connectedness(r.h.ID()) == network.Connected {
					held++
				}
				if _, ok := t.Registry().Get(r.h.ID()); ok {
					verified++
				}
			}
			peak = max(peak, held)
		}
	}
	over := max(0, peak-budget)
	row.accepted += over + verified
	if over > 0 {
		row.failures = append(row.failures, fmt.Sprintf("a target held %d flood connections, %d over its budget of %d", peak, over, budget))
	}
	if verified > 0 {
		row.failures = append(row.failures, fmt.Sprintf("flood peers verified %d times", verified))
	}
	if over == 0 {
		row.stopped = append(row.stopped, fmt.Sprintf("unverified budget (%d per node)", budget))
	}
	row.notes = append(row.notes, fmt.Sprintf("%d peers without a credential against %d targets; at most %d flood connections held by a target, sampled after each wave (budget %d); no resource manager on mocknet",
		len(flood), len(targets), peak, budget))
	return row, nil
}
