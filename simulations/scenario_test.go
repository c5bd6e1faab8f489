package simulations

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestScenarioChecks: a scenario file with a mistake is refused with the
// field it got wrong, and every standard scenario parses.
func TestScenarioChecks(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"kind: fleet\nnodes: [10]\nnodse: [3]\n", "nodse"},
		{"kind: flet\nnodes: [10]\n", "kind"},
		{"kind: fleet\nnodes: [1]\n", "outside 2..20000"},
		{"kind: fleet\n", "nodes"},
		{"kind: attacks\nnodes: [10]\nrate_limit: {per_second: 10, burst: -1}\n", "rate_limit"},
		{"kind: attacks\nnodes: [10]\nrate_limit: {per_second: .nan}\n", "rate_limit"},
		{"kind: churn\nnodes: [10]\nlink: {transport: tcp}\n", "tcp"},
		{"kind: fleet\nnodes: [10]\nmessage_size: 2000000\n", "message_size"},
	} {
		if _, err := ParseScenario([]byte(tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error about %s", tc.yaml, err, tc.want)
		}
	}
	files, _ := filepath.Glob("scenarios/*.yaml")
	if len(files) < 5 {
		t.Fatalf("standard scenarios: %v", files)
	}
	large, _ := filepath.Glob("large/*.yaml")
	if len(large) == 0 {
		t.Fatal("no scenarios in large/")
	}
	for _, f := range append(files, large...) {
		sc, err := LoadScenario(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if f == "scenarios/attacks.yaml" && sc.RateLimit.PerSecond != 50 {
			t.Errorf("attacks.yaml rate_limit: %+v", sc.RateLimit)
		}
	}
}
