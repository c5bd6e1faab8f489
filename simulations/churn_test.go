package simulations

import (
	"strconv"
	"testing"
	"time"
)

// TestChurnScenario runs the churn kind on 12 nodes for a few seconds:
// delivery under churn must stay high, and the split zone's replicas must
// converge after the heal with no write crossing the split before it.
func TestChurnScenario(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 12 nodes for about 50 s")
	}
	secs := runScenario(t, runChurn, "name: churn\nkind: churn\nnodes: [12]\nzones: 2\ndegree: 3\ncross: 1\nlink: {latency: 5ms}\nmessage_size: 256\nrate: 2\nduration: 8s\n", 3*time.Minute)
	traffic, split := secs[0].Tables[0], secs[0].Tables[1]
	if r, _ := strconv.ParseFloat(traffic.Rows[0][3], 64); r < 0.9 {
		t.Errorf("ztmesh delivery under churn %v, want at least 0.9", r)
	}
	if got := split.Rows[0][3]; got != "6 / 6" {
		t.Errorf("replicas converged after the heal: %s, want 6 / 6", got)
	}
	if leaked := split.Rows[0][2]; leaked != "0" {
		t.Errorf("%s writes crossed the split", leaked)
	}
}
