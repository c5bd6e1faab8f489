package attest

import (
	"math"
	"testing"
	"time"
)

func TestEffectiveTrust(t *testing.T) {
	hw := &Result{OK: true, Hardware: true}
	sw := &Result{OK: true}
	failed := &Result{Problems: []string{"binary not allowed"}}
	for _, tc := range []struct {
		name string
		in   TrustInputs
		age  time.Duration
		want float64
	}{
		{"hardware-rooted, fresh: the credential's score", TrustInputs{Credential: 0.9, Attestation: hw}, time.Minute, 0.9},
		{"software-only costs 20%", TrustInputs{Credential: 0.9, Attestation: sw}, time.Minute, 0.72},
		{"not attested yet: half", TrustInputs{Credential: 0.9}, 0, 0.45},
		{"not attested yet but pending: not penalized", TrustInputs{Credential: 0.9, Pending: true}, 0, 0.9},
		{"pending does not excuse failed evidence", TrustInputs{Credential: 0.9, Pending: true, Attestation: failed}, 0, 0},
		{"rate-limit violations: 10 seconds at twice the limit", TrustInputs{Credential: 0.9, Attestation: hw, RateLimited: 10}, 0, 0.9 * math.Exp(-0.5)},
		{"failed attestation: zero, whatever the credential", TrustInputs{Credential: 1, Attestation: failed}, 0, 0},
		{"evidence at the maximum age still counts fully", TrustInputs{Credential: 0.9, Attestation: hw}, 10 * time.Minute, 0.9},
		{"stale evidence: halved one half-life past the maximum age", TrustInputs{Credential: 0.9, Attestation: hw}, 15 * time.Minute, 0.45},
		{"stale evidence: a quarter two half-lives past", TrustInputs{Credential: 0.9, Attestation: hw}, 20 * time.Minute, 0.225},
		{"three rejected messages", TrustInputs{Credential: 0.9, Attestation: hw, Rejected: 3}, 0, 0.9 * math.Exp(-0.3)},
		{"rejected messages and rate-limit violations add up", TrustInputs{Credential: 0.9, Attestation: hw, Rejected: 2, RateLimited: 4}, 0, 0.9 * math.Exp(-0.4)},
		{"credential score out of range is clamped", TrustInputs{Credential: 1.5, Attestation: hw}, 0, 1},
		{"negative counts do not raise trust", TrustInputs{Credential: 0.5, Attestation: hw, Rejected: -10}, 0, 0.5},
		{"NaN credential is zero", TrustInputs{Credential: math.NaN(), Attestation: hw}, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.AttestedAt = t0
			got := EffectiveTrust(tc.in, TrustParams{}, t0.Add(tc.age))
			if math.Abs(got-tc.want) > 1e-9 {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestEffectiveTrustParams(t *testing.T) {
	in := TrustInputs{Credential: 1, Attestation: &Result{OK: true}, AttestedAt: t0}
	p := TrustParams{SoftwareFactor: 0.5, MaxAge: time.Minute, StaleHalfLife: time.Minute}
	if got := EffectiveTrust(in, p, t0.Add(2*time.Minute)); math.Abs(got-0.25) > 1e-9 {
		t.Errorf("got %v, want 0.25", got)
	}
}

func TestCounterDecays(t *testing.T) {
	c := Counter{HalfLife: 10 * time.Minute}
	if c.Value(t0) != 0 {
		t.Fatal("new counter not empty")
	}
	c.Add(4, t0)
	c.Add(4, t0)
	for _, tc := range []struct {
		after time.Duration
		want  float64
	}{{0, 8}, {10 * time.Minute, 4}, {30 * time.Minute, 1}, {-time.Minute, 8}} {
		if got := c.Value(t0.Add(tc.after)); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("after %v: %v, want %v", tc.after, got, tc.want)
		}
	}
	c.Add(1, t0.Add(10*time.Minute))
	if got := c.Value(t0.Add(20 * time.Minute)); math.Abs(got-2.5) > 1e-9 {
		t.Errorf("after adding 1 at half-life: %v, want 2.5", got)
	}
}

// TestTrustRecovers: a peer whose messages were rejected regains its score
// once it behaves, without anyone resetting it.
func TestTrustRecovers(t *testing.T) {
	rejected := Counter{HalfLife: 10 * time.Minute}
	rejected.Add(20, t0)
	score := func(at time.Time) float64 {
		return EffectiveTrust(TrustInputs{Credential: 0.9, Attestation: &Result{OK: true, Hardware: true},
			AttestedAt: at, Rejected: rejected.Value(at)}, TrustParams{}, at)
	}
	if s := score(t0); s > 0.2 {
		t.Errorf("right after 20 rejections: %v", s)
	}
	if s := score(t0.Add(time.Hour)); s < 0.85 {
		t.Errorf("an hour later: %v, want nearly 0.9", s)
	}
}
