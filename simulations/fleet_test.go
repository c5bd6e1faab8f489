package simulations

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"
)

// fleetLog sends progress lines to the test log.
type fleetLog struct{ t *testing.T }

func (w fleetLog) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// TestFleetDelivers runs the fleet kind on 12 nodes in 3 zones and checks
// that ztmesh and the baseline deliver nearly every map, that latency is
// measured above the link latency, and that the report renders.
func TestFleetDelivers(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two 12-node meshes for ~20 s")
	}
	sc, err := ParseScenario([]byte(`
kind: fleet
nodes: [12]
zones: 3
degree: 3
cross: 1
seed: 7
link: {latency: 5ms}
message_size: 20000
rate: 2
duration: 3s
`))
	if err != nil {
		t.Fatal(err)
	}
	sc.Name = "fleet-test"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pairs, err := fleetSweep(ctx, &Env{Progress: fleetLog{t}}, sc)
	if err != nil {
		t.Fatal(err)
	}
	p := pairs[0]
	for name, r := range map[string]*fleetResult{"ztmesh": p.z, "baseline": p.base} {
		if r.published < 12*5 {
			t.Errorf("%s: %d publications, want at least %d (2 Hz × 3 s × 12 nodes, less jitter)", name, r.published, 12*5)
		}
		if r.expected != r.published*3 {
			t.Errorf("%s: expected %d deliveries for %d publications in zones of 4", name, r.expected, r.published)
		}
		if got := r.ratio(); got < 0.9 {
			t.Errorf("%s: delivery ratio %.3f, want ≥ 0.9 (%d of %d)", name, got, r.delivered, r.expected)
		}
		if p50 := r.pct(0.5); p50 < 5*time.Millisecond {
			t.Errorf("%s: p50 %s is below the 5 ms link latency", name, p50)
		}
		if len(r.warmup) == 0 {
			t.Errorf("%s: no warm-up deliveries", name)
		}
		if r.warmupWhole != 1 || r.warmupRounds < 1 || (r.warmupRounds == 1) != (r.warmupRepeated == 0) {
			t.Errorf("%s: warm-up %d rounds, %d repeated, %.3f of the publishers delivered whole",
				name, r.warmupRounds, r.warmupRepeated, r.warmupWhole)
		}
	}
	secs := fleetReport(sc, false, pairs)
	r := &Report{Title: "fleet test", Sections: secs}
	dir := t.TempDir()
	if err := r.Write(dir, "report.md"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, PlotDir, secs[0].Plots[0].File)); err != nil {
		ents, _ := os.ReadDir(dir)
		t.Log(ents)
		t.Error(err)
	}
	if len(secs[0].Failures) != 0 {
		t.Errorf("fleet goals must be findings, not failed checks: %q", secs[0].Failures)
	}
}

// TestFleetProbe runs scenarios/fleet.yaml at ZTMESH_FLEET_PROBE nodes,
// with ZTMESH_FLEET_RATE (Hz), ZTMESH_FLEET_DURATION and ZTMESH_FLEET_ZONES
// overriding the file,
// and writes the report to ZTMESH_FLEET_OUT (default: a temporary
// directory). It sizes the scenario and feeds `go test -cpuprofile`.
func TestFleetProbe(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("ZTMESH_FLEET_PROBE"))
	if n == 0 {
		t.Skip("set ZTMESH_FLEET_PROBE=N")
	}
	sc, err := LoadScenario("scenarios/fleet.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sc.Nodes = []int{n}
	if v := os.Getenv("ZTMESH_FLEET_RATE"); v != "" {
		if sc.Rate, err = strconv.ParseFloat(v, 64); err != nil {
			t.Fatal(err)
		}
	}
	if v := os.Getenv("ZTMESH_FLEET_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatal(err)
		}
		sc.Duration = Duration(d)
	}
	if v := os.Getenv("ZTMESH_FLEET_ZONES"); v != "" {
		if sc.Zones, err = strconv.Atoi(v); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	pairs, err := fleetSweep(context.Background(), &Env{Progress: fleetLog{t}}, sc)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("took %s", time.Since(start))
	dir := os.Getenv("ZTMESH_FLEET_OUT")
	if dir == "" {
		dir = t.TempDir()
	}
	r := &Report{Title: "fleet probe", Sections: fleetReport(sc, false, pairs)}
	if err := r.Write(dir, "report.md"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "report.md"))
	t.Log("\n" + string(b))
}

// TestFleetLoadCap: under max_offered, a size whose rate would offer more
// publishes at the rate that offers the cap, and only the nodes whose first
// map falls inside the run publish; below the cap nothing changes.
func TestFleetLoadCap(t *testing.T) {
	sc := &Scenario{Name: "cap", Kind: "fleet", Zones: 10, Degree: 2, Rate: 0.02, MaxOffered: 400,
		MessageSize: 1000, Duration: Duration(50 * time.Second), Seed: 3}
	small, err := newFleetLoad(sc, 100, false) // 100 × 0.02 × 9 = 18/s
	if err != nil {
		t.Fatal(err)
	}
	if small.scaled() || small.rate != sc.Rate || len(small.publishers) != 100 {
		t.Fatalf("below the cap: rate %g, %d publishers", small.rate, len(small.publishers))
	}
	big, err := newFleetLoad(sc, 2000, false) // 2,000 × 0.02 × 199 = 7,960/s
	if err != nil {
		t.Fatal(err)
	}
	if !big.scaled() || math.Abs(big.offered()-sc.MaxOffered) > 1e-6 {
		t.Fatalf("above the cap: rate %g offers %g", big.rate, big.offered())
	}
	// Each node publishes its first map at a uniform offset in a period of
	// 1/rate: about runFor × rate × N of them fall inside the run.
	want := 50 * big.rate * 2000
	if got := float64(len(big.publishers)); got < want/2 || got > want*2 {
		t.Fatalf("%v publishers, expected about %.0f", got, want)
	}
	for _, i := range big.publishers {
		if big.jitter[i] >= big.runFor {
			t.Fatalf("node %d publishes first at %s, after the run", i, big.jitter[i])
		}
	}
}

// TestFleetWarmupBatches: the warm-up batches cover every publisher once,
// in order, and each but the last asks for at least fleetWarmupBatch
// deliveries and at most one publisher's worth more.
func TestFleetWarmupBatches(t *testing.T) {
	sc := &Scenario{Name: "batches", Kind: "fleet", Zones: 10, Degree: 2, Rate: 0.02, MaxOffered: 400,
		MessageSize: 1000, Duration: Duration(50 * time.Second), Seed: 3}
	for _, n := range []int{20, 100, 1000} {
		l, err := newFleetLoad(sc, n, false)
		if err != nil {
			t.Fatal(err)
		}
		batches := l.warmupBatches(l.publishers)
		var all []int
		for b, batch := range batches {
			want := 0
			for _, i := range batch {
				want += l.members[l.zoneOf[i]] - 1
			}
			last := batch[len(batch)-1]
			if b < len(batches)-1 && (want < fleetWarmupBatch || want-(l.members[l.zoneOf[last]]-1) >= fleetWarmupBatch) {
				t.Fatalf("%d nodes: batch %d asks for %d deliveries", n, b, want)
			}
			all = append(all, batch...)
		}
		if !slices.Equal(all, l.publishers) {
			t.Fatalf("%d nodes: batches %v do not cover the publishers %v once, in order", n, batches, l.publishers)
		}
	}
}
