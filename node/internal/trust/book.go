package trust

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ztmesh/ztmesh/attest"
	"github.com/ztmesh/ztmesh/did"
)

const (
	// QuarantineBelow and ReleaseAbove are the trust thresholds (hysteresis,
	// so a peer near the line does not flap): a peer is quarantined when its
	// trust falls below QuarantineBelow, released when it is back at
	// ReleaseAbove or more; in between, nothing changes.
	QuarantineBelow = 0.3
	ReleaseAbove    = 0.4
	// PenaltyHalfLife is how fast a peer's counts of rejected messages and
	// rate-limit violations decay.
	PenaltyHalfLife = 10 * time.Minute
)

// Config is what a Book needs besides its events.
type Config struct {
	// EvidenceMaxAge is how long a peer has to attest: the grace a peer
	// without evidence gets after reference values arrive or after it is
	// first seen, before it is scored as unattested (the node's: two
	// broadcast intervals and the clock skew). Zero gives no grace.
	EvidenceMaxAge time.Duration
	// Reference returns the reference values in force, nil while there are
	// none: until there are, attestation lowers nobody's trust. A nil func
	// is reference values never in force.
	Reference func() *attest.Reference
	// OnChange, if set, is called, outside the book's lock, after a peer's
	// standing changed for a reason other than the passage of time: new
	// evidence, a rejected message, a rate-limit violation, a quarantine or
	// release, an accepted announcement.
	OnChange func(did.DID)
	// OnChangeAll, if set, is called, outside the book's lock, after a
	// change that touches every peer's standing (reference values applied).
	OnChangeAll func()
}

// Book is a node's trust book (see the package documentation). Create it
// with New.
type Book struct {
	cfg Config

	mu       sync.Mutex
	peers    map[did.DID]*peerTrust
	refAt    time.Time          // when the reference values in force were applied
	rateSeen map[peer.ID]uint64 // the mesh's count of each origin's messages over its rate limit, as last read
}

// peerTrust is what the book knows about one peer's trustworthiness.
type peerTrust struct {
	result      *attest.Result   // of the newest evidence; nil before any, and after new reference values
	evidenceAt  time.Time        // Evidence.Time of the newest evidence
	evidence    *attest.Evidence // the newest evidence, kept after new reference values to be judged again
	rejected    attest.Counter
	rateLimited attest.Counter // in seconds' worth of the peer's allowance
	known       time.Time      // when the book first scored the peer
	announced   time.Time      // Evidence.Time of the newest quarantine announcement sent or accepted about it
	quarantine  string         // reason; "" when not quarantined
}

// New returns an empty book.
func New(cfg Config) *Book {
	return &Book{cfg: cfg, peers: map[did.DID]*peerTrust{}, rateSeen: map[peer.ID]uint64{}}
}

// EvidenceMaxAge is the configured Config.EvidenceMaxAge.
func (b *Book) EvidenceMaxAge() time.Duration { return b.cfg.EvidenceMaxAge }

// Standing is a peer's effective trust with its inputs.
type Standing struct {
	// Trust is the peer's effective trust (attest.EffectiveTrust), 0 to 1.
	Trust float64
	// Attested: its newest evidence passed with a verified TPM quote.
	Attested bool
	// Pending: no evidence yet, and no penalty for that yet.
	Pending bool
	// Rejected and RateLimited are the decayed counts of its rejected
	// messages and rate-limit violations.
	Rejected, RateLimited float64
	// Quarantine is why it is quarantined, "" if it is not.
	Quarantine string
}

// Graylist is GossipSub's opinion of a peer, as of a reassessment: whether
// it ignores the peer for the invalid messages it sent, and its score.
type Graylist struct {
	Listed bool
	Score  float64
}

// Transition is what a reassessment changed.
type Transition struct {
	// Quarantined or Released: the peer's quarantine began or ended.
	Quarantined, Released bool
	// Reason is why the peer is quarantined ("" if it is not).
	Reason string
	// Announce, on a quarantine that others can check from the peer's
	// evidence and that no announcement covered yet, is the announcement's
	// reason (attest.QuarantineFailed or attest.QuarantineStale); "" if
	// there is nothing to announce.
	Announce string
	// EvidenceAt is the time of the peer's newest evidence, which an
	// announcement encloses.
	EvidenceAt time.Time
	// Trust is the peer's effective trust.
	Trust float64
}

// Judgment is the book's judgment of a quarantine announcement.
type Judgment struct {
	// Trust is the accused's trust as if the enclosed evidence were its
	// newest, with what the book knows of it besides.
	Trust float64
	// HeldAt is the time of the newest evidence of the accused held before
	// the announcement.
	HeldAt time.Time
}

// get returns d's entry, creating it (first seen now) if there is none.
// The caller holds b.mu.
func (b *Book) get(d did.DID, now time.Time) *peerTrust {
	t := b.peers[d]
	if t == nil {
		t = &peerTrust{rejected: attest.Counter{HalfLife: PenaltyHalfLife}, rateLimited: attest.Counter{HalfLife: PenaltyHalfLife}, known: now}
		b.peers[d] = t
	}
	return t
}

func (b *Book) reference() *attest.Reference {
	if b.cfg.Reference == nil {
		return nil
	}
	return b.cfg.Reference()
}

func (b *Book) changed(d did.DID) {
	if b.cfg.OnChange != nil {
		b.cfg.OnChange(d)
	}
}

// inputs are a peer's inputs to attest.EffectiveTrust now; the caller
// holds b.mu.
func (b *Book) inputs(cred *did.Credential, t *peerTrust, now time.Time) (attest.TrustInputs, attest.TrustParams) {
	in := attest.TrustInputs{Credential: cred.Claims.TrustScore, AttestedAt: t.evidenceAt,
		Rejected: t.rejected.Value(now), RateLimited: t.rateLimited.Value(now)}
	var params attest.TrustParams
	if b.reference() == nil {
		params.UnattestedFactor = 1 // attestation is not enforced in this mesh yet
	} else {
		in.Attestation = t.result
		in.Pending = t.result == nil && now.Before(b.pendingUntil(t))
	}
	return in, params
}

// pendingUntil is when a peer without evidence stops being pending: the
// later of the reference values' arrival and the first time the book saw
// it, plus the time it needs to attest. The caller holds b.mu.
func (b *Book) pendingUntil(t *peerTrust) time.Time {
	since := t.known
	if b.refAt.After(since) {
		since = b.refAt
	}
	return since.Add(b.cfg.EvidenceMaxAge)
}

// trustOf computes a peer's effective trust now; the caller holds b.mu.
func (b *Book) trustOf(cred *did.Credential, t *peerTrust, now time.Time) float64 {
	in, params := b.inputs(cred, t, now)
	return attest.EffectiveTrust(in, params, now)
}

// staleAlone reports whether a peer's evidence has faded so much that,
// without any penalty, its trust is below QuarantineBelow: a quarantine
// others can check from the evidence. The caller holds b.mu.
func (b *Book) staleAlone(cred *did.Credential, t *peerTrust, now time.Time) bool {
	if t.result == nil || !t.result.OK {
		return false
	}
	in, params := b.inputs(cred, t, now)
	in.Rejected, in.RateLimited = 0, 0
	return attest.EffectiveTrust(in, params, now) < QuarantineBelow
}

// Standing returns the standing now of the holder of cred, a credential
// the caller verified. A peer the book did not know is first seen now.
func (b *Book) Standing(cred *did.Credential, now time.Time) Standing {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.get(cred.Subject, now)
	in, params := b.inputs(cred, t, now)
	return Standing{
		Trust:       attest.EffectiveTrust(in, params, now),
		Attested:    t.result != nil && t.result.OK && t.result.Hardware,
		Pending:     in.Pending,
		Rejected:    in.Rejected,
		RateLimited: in.RateLimited,
		Quarantine:  t.quarantine,
	}
}

// Reassess recomputes the standing of the holder of cred and quarantines
// or releases it: it is quarantined, for why unless a more precise reason
// applies, when its evidence failed, when GossipSub graylisted it (gray)
// or when its trust is below QuarantineBelow; released when none of these
// holds and its trust is at least ReleaseAbove.
func (b *Book) Reassess(cred *did.Credential, why string, gray Graylist, now time.Time) Transition {
	b.mu.Lock()
	t := b.get(cred.Subject, now)
	score := b.trustOf(cred, t, now)
	enforced := b.reference() != nil
	failed := enforced && t.result != nil && !t.result.OK
	var tr Transition
	switch {
	case t.quarantine == "" && (failed || gray.Listed || score < QuarantineBelow):
		t.quarantine = why
		switch {
		case gray.Listed && !failed:
			t.quarantine = fmt.Sprintf("graylisted by GossipSub scoring (score %.0f): it sent invalid messages", gray.Score)
		case failed:
			t.quarantine = "attestation failed: " + strings.Join(t.result.Problems, "; ")
			tr.Announce = attest.QuarantineFailed
		case enforced && b.staleAlone(cred, t, now):
			t.quarantine = "evidence stale: made at " + t.evidenceAt.UTC().Format(time.RFC3339)
			tr.Announce = attest.QuarantineStale
		}
		tr.Quarantined = true
	case t.quarantine != "" && !failed && !gray.Listed && score >= ReleaseAbove:
		t.quarantine = ""
		tr.Released = true
	}
	if !t.evidenceAt.After(t.announced) {
		tr.Announce = "" // covered by an announcement already
	}
	tr.Reason, tr.EvidenceAt, tr.Trust = t.quarantine, t.evidenceAt, score
	b.mu.Unlock()
	if tr.Quarantined || tr.Released {
		b.changed(cred.Subject)
	}
	return tr
}

// Rejected counts a message of d's that validation rejected.
func (b *Book) Rejected(d did.DID, now time.Time) {
	b.mu.Lock()
	b.get(d, now).rejected.Add(1, now)
	b.mu.Unlock()
	b.changed(d)
}

// RateLimited counts rate-limit violations of d, in seconds' worth of its
// allowance (attest.TrustInputs.RateLimited).
func (b *Book) RateLimited(d did.DID, violations float64, now time.Time) {
	b.mu.Lock()
	b.get(d, now).rateLimited.Add(violations, now)
	b.mu.Unlock()
	b.changed(d)
}

// RateLimitDrops takes the mesh's totals of messages dropped over each
// origin's rate limit and returns, for each origin that dropped any since
// the previous call, how many.
func (b *Book) RateLimitDrops(totals map[peer.ID]uint64) map[peer.ID]uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out map[peer.ID]uint64
	for origin, total := range totals {
		dropped := total - b.rateSeen[origin]
		b.rateSeen[origin] = total
		if dropped == 0 {
			continue
		}
		if out == nil {
			out = map[peer.ID]uint64{}
		}
		out[origin] = dropped
	}
	return out
}

// Evidence records the result res of verifying ev, evidence the caller
// parsed and checked was published by its subject, as the subject's
// newest. It refuses evidence not newer than the evidence held
// (ErrNotNewer), unless again: the held evidence judged again against new
// reference values.
func (b *Book) Evidence(ev *attest.Evidence, res attest.Result, again bool, now time.Time) error {
	b.mu.Lock()
	t := b.get(ev.Subject, now)
	if !again && !ev.Time.After(t.evidenceAt) {
		b.mu.Unlock()
		return fmt.Errorf("%w: evidence of %s made at %s", ErrNotNewer, ev.Subject, ev.Time.UTC().Format(time.RFC3339Nano))
	}
	t.result, t.evidenceAt, t.evidence = &res, ev.Time, ev
	b.mu.Unlock()
	b.changed(ev.Subject)
	return nil
}

// Reference records that new reference values were applied now: every
// result is forgotten, and a peer without evidence is pending again for
// EvidenceMaxAge. It returns the evidence held, for the caller to judge
// again (Evidence with again).
func (b *Book) Reference(now time.Time) []*attest.Evidence {
	b.mu.Lock()
	b.refAt = now
	var held []*attest.Evidence
	for _, t := range b.peers {
		t.result = nil // judged again when the peer next attests
		if t.evidence != nil {
			held = append(held, t.evidence)
		}
	}
	b.mu.Unlock()
	if b.cfg.OnChangeAll != nil {
		b.cfg.OnChangeAll()
	}
	return held
}

// Announcement judges a quarantine announcement about the holder of cred,
// announced for reason (attest.QuarantineFailed or
// attest.QuarantineStale), enclosing ev, evidence the caller parsed and
// checked the accused signed, and res, the result of verifying it against
// the reference values in force. It judges the accused as if ev were its
// newest evidence: a failed announcement is justified if ev fails, a stale
// one if the accused's trust is below QuarantineBelow. If the
// announcement is justified, ev is recorded as the accused's newest
// evidence and as announced; the caller then reassesses the accused.
//
// It refuses evidence older than the evidence held (ErrNewerHeld), a stale
// announcement about a peer it holds no evidence of (ErrNoEvidence),
// evidence already announced (ErrAnnounced) and an announcement that is
// not justified (ErrUnjustified). The Judgment is returned in every case.
func (b *Book) Announcement(cred *did.Credential, reason string, ev *attest.Evidence, res attest.Result, now time.Time) (Judgment, error) {
	b.mu.Lock()
	t := b.get(cred.Subject, now)
	j := Judgment{HeldAt: t.evidenceAt}
	if ev.Time.Before(t.evidenceAt) {
		b.mu.Unlock()
		return j, ErrNewerHeld
	}
	// Staleness is judged against what this node saw: with no evidence
	// held (it just restarted, or the accused never reached it), old
	// evidence in an announcement proves nothing, as the accused may have
	// attested since. The book's own pending window decides instead.
	if reason == attest.QuarantineStale && t.evidence == nil {
		b.mu.Unlock()
		return j, ErrNoEvidence
	}
	if !ev.Time.After(t.announced) {
		b.mu.Unlock()
		return j, ErrAnnounced
	}
	trial := *t
	trial.result, trial.evidenceAt = &res, ev.Time
	j.Trust = b.trustOf(cred, &trial, now)
	justified := !res.OK
	if reason == attest.QuarantineStale {
		justified = j.Trust < QuarantineBelow
	}
	if !justified {
		b.mu.Unlock()
		return j, ErrUnjustified
	}
	t.result, t.evidenceAt, t.evidence, t.announced = &res, ev.Time, ev, ev.Time
	b.mu.Unlock()
	b.changed(cred.Subject)
	return j, nil
}

// ClaimAnnouncement is the check before a delayed quarantine announcement
// goes out: if subject is still quarantined, its newest evidence is the
// one made at evidenceAt and no announcement covering it was sent or
// accepted meanwhile, it marks that evidence announced and returns it;
// else it returns false. It returns true once per evidence.
func (b *Book) ClaimAnnouncement(subject did.DID, evidenceAt time.Time) (*attest.Evidence, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.peers[subject]
	if t == nil || t.evidence == nil || !t.evidence.Time.Equal(evidenceAt) || t.quarantine == "" || !evidenceAt.After(t.announced) {
		return nil, false
	}
	t.announced = evidenceAt
	return t.evidence, true
}
