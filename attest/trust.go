package attest

import (
	"math"
	"time"
)

// TrustInputs are what a node knows about a peer when it scores it.
type TrustInputs struct {
	// Credential is the trust score of the peer's valid credential, 0 to 1
	// (0 without a valid credential).
	Credential float64
	// Attestation is the result of verifying the peer's latest evidence,
	// nil if there is none yet.
	Attestation *Result
	// AttestedAt is when that evidence was made (Evidence.Time).
	AttestedAt time.Time
	// Pending, for a peer without evidence, means it has not had the time
	// to attest yet (reference values just arrived, or it just joined): it
	// is not penalized until the caller stops saying so.
	Pending bool
	// Rejected is the decayed count (see Counter) of the peer's messages
	// that validation rejected.
	Rejected float64
	// RateLimited is the decayed count of the peer's rate-limit
	// violations, in units of its allowance: the messages dropped over its
	// limit divided by the limit's rate per second. A peer sending at
	// twice its limit for 10 s has 10; a peer that stays within its burst
	// has none.
	RateLimited float64
}

// TrustParams tune EffectiveTrust. A zero field takes its default, given
// in brackets.
type TrustParams struct {
	// SoftwareFactor multiplies the score of a peer whose evidence passed
	// but is software-only [0.8]. Hardware-rooted evidence counts 1.
	SoftwareFactor float64
	// UnattestedFactor multiplies the score of a peer that has not
	// attested yet and is no longer Pending [0.5].
	UnattestedFactor float64
	// MaxAge is how long evidence counts fully [10m]; after that its weight
	// halves every StaleHalfLife [5m].
	MaxAge, StaleHalfLife time.Duration
	// RejectWeight and RateLimitWeight are the penalty per (decayed)
	// rejected message [0.1] and rate-limit violation [0.05].
	RejectWeight, RateLimitWeight float64
}

func (p TrustParams) withDefaults() TrustParams {
	def := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	def(&p.SoftwareFactor, 0.8)
	def(&p.UnattestedFactor, 0.5)
	def(&p.RejectWeight, 0.1)
	def(&p.RateLimitWeight, 0.05)
	if p.MaxAge == 0 {
		p.MaxAge = 10 * time.Minute
	}
	if p.StaleHalfLife == 0 {
		p.StaleHalfLife = 5 * time.Minute
	}
	return p
}

// EffectiveTrust scores a peer from 0 to 1 at time now:
//
//	trust = credential × attestation × freshness × exp(−(wr·rejected + wv·rateLimited))
//
// attestation is 1 for evidence that passed with a verified TPM quote,
// SoftwareFactor for evidence that passed software-only, 0 for evidence
// that failed, and before the first evidence 1 while the peer is Pending,
// then UnattestedFactor. freshness is 1 while the evidence is at most
// MaxAge old and then halves every StaleHalfLife, so a peer that stops
// attesting fades out. rejected and rateLimited are TrustInputs' decayed
// counts, weighted by wr = RejectWeight and wv = RateLimitWeight; they
// decay (Counter), so a peer that stops misbehaving recovers.
// docs/ATTESTATION.md explains the choice and gives examples.
func EffectiveTrust(in TrustInputs, p TrustParams, now time.Time) float64 {
	p = p.withDefaults()
	t := clamp01(in.Credential)
	switch a := in.Attestation; {
	case a == nil && in.Pending:
		// no evidence yet, and no penalty yet
	case a == nil:
		t *= p.UnattestedFactor
	case !a.OK:
		return 0
	case !a.Hardware:
		t *= p.SoftwareFactor
	}
	if in.Attestation != nil {
		if age := now.Sub(in.AttestedAt); age > p.MaxAge {
			t *= math.Exp2(-float64(age-p.MaxAge) / float64(p.StaleHalfLife))
		}
	}
	penalty := p.RejectWeight*math.Max(in.Rejected, 0) + p.RateLimitWeight*math.Max(in.RateLimited, 0)
	return clamp01(t * math.Exp(-penalty))
}

func clamp01(v float64) float64 {
	switch {
	case math.IsNaN(v) || v < 0:
		return 0
	case v > 1:
		return 1
	}
	return v
}

// Counter counts events with exponential decay: each event adds to the
// count, and the count halves every HalfLife, so old misbehaviour weighs
// less and less. The zero value (with HalfLife set) is an empty counter. It
// is not safe for concurrent use.
type Counter struct {
	HalfLife time.Duration
	v        float64
	at       time.Time
}

// Add adds n events at time now.
func (c *Counter) Add(n float64, now time.Time) {
	c.v = c.Value(now) + n
	c.at = now
}

// Value returns the decayed count at time now.
func (c *Counter) Value(now time.Time) float64 {
	if c.v == 0 || c.HalfLife <= 0 {
		return c.v
	}
	elapsed := now.Sub(c.at)
	if elapsed <= 0 {
		return c.v
	}
	return c.v * math.Exp2(-float64(elapsed)/float64(c.HalfLife))
}
