package simulations

import (
	"math"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestParseVmRSS(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want uint64
		ok   bool
	}{
		{"linux status", "Name:\tztmesh-sim\nVmPeak:\t 900000 kB\nVmRSS:\t  412345 kB\nThreads:\t12\n", 412345 * 1024, true},
		{"last line without newline", "Name:\tx\nVmRSS:\t1 kB", 1024, true},
		{"no VmRSS line (kernel thread)", "Name:\tkthreadd\nState:\tS\n", 0, false},
		{"unit other than kB", "VmRSS:\t412 MB\n", 0, false},
		{"not a number", "VmRSS:\t4x2 kB\n", 0, false},
		{"absurd size", "VmRSS:\t99999999999999999 kB\n", 0, false},
		{"missing unit", "VmRSS:\t412\n", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseVmRSS([]byte(tc.in))
			if (err == nil) != tc.ok || got != tc.want {
				t.Fatalf("parseVmRSS = %d, %v; want %d (ok %v)", got, err, tc.want, tc.ok)
			}
		})
	}
	if _, err := parseVmRSS([]byte(strings.Repeat("x", maxProcStatus+1))); err == nil {
		t.Fatal("a status over the size limit parsed")
	}
}

func FuzzParseVmRSS(f *testing.F) {
	f.Add([]byte("Name:\tztmesh-sim\nVmRSS:\t  412345 kB\n"))
	f.Add([]byte("VmRSS:\t1 kB"))
	f.Add([]byte("VmRSS:\n"))
	f.Add([]byte("VmRSS: 18446744073709551615 kB\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := parseVmRSS(b)
		if err != nil && n != 0 {
			t.Fatalf("error %v with a value %d", err, n)
		}
		if err == nil && n%1024 != 0 {
			t.Fatalf("%d bytes is not a whole number of kB", n)
		}
	})
}

func TestUsageFormat(t *testing.T) {
	row := usage{peakRSS: 412_000_000, cores: 1.314}
	idle := usage{peakRSS: 380_400_000, cores: 1.1}
	if got, want := row.against(idle), "412 MB / 1.31 cores (idle 380 MB / 1.10)"; got != want {
		t.Errorf("against = %q, want %q", got, want)
	}
	if got, want := (usage{cores: math.NaN()}).against(idle), "? MB / ? cores (idle 380 MB / 1.10)"; got != want {
		t.Errorf("unknown usage = %q, want %q", got, want)
	}
}

// TestMeasureUsage: a window in which the process burns CPU reports CPU
// use above zero and, on Linux, a resident set.
func TestMeasureUsage(t *testing.T) {
	w := measureUsage()
	before, ok := processCPU()
	if !ok {
		t.Fatalf("no CPU time on %s", runtime.GOOS)
	}
	x := 0
	for {
		for i := range 1_000_000 {
			x ^= i
		}
		if now, _ := processCPU(); now-before > 0 {
			break
		}
	}
	u := w.stop()
	if !(u.cores > 0) {
		t.Errorf("cores = %v after burning CPU (%d)", u.cores, x)
	}
	if runtime.GOOS == "linux" && u.peakRSS == 0 {
		t.Error("no resident set measured on Linux")
	}
}

func TestStrictFailures(t *testing.T) {
	for _, tc := range []struct {
		name        string
		row         string
		delivery    float64
		quarantined []string
		failures    int
	}{
		{"strict row, clean", "sync-flood", 0.995, nil, 0},
		{"strict row, honest node quarantined", "time-edge", 1, []string{"did:key:zA"}, 1},
		{"strict row, delivery below 0.99", "control-flood", 0.985, nil, 1},
		{"strict row, no delivery measured", "forged-addresses", math.NaN(), nil, 1},
		{"strict row, both", "anti-entropy-junk", 0.5, []string{"did:key:zA", "did:key:zB"}, 2},
		{"other row keeps its rules", "flood", 0.5, []string{"did:key:zA"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := strictFailures(tc.row, tc.delivery, tc.quarantined); len(got) != tc.failures {
				t.Fatalf("failures %q, want %d", got, tc.failures)
			}
		})
	}
}

func TestHonestQuarantined(t *testing.T) {
	t1 := time.Date(2026, 12, 6, 1, 0, 0, 0, time.UTC)
	l := &lab{honestDIDs: map[string]bool{"did:key:zA": true, "did:key:zB": true, "did:key:zC": true}}
	ev := &atkEvents{list: []atkEvent{
		{at: t1, node: "did:key:zA", typ: "peer_quarantined", didOf: "did:key:zB"},                   // counted
		{at: t1.Add(time.Second), node: "did:key:zC", typ: "peer_quarantined", didOf: "did:key:zB"},  // the same victim again
		{at: t1, node: "did:key:zA", typ: "peer_quarantined", didOf: "did:key:zEvil"},                // an attacker: fine
		{at: t1, node: "did:key:zEvil", typ: "peer_quarantined", didOf: "did:key:zC"},                // said by an attacker
		{at: t1.Add(-time.Minute), node: "did:key:zA", typ: "peer_quarantined", didOf: "did:key:zC"}, // before the window
		{at: t1, node: "did:key:zA", typ: "peer_dropped", didOf: "did:key:zC"},                       // not a quarantine
	}}
	got := ev.honestQuarantined(l, t1.Add(-time.Second), t1.Add(time.Minute))
	if len(got) != 1 || got[0] != "did:key:zB" {
		t.Fatalf("honest quarantined = %v, want [did:key:zB]", got)
	}
}
