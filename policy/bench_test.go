package policy

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/rego"
)

// The decision benchmarks sit next to BenchmarkOPAEvalBaseline, a plain
// prepared OPA query on the same default policy with a map input and no
// cache, measured in the same run: report the ratios. p50-ns is the median
// time per call (timed in batches of 64 on the cached path, where one call is
// close to the cost of reading the clock).

func BenchmarkDecideCached(b *testing.B) {
	e := newEngine(b)
	ctx := context.Background()
	in := zoneInput(ActionPublish, "north", member())
	if d := e.Decide(ctx, in); !d.Allow {
		b.Fatal(d.Reasons)
	}
	loopMedian(b, 64, func() { e.Decide(ctx, in) })
}

func BenchmarkDecideUncached(b *testing.B) {
	e := newEngine(b, WithCacheSize(0))
	ctx := context.Background()
	in := zoneInput(ActionPublish, "north", member())
	loopMedian(b, 1, func() {
		if d := e.Decide(ctx, in); !d.Allow {
			b.Fatal(d.Reasons)
		}
	})
}

// BenchmarkDecideUncachedDenied is a denial, which evaluates every reason
// rule (the decision log is off: a discarding logger).
func BenchmarkDecideUncachedDenied(b *testing.B) {
	e := newEngine(b, WithCacheSize(0))
	ctx := context.Background()
	in := zoneInput(ActionPublish, "south", with(member(), func(s *Subject) { s.TrustScore = 0.1 }))
	loopMedian(b, 1, func() {
		if d := e.Decide(ctx, in); d.Allow {
			b.Fatal("allowed")
		}
	})
}

// BenchmarkDecideParallel decides from every P at once: of every 16
// decisions, 15 are for one of 64 hot credentials (cache hits after warm-up)
// and one is for a credential never seen before (a miss, then an insert into
// a full cache).
func BenchmarkDecideParallel(b *testing.B) {
	e := newEngine(b, WithCacheSize(1024))
	ctx := context.Background()
	hot := make([]*Input, 64)
	for i := range hot {
		hot[i] = zoneInput(ActionPublish, "north", with(member(), func(s *Subject) { s.CredentialID = fmt.Sprint("urn:hot:", i) }))
		e.Decide(ctx, hot[i])
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var n int
		cold := zoneInput(ActionPublish, "north", member())
		seed := fmt.Sprintf("%p", cold)
		for pb.Next() {
			n++
			in := hot[n%len(hot)]
			if n%16 == 0 {
				cold.Subject.CredentialID = fmt.Sprint("urn:cold:", seed, n)
				in = cold
			}
			if d := e.Decide(ctx, in); !d.Allow {
				b.Error(d.Reasons)
				return
			}
		}
	})
}

// BenchmarkOPAEvalBaseline is what a plain OPA integration costs: the same
// default policy, a prepared query, the input as a map[string]any converted
// by OPA on every call, no cache.
func BenchmarkOPAEvalBaseline(b *testing.B) {
	ctx := context.Background()
	r := rego.New(rego.Query("data.ztmesh.authz.allow"), rego.Module("default.rego", defaultRego))
	pq, err := r.PrepareForEval(ctx)
	if err != nil {
		b.Fatal(err)
	}
	in := zoneInput(ActionPublish, "north", member())
	loopMedian(b, 1, func() {
		input := map[string]any{
			"action": string(in.Action), "mesh": in.Mesh, "zone": in.Zone, "channel": in.Channel,
			"topic": in.Topic, "state": in.State, "key": in.Key, "now": in.Now.Format(time.RFC3339),
			"subject": map[string]any{
				"did": in.Subject.DID, "role": in.Subject.Role, "trust_score": in.Subject.TrustScore,
				"zones": in.Subject.Zones, "software_version": in.Subject.SoftwareVersion,
				"capabilities": in.Subject.Capabilities, "attested": in.Subject.Attested,
				"quarantined": in.Subject.Quarantined,
			},
		}
		rs, err := pq.Eval(ctx, rego.EvalInput(input))
		if err != nil || !rs.Allowed() {
			b.Fatal(err, rs)
		}
	})
}

// loopMedian runs f once per iteration and reports, besides ns/op, the
// median of the time per call over batches of batch calls (p50-ns). The
// samples are preallocated, so the loop itself does not allocate.
func loopMedian(b *testing.B, batch int, f func()) {
	samples := make([]time.Duration, 0, 1<<14)
	b.ReportAllocs()
	i := 0
	start := time.Now()
	for b.Loop() {
		f()
		if i++; i == batch {
			now := time.Now()
			if len(samples) < cap(samples) {
				samples = append(samples, now.Sub(start)/time.Duration(batch))
			}
			start, i = now, 0
		}
	}
	if len(samples) > 0 {
		slices.Sort(samples)
		b.ReportMetric(float64(samples[len(samples)/2].Nanoseconds()), "p50-ns")
	}
}
