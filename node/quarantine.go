package node

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/ztmesh/ztmesh/attest"
	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/node/internal/trust"
	"github.com/ztmesh/ztmesh/pubsub"
)

// Quarantine announcements. A node that quarantines a peer because its
// evidence failed the reference values, or faded (stale), announces it on
// the control topic with the peer's own signed evidence attached
// (attest.Quarantine). A receiver trusts neither the announcer nor its
// reason: it checks that the announcer is a member it knows, that the
// accused signed the evidence, that the evidence is not older than what it
// holds from the accused (for stale evidence: that it holds any; it cannot
// judge the staleness of evidence it never saw), and judges the evidence
// against its own reference values. It quarantines the accused only if that judgment
// agrees. A quarantine for rejected messages or rate-limit violations is
// not announced: nobody else can check it.

const (
	// announceJitter spreads the announcements of nodes that quarantine a
	// peer at the same moment (they all saw the same evidence): the first
	// one out suppresses the others.
	announceJitter = 500 * time.Millisecond
	// staleEvidenceMaxAge is the oldest evidence a stale announcement may
	// carry: past it, the accused has been silent for so long that every
	// node has seen that by itself.
	staleEvidenceMaxAge = 24 * time.Hour
)

// announceQuarantine publishes, after a random delay, an announcement that
// subject is quarantined for reason, with the evidence of subject made at
// evidenceAt, unless by then an announcement covering that evidence was
// sent or accepted.
func (n *Node) announceQuarantine(subject did.DID, evidenceAt time.Time, reason string) {
	n.goLoop(func(ctx context.Context) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(rand.N(announceJitter)):
		}
		ev, send := n.trust.ClaimAnnouncement(subject, evidenceAt)
		if !send {
			return
		}
		tok, err := attest.SignQuarantine(n.id, &attest.Quarantine{Subject: subject, Reason: reason, Evidence: ev.Raw}, n.now())
		if err == nil {
			err = n.mesh.PublishQuarantine(ctx, tok)
		}
		if err != nil {
			n.log.Debug("quarantine not announced", "event_type", "quarantine_announce_failed", "did", subject.String(), "reason", oneLine(err))
			return
		}
		n.log.Info("quarantine announced", "event_type", "quarantine_announced", "did", subject.String(), "reason", reason)
	})
}

// applyQuarantine is pubsub.Control's ApplyQuarantine: it judges a quarantine
// announcement and quarantines the accused if its own reference values
// condemn the enclosed evidence. An announcement that is not authentic
// (bad signature, evidence the accused did not sign) is refused with an
// error (GossipSub Rejects it); one that is authentic but does not justify
// a quarantine here is refused with pubsub.ErrIgnored (Ignored); one about
// evidence already announced with pubsub.ErrStale.
func (n *Node) applyQuarantine(token []byte) (bool, error) {
	q, err := attest.ParseQuarantine(token)
	if err != nil {
		n.log.Warn("quarantine announcement refused", "event_type", "quarantine_announcement_refused", "reason", oneLine(err), "risk_score", 1.0)
		return false, err
	}
	if q.Announcer == n.id.DID() {
		return true, nil // our own, as published
	}
	announcerPeer, _ := q.Announcer.PeerID()
	log := n.log.With("peer", announcerPeer.String(), "announcer", q.Announcer.String(), "did", q.Subject.String(), "announced_reason", q.Reason)
	ignore := func(kind error, format string, args ...any) (bool, error) {
		reason := fmt.Sprintf(format, args...)
		log.Warn("quarantine announcement ignored", "event_type", "quarantine_announcement_ignored", "reason", reason)
		return false, fmt.Errorf("quarantine of %s announced by %s: %w: %s", q.Subject, q.Announcer, kind, reason)
	}

	if mem, ok := n.Member(announcerPeer); !ok {
		return ignore(pubsub.ErrIgnored, "the announcer is not a member known here")
	} else if mem.Quarantined {
		return ignore(pubsub.ErrIgnored, "the announcer is quarantined here")
	}
	if q.Subject == n.id.DID() {
		return ignore(pubsub.ErrIgnored, "it accuses this node")
	}
	now := n.now()
	if q.Time.After(now.Add(attest.MaxClockSkew)) || now.Sub(q.Time) > n.trust.EvidenceMaxAge() {
		return ignore(pubsub.ErrStale, "announced at %s, outside this node's window", q.Time.Format(time.RFC3339))
	}
	maxAge := n.trust.EvidenceMaxAge()
	if q.Reason == attest.QuarantineStale {
		maxAge = staleEvidenceMaxAge
	}
	ev, err := q.SubjectEvidence(now, maxAge)
	switch {
	case errors.Is(err, attest.ErrStale):
		return ignore(pubsub.ErrStale, "%s", oneLine(err))
	case err != nil:
		log.Warn("quarantine announcement refused", "event_type", "quarantine_announcement_refused", "reason", oneLine(err), "risk_score", 1.0)
		return false, fmt.Errorf("quarantine of %s announced by %s: %w", q.Subject, q.Announcer, err)
	}
	ref := n.references.Current()
	if ref == nil {
		return ignore(pubsub.ErrIgnored, "no reference values in force here")
	}
	subjectPeer, _ := q.Subject.PeerID()
	accused, ok := n.Member(subjectPeer)
	if !ok {
		return ignore(pubsub.ErrIgnored, "the accused is not a member known here")
	}

	res := attest.Verify(ev, ref, nil)
	j, err := n.trust.Announcement(accused.Credential, q.Reason, ev, res, now)
	switch {
	case errors.Is(err, trust.ErrNewerHeld):
		return ignore(pubsub.ErrIgnored, "this node holds newer evidence of the accused (made at %s)", j.HeldAt.Format(time.RFC3339))
	case errors.Is(err, trust.ErrNoEvidence):
		return ignore(pubsub.ErrIgnored, "this node holds no evidence of the accused, so it cannot judge that evidence made at %s is stale; it waits for the accused's own evidence", ev.Time.UTC().Format(time.RFC3339))
	case errors.Is(err, trust.ErrAnnounced):
		return false, fmt.Errorf("%w: quarantine of %s for evidence already announced", pubsub.ErrStale, q.Subject)
	case errors.Is(err, trust.ErrUnjustified) && q.Reason == attest.QuarantineFailed:
		return ignore(pubsub.ErrIgnored, "its evidence passes against reference values v%d here", ref.Version)
	case errors.Is(err, trust.ErrUnjustified):
		return ignore(pubsub.ErrIgnored, "its evidence is not stale here (trust %.2f)", j.Trust)
	case err != nil:
		return false, err
	}
	log.Info("quarantine announcement verified", "event_type", "quarantine_announcement_verified",
		"reason", strings.Join(res.Problems, "; "), "reference_version", ref.Version, "risk_score", 1-j.Trust)
	n.reassess(accused.Credential, "evidence stale: made at "+ev.Time.UTC().Format(time.RFC3339)+" (announced by "+q.Announcer.String()+", checked here)")
	return true, nil
}
