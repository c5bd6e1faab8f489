package trust

import (
	"crypto/rand"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ztmesh/ztmesh/attest"
	"github.com/ztmesh/ztmesh/did"
)

// t0 is the tests' epoch; every time is t0 plus an offset.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// maxAge is the node's default evidence window: two 1-minute broadcast
// intervals and the 2-minute clock skew.
const maxAge = 4 * time.Minute

var (
	passed   = attest.Result{OK: true, ReferenceVersion: 1}                 // software-only: 0.8 of the credential
	hardware = attest.Result{OK: true, Hardware: true, ReferenceVersion: 1} // the credential's full score
	failed   = attest.Result{ReferenceVersion: 1, Problems: []string{"binary 0bad is not an allowed one"}}
)

// fixture is a book with a switchable reference, counting its hooks.
type fixture struct {
	*Book
	ref       *attest.Reference // in force, or nil
	changes   map[did.DID]int
	changeAll int
	mu        sync.Mutex
}

func newFixture(t *testing.T, enforced bool) *fixture {
	t.Helper()
	f := &fixture{changes: map[did.DID]int{}}
	if enforced {
		f.ref = &attest.Reference{Version: 1}
	}
	f.Book = New(Config{
		EvidenceMaxAge: maxAge,
		Reference:      func() *attest.Reference { return f.ref },
		OnChange: func(d did.DID) {
			f.mu.Lock()
			f.changes[d]++
			f.mu.Unlock()
		},
		OnChangeAll: func() {
			f.mu.Lock()
			f.changeAll++
			f.mu.Unlock()
		},
	})
	return f
}

func (f *fixture) changesOf(d did.DID) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changes[d]
}

// newPeer returns the credential of a fresh peer with trust score 0.9.
func newPeer(t *testing.T) *did.Credential {
	t.Helper()
	id, err := did.GenerateIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &did.Credential{Subject: id.DID(), Claims: did.Claims{TrustScore: 0.9}}
}

func evidence(cred *did.Credential, at time.Time) *attest.Evidence {
	return &attest.Evidence{Subject: cred.Subject, Time: at, Raw: []byte("evidence of " + at.Format(time.RFC3339Nano))}
}

func near(got, want float64) bool { return math.Abs(got-want) < 1e-9 }

// TestPenaltiesDecay: rejected messages and rate-limit violations lower
// trust (weights 0.1 and 0.05), and halve in weight every 10 minutes.
func TestPenaltiesDecay(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		rejected, rateLimited float64       // counted at t0
		after                 time.Duration // then read at t0 + after
		wantRejected, wantRL  float64
	}{
		{"nothing counted, full trust", 0, 0, 0, 0, 0},
		{"ten rejections at once", 10, 0, 0, 10, 0},
		{"ten rejections one half-life on", 10, 0, 10 * time.Minute, 5, 0},
		{"ten rejections three half-lives on", 10, 0, 30 * time.Minute, 1.25, 0},
		{"twenty violations at once", 0, 20, 0, 0, 20},
		{"twenty violations two half-lives on", 0, 20, 20 * time.Minute, 0, 5},
		{"both, five minutes on", 4, 8, 5 * time.Minute, 4 / math.Sqrt2, 8 / math.Sqrt2},
		{"a day on, nothing left to speak of", 10, 20, 24 * time.Hour, 10 * math.Exp2(-144), 20 * math.Exp2(-144)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, false)
			p := newPeer(t)
			for range int(tc.rejected) {
				f.Rejected(p.Subject, t0)
			}
			if tc.rateLimited > 0 {
				f.RateLimited(p.Subject, tc.rateLimited, t0)
			}
			st := f.Standing(p, t0.Add(tc.after))
			want := 0.9 * math.Exp(-(0.1*tc.wantRejected + 0.05*tc.wantRL))
			if !near(st.Rejected, tc.wantRejected) || !near(st.RateLimited, tc.wantRL) || !near(st.Trust, want) {
				t.Fatalf("standing %+v, want rejected %v, rate-limited %v, trust %v", st, tc.wantRejected, tc.wantRL, want)
			}
		})
	}
}

// step is one event of a scripted history, then a reassessment.
type step struct {
	name string
	at   time.Duration // after t0
	do   func(f *fixture, p *did.Credential, now time.Time)
	gray Graylist
	want string // "quarantined", "released" or "" (no transition)
	// reason, if set, must be in the quarantine reason after the step.
	reason string
}

func (s step) run(t *testing.T, f *fixture, p *did.Credential) Transition {
	t.Helper()
	now := t0.Add(s.at)
	if s.do != nil {
		s.do(f, p, now)
	}
	tr := f.Reassess(p, "test: trust fell below the threshold", s.gray, now)
	got := ""
	switch {
	case tr.Quarantined && tr.Released:
		t.Fatalf("%s: quarantined and released at once: %+v", s.name, tr)
	case tr.Quarantined:
		got = "quarantined"
	case tr.Released:
		got = "released"
	}
	if got != s.want {
		t.Fatalf("%s: transition %q, want %q (%+v)", s.name, got, s.want, tr)
	}
	if st := f.Standing(p, now); !near(st.Trust, tr.Trust) || st.Quarantine != tr.Reason {
		t.Fatalf("%s: transition %+v disagrees with the standing %+v", s.name, tr, st)
	}
	if s.reason != "" && !strings.Contains(tr.Reason, s.reason) {
		t.Fatalf("%s: reason %q, want it to contain %q", s.name, tr.Reason, s.reason)
	}
	return tr
}

func violations(v float64) func(*fixture, *did.Credential, time.Time) {
	return func(f *fixture, p *did.Credential, now time.Time) { f.RateLimited(p.Subject, v, now) }
}

func attests(res attest.Result, madeAgo time.Duration) func(*fixture, *did.Credential, time.Time) {
	return func(f *fixture, p *did.Credential, now time.Time) {
		if err := f.Evidence(evidence(p, now.Add(-madeAgo)), res, false, now); err != nil {
			panic(err)
		}
	}
}

// TestQuarantineHysteresis scripts peers' histories and checks each
// reassessment's transition: a peer is quarantined below 0.3, released at
// 0.4 or more, and between the two nothing changes.
func TestQuarantineHysteresis(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ref   bool
		steps []step
	}{
		{"rate-limit violations quarantine, decay releases", false, []step{
			{name: "19 violations: 0.9·e^-0.95 = 0.35, above the line", do: violations(19)},
			{name: "6 more: 0.26, quarantined", do: violations(6), want: "quarantined", reason: "test: trust fell below"},
			{name: "3 min on: 0.33, between the thresholds, still quarantined", at: 3 * time.Minute},
			{name: "5 min on: 0.37, still quarantined", at: 5 * time.Minute},
			{name: "7 min on: 0.42, released", at: 7 * time.Minute, want: "released"},
			{name: "8 min on: nothing more", at: 8 * time.Minute},
		}},
		{"rejections quarantine", false, []step{
			{name: "10 rejections: 0.33", do: func(f *fixture, p *did.Credential, now time.Time) {
				for range 10 {
					f.Rejected(p.Subject, now)
				}
			}},
			{name: "2 more: 0.27", do: func(f *fixture, p *did.Credential, now time.Time) {
				f.Rejected(p.Subject, now)
				f.Rejected(p.Subject, now)
			}, want: "quarantined"},
			{name: "a half-life on: 0.49", at: 10 * time.Minute, want: "released"},
		}},
		{"failing evidence, then passing evidence", true, []step{
			{name: "fails", do: attests(failed, 0), want: "quarantined", reason: "attestation failed: binary 0bad"},
			{name: "no penalty besides, still failed", at: time.Minute},
			{name: "passes", at: 2 * time.Minute, do: attests(passed, 0), want: "released"},
		}},
		{"failing evidence weighs nothing without reference values", false, []step{
			{name: "fails", do: attests(failed, 0)},
		}},
		{"evidence fades", true, []step{
			{name: "passes with hardware: 0.9", do: attests(hardware, 0)},
			{name: "15 min on: 0.45", at: 15 * time.Minute},
			{name: "20 min on: 0.225, stale", at: 20 * time.Minute, want: "quarantined", reason: "evidence stale: made at " + t0.Format(time.RFC3339)},
			{name: "fresh evidence: released", at: 21 * time.Minute, do: attests(passed, 0), want: "released"},
		}},
		{"graylisted", false, []step{
			{name: "graylisted, trust untouched", gray: Graylist{Listed: true, Score: -1234.4}, want: "quarantined",
				reason: "graylisted by GossipSub scoring (score -1234): it sent invalid messages"},
			{name: "still graylisted: not released", at: time.Minute, gray: Graylist{Listed: true, Score: -900}},
			{name: "no longer graylisted: released", at: 2 * time.Minute, want: "released"},
		}},
		{"graylisted with failing evidence: the evidence is the reason", true, []step{
			{name: "fails", do: attests(failed, 0), gray: Graylist{Listed: true, Score: -5000}, want: "quarantined", reason: "attestation failed"},
			{name: "passes, still graylisted", at: time.Minute, do: attests(passed, 0), gray: Graylist{Listed: true, Score: -5000}},
			{name: "passes, graylist over", at: 2 * time.Minute, want: "released"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.ref)
			p := newPeer(t)
			for _, s := range tc.steps {
				s.run(t, f, p)
			}
		})
	}
}

// TestQuarantineAnnounced: a quarantine others can check from the peer's
// evidence is to be announced, once per evidence; one for penalties is
// not.
func TestQuarantineAnnounced(t *testing.T) {
	for _, tc := range []struct {
		name     string
		steps    []step
		announce string // of the last step
	}{
		{"failed evidence", []step{
			{name: "fails", do: attests(failed, 0), want: "quarantined"},
		}, attest.QuarantineFailed},
		{"faded evidence", []step{
			{name: "passes", do: attests(passed, 0)},
			{name: "20 min on", at: 20 * time.Minute, want: "quarantined"},
		}, attest.QuarantineStale},
		{"penalties, with fresh evidence", []step{
			{name: "passes", do: attests(passed, 0)},
			{name: "25 violations", do: violations(25), want: "quarantined"},
		}, ""},
		{"penalties, with evidence fading but not yet faded alone", []step{
			{name: "passes", do: attests(passed, 0)},
			{name: "15 min on: 0.36, 10 violations: 0.22", at: 15 * time.Minute, do: violations(10), want: "quarantined", reason: "test: trust fell below"},
		}, ""},
		{"without reference values", []step{
			{name: "25 violations", do: violations(25), want: "quarantined"},
		}, ""},
		{"graylisted", []step{
			{name: "graylisted", gray: Graylist{Listed: true, Score: -100}, want: "quarantined"},
		}, ""},
		{"failed evidence whose announcement was accepted", []step{
			{name: "announced by another node", do: func(f *fixture, p *did.Credential, now time.Time) {
				if _, err := f.Announcement(p, attest.QuarantineFailed, evidence(p, now), failed, now); err != nil {
					panic(err)
				}
			}, want: "quarantined"},
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, !strings.Contains(tc.name, "without reference"))
			p := newPeer(t)
			var tr Transition
			for _, s := range tc.steps {
				tr = s.run(t, f, p)
			}
			if tr.Announce != tc.announce {
				t.Fatalf("announce %q, want %q (%+v)", tr.Announce, tc.announce, tr)
			}
			if tc.announce == "" {
				return
			}
			ev, ok := f.ClaimAnnouncement(p.Subject, tr.EvidenceAt)
			if !ok || !ev.Time.Equal(tr.EvidenceAt) {
				t.Fatalf("the announcement was not claimed: %v %v", ev, ok)
			}
			if _, ok := f.ClaimAnnouncement(p.Subject, tr.EvidenceAt); ok {
				t.Fatal("the same announcement claimed twice")
			}
		})
	}
}

// TestClaimAnnouncement: a delayed announcement goes out only if, by then,
// its evidence is still the newest, the peer still quarantined, and no
// announcement covered it.
func TestClaimAnnouncement(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after func(f *fixture, p *did.Credential) // between the quarantine and the claim
		ok    bool
	}{
		{"nothing happened meanwhile", nil, true},
		{"newer evidence meanwhile", func(f *fixture, p *did.Credential) {
			attests(failed, 0)(f, p, t0.Add(time.Second))
		}, false},
		{"released meanwhile", func(f *fixture, p *did.Credential) {
			attests(passed, 0)(f, p, t0.Add(time.Second))
			f.Reassess(p, "test", Graylist{}, t0.Add(time.Second))
		}, false},
		{"another node's announcement accepted meanwhile", func(f *fixture, p *did.Credential) {
			if _, err := f.Announcement(p, attest.QuarantineFailed, evidence(p, t0), failed, t0.Add(time.Second)); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"claimed already", func(f *fixture, p *did.Credential) {
			f.ClaimAnnouncement(p.Subject, t0)
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, true)
			p := newPeer(t)
			tr := step{do: attests(failed, 0), want: "quarantined"}.run(t, f, p)
			if tc.after != nil {
				tc.after(f, p)
			}
			if _, ok := f.ClaimAnnouncement(p.Subject, tr.EvidenceAt); ok != tc.ok {
				t.Fatalf("claimed %v, want %v", ok, tc.ok)
			}
		})
	}
	f := newFixture(t, true)
	if _, ok := f.ClaimAnnouncement(newPeer(t).Subject, t0); ok {
		t.Fatal("claimed an announcement about a peer the book does not know")
	}
}

// TestPendingGrace: until reference values are in force nobody is
// penalized for not attesting; after they arrive, a peer without evidence
// is pending for EvidenceMaxAge from the later of their arrival and its
// first sighting, and then scored as unattested (0.9 × 0.5).
func TestPendingGrace(t *testing.T) {
	type event struct {
		at   time.Duration
		what string // "seen", "reference", "evidence"
	}
	for _, tc := range []struct {
		name        string
		events      []event
		at          time.Duration
		wantPending bool
		wantTrust   float64
	}{
		{"no reference values: not pending, not penalized", []event{{0, "seen"}}, time.Hour, false, 0.9},
		{"seen, reference values just arrived", []event{{0, "seen"}, {time.Hour, "reference"}}, time.Hour, true, 0.9},
		{"seen, reference values arrived 3 min ago", []event{{0, "seen"}, {time.Hour, "reference"}}, time.Hour + 3*time.Minute, true, 0.9},
		{"seen, reference values arrived 4 min ago: time is up", []event{{0, "seen"}, {time.Hour, "reference"}}, time.Hour + maxAge, false, 0.45},
		{"first seen after the reference values: grace from then", []event{{0, "reference"}, {time.Hour, "seen"}}, time.Hour + 3*time.Minute, true, 0.9},
		{"first seen after the reference values, 5 min ago", []event{{0, "reference"}, {time.Hour, "seen"}}, time.Hour + 5*time.Minute, false, 0.45},
		{"new reference values restart the grace", []event{{0, "seen"}, {0, "reference"}, {time.Hour, "reference"}}, time.Hour + time.Minute, true, 0.9},
		{"evidence ends it", []event{{0, "seen"}, {0, "reference"}, {time.Minute, "evidence"}}, 2 * time.Minute, false, 0.72},
		{"new reference values forget the result: pending again", []event{{0, "reference"}, {time.Minute, "evidence"}, {time.Hour, "reference"}}, time.Hour, true, 0.9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, false)
			p := newPeer(t)
			for _, e := range tc.events {
				now := t0.Add(e.at)
				switch e.what {
				case "seen":
					f.Standing(p, now)
				case "reference":
					f.ref = &attest.Reference{Version: 1}
					f.Reference(now)
				case "evidence":
					if err := f.Evidence(evidence(p, now), passed, false, now); err != nil {
						t.Fatal(err)
					}
				}
			}
			st := f.Standing(p, t0.Add(tc.at))
			if st.Pending != tc.wantPending || !near(st.Trust, tc.wantTrust) {
				t.Fatalf("standing %+v, want pending %v, trust %v", st, tc.wantPending, tc.wantTrust)
			}
		})
	}
}

// TestReferenceReturnsHeldEvidence: new reference values forget every
// result and return the evidence held, to be judged again (and then
// accepted although not newer).
func TestReferenceReturnsHeldEvidence(t *testing.T) {
	f := newFixture(t, true)
	p, q, r := newPeer(t), newPeer(t), newPeer(t)
	for _, c := range []*did.Credential{p, q} {
		if err := f.Evidence(evidence(c, t0), failed, false, t0); err != nil {
			t.Fatal(err)
		}
	}
	f.Standing(r, t0) // known, no evidence
	held := f.Reference(t0.Add(time.Minute))
	if len(held) != 2 {
		t.Fatalf("%d pieces of evidence held, want 2", len(held))
	}
	if st := f.Standing(p, t0.Add(time.Minute)); !st.Pending || st.Trust != 0.9 {
		t.Fatalf("the failed result was not forgotten: %+v", st)
	}
	for _, ev := range held {
		if err := f.Evidence(ev, passed, true, t0.Add(time.Minute)); err != nil {
			t.Fatalf("judged again: %v", err)
		}
	}
	if st := f.Standing(p, t0.Add(time.Minute)); st.Pending || !near(st.Trust, 0.72) {
		t.Fatalf("after judging again: %+v", st)
	}
}

// TestEvidenceMustBeNewer: evidence not newer than the evidence held is
// refused, unless it is the held evidence judged again.
func TestEvidenceMustBeNewer(t *testing.T) {
	for _, tc := range []struct {
		name  string
		at    time.Duration // of the second evidence; the first is at t0
		again bool
		err   error
	}{
		{"newer", time.Second, false, nil},
		{"the same time", 0, false, ErrNotNewer},
		{"older", -time.Second, false, ErrNotNewer},
		{"the same, judged again", 0, true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, true)
			p := newPeer(t)
			if err := f.Evidence(evidence(p, t0), passed, false, t0); err != nil {
				t.Fatal(err)
			}
			err := f.Evidence(evidence(p, t0.Add(tc.at)), failed, tc.again, t0.Add(time.Minute))
			if !errors.Is(err, tc.err) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			wantTrust := 0.0 // the failed result recorded
			if tc.err != nil {
				wantTrust = 0.72
			}
			if st := f.Standing(p, t0.Add(time.Minute)); !near(st.Trust, wantTrust) {
				t.Fatalf("trust %v, want %v", st.Trust, wantTrust)
			}
		})
	}
}

// TestAnnouncementJudged: the book judges an announcement's evidence as if
// it were the accused's newest, and records it only if that justifies the
// announced quarantine.
func TestAnnouncementJudged(t *testing.T) {
	now := t0.Add(time.Hour)
	for _, tc := range []struct {
		name      string
		held      *attest.Result // evidence held, made 10 s ago
		announced bool           // the held evidence was announced
		reason    string
		res       attest.Result
		madeAgo   time.Duration // of the enclosed evidence
		err       error
		wantTrust float64 // Judgment.Trust
	}{
		{"failed, justified", nil, false, attest.QuarantineFailed, failed, 0, nil, 0},
		{"failed, but it passes here", nil, false, attest.QuarantineFailed, passed, 0, ErrUnjustified, 0.72},
		{"stale, justified: 30 min old", &passed, false, attest.QuarantineStale, passed, 30 * time.Minute, nil, 0.72 / 16},
		{"stale, but fresh here", &passed, false, attest.QuarantineStale, passed, time.Minute, ErrUnjustified, 0.72},
		{"stale, 15 min old: 0.36 is not below 0.3", &passed, false, attest.QuarantineStale, passed, 15 * time.Minute, ErrUnjustified, 0.36},
		// A node that holds no evidence of the accused (it just restarted)
		// cannot tell stale evidence from evidence it never saw replaced.
		{"stale, but no evidence held here", nil, false, attest.QuarantineStale, passed, 30 * time.Minute, ErrNoEvidence, 0},
		{"older than the evidence held", &passed, false, attest.QuarantineFailed, failed, time.Minute, ErrNewerHeld, 0},
		{"the evidence held, failing", &failed, false, attest.QuarantineFailed, failed, 10 * time.Second, nil, 0},
		{"the evidence held, already announced", &failed, true, attest.QuarantineFailed, failed, 10 * time.Second, ErrAnnounced, 0},
		{"newer than the evidence held and announced", &failed, true, attest.QuarantineFailed, failed, 0, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, true)
			p := newPeer(t)
			heldAt := now.Add(-10 * time.Second)
			if tc.reason == attest.QuarantineStale {
				// The node's own evidence is as old as the enclosed one
				// (or older): the accused went silent for it too.
				heldAt = now.Add(-tc.madeAgo - time.Second)
			}
			if tc.held != nil {
				if err := f.Evidence(evidence(p, heldAt), *tc.held, false, heldAt); err != nil {
					t.Fatal(err)
				}
				if tc.announced {
					f.Reassess(p, "test", Graylist{}, heldAt)
					if _, ok := f.ClaimAnnouncement(p.Subject, heldAt); !ok {
						t.Fatal("not claimed")
					}
				}
			}
			before := f.Standing(p, now)
			changes := f.changesOf(p.Subject)
			ev := evidence(p, now.Add(-tc.madeAgo))
			j, err := f.Announcement(p, tc.reason, ev, tc.res, now)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if tc.err == ErrNewerHeld && !j.HeldAt.Equal(heldAt) {
				t.Fatalf("held at %v, want %v", j.HeldAt, heldAt)
			}
			if tc.err == nil || tc.err == ErrUnjustified {
				if !near(j.Trust, tc.wantTrust) {
					t.Fatalf("judged trust %v, want %v", j.Trust, tc.wantTrust)
				}
			}
			after := f.Standing(p, now)
			if tc.err != nil {
				if after != before || f.changesOf(p.Subject) != changes {
					t.Fatalf("a refused announcement changed the standing: %+v, then %+v", before, after)
				}
				return
			}
			if !near(after.Trust, tc.wantTrust) || f.changesOf(p.Subject) != changes+1 {
				t.Fatalf("accepted, but standing %+v, %d changes", after, f.changesOf(p.Subject)-changes)
			}
			if _, err := f.Announcement(p, tc.reason, ev, tc.res, now); !errors.Is(err, ErrAnnounced) {
				t.Fatalf("the same announcement again: %v", err)
			}
			if err := f.Evidence(ev, tc.res, false, now); !errors.Is(err, ErrNotNewer) {
				t.Fatalf("the announced evidence is not held as the newest: %v", err)
			}
		})
	}
}

// TestHooks: OnChange follows each change of a peer's standing other than
// the passage of time, OnChangeAll new reference values; both are called
// outside the book's lock (here they read the book).
func TestHooks(t *testing.T) {
	p := newPeer(t)
	var b *Book
	var changes, all int
	b = New(Config{
		EvidenceMaxAge: maxAge,
		Reference:      func() *attest.Reference { return &attest.Reference{Version: 1} },
		OnChange: func(d did.DID) {
			if d != p.Subject {
				t.Errorf("change of %s", d)
			}
			b.Standing(p, t0) // deadlocks if called under the lock
			changes++
		},
		OnChangeAll: func() {
			b.Standing(p, t0)
			all++
		},
	})
	for i, tc := range []struct {
		name        string
		do          func(now time.Time)
		change, all int
	}{
		{"first sighting", func(now time.Time) { b.Standing(p, now) }, 0, 0},
		{"rejection", func(now time.Time) { b.Rejected(p.Subject, now) }, 1, 0},
		{"rate-limit violation", func(now time.Time) { b.RateLimited(p.Subject, 3, now) }, 1, 0},
		{"reassessment without a transition", func(now time.Time) { b.Reassess(p, "test", Graylist{}, now) }, 0, 0},
		{"evidence", func(now time.Time) { _ = b.Evidence(evidence(p, now), failed, false, now) }, 1, 0},
		{"evidence refused", func(now time.Time) { _ = b.Evidence(evidence(p, now.Add(-time.Hour)), failed, false, now) }, 0, 0},
		{"quarantine", func(now time.Time) { b.Reassess(p, "test", Graylist{}, now) }, 1, 0},
		{"announcement claimed", func(time.Time) {
			if _, ok := b.ClaimAnnouncement(p.Subject, t0.Add(4*time.Minute)); !ok {
				t.Error("not claimed")
			}
		}, 0, 0},
		{"announcement refused", func(now time.Time) {
			_, _ = b.Announcement(p, attest.QuarantineFailed, evidence(p, t0.Add(time.Minute)), failed, now)
		}, 0, 0},
		{"announcement accepted", func(now time.Time) {
			_, _ = b.Announcement(p, attest.QuarantineFailed, evidence(p, now), failed, now)
		}, 1, 0},
		{"reference values", func(now time.Time) { b.Reference(now) }, 0, 1},
		{"release", func(now time.Time) { b.Reassess(p, "test", Graylist{}, now) }, 1, 0},
		{"time passes", func(now time.Time) { b.Standing(p, now.Add(time.Hour)) }, 0, 0},
	} {
		c, a := changes, all
		tc.do(t0.Add(time.Duration(i) * time.Minute)) // step i at minute i: the evidence is made at minute 4
		if changes-c != tc.change || all-a != tc.all {
			t.Errorf("%s: OnChange called %d times, OnChangeAll %d; want %d and %d", tc.name, changes-c, all-a, tc.change, tc.all)
		}
	}
}

// TestRateLimitDrops: the book turns the mesh's running totals into what
// each origin dropped since the last reading.
func TestRateLimitDrops(t *testing.T) {
	b := New(Config{})
	p1, p2 := peer.ID("origin-1"), peer.ID("origin-2")
	for _, tc := range []struct {
		name   string
		totals map[peer.ID]uint64
		want   map[peer.ID]uint64
	}{
		{"first reading", map[peer.ID]uint64{p1: 10}, map[peer.ID]uint64{p1: 10}},
		{"nothing new", map[peer.ID]uint64{p1: 10}, nil},
		{"one more origin", map[peer.ID]uint64{p1: 15, p2: 3}, map[peer.ID]uint64{p1: 5, p2: 3}},
		{"nothing read", nil, nil},
	} {
		got := b.RateLimitDrops(tc.totals)
		if len(got) != len(tc.want) {
			t.Fatalf("%s: %v, want %v", tc.name, got, tc.want)
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Fatalf("%s: %v, want %v", tc.name, got, tc.want)
			}
		}
	}
}

// TestConcurrentUse: events and queries from many goroutines (run with
// -race).
func TestConcurrentUse(t *testing.T) {
	f := newFixture(t, true)
	peers := []*did.Credential{newPeer(t), newPeer(t), newPeer(t)}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 50 {
				p := peers[(i+j)%len(peers)]
				now := t0.Add(time.Duration(i*50+j) * time.Second)
				f.Rejected(p.Subject, now)
				_ = f.Evidence(evidence(p, now), passed, false, now)
				f.Reassess(p, "test", Graylist{}, now)
				f.Standing(p, now)
				f.ClaimAnnouncement(p.Subject, now)
				if j%20 == 0 {
					f.Reference(now)
				}
			}
		})
	}
	wg.Wait()
}
