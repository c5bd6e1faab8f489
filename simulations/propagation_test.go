package simulations

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPropagationScenario runs the propagation kind on 12 nodes: every
// node must enforce every push, and the table must carry a row for each.
func TestPropagationScenario(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 12 nodes for about 20 s")
	}
	secs := runScenario(t, runPropagation, "name: prop\nkind: propagation\nnodes: [12]\nzones: 2\ndegree: 3\ncross: 1\nlink: {latency: 5ms}\n", 2*time.Minute)
	rows := secs[0].Tables[0].Rows
	for _, what := range []string{"revocation", "policy bundle", "reference values", "quarantine"} {
		found := false
		for _, r := range rows {
			if r[1] == what {
				found = true
				// Every node but the revoked one; for the quarantine, every
				// node that knew the accused as a member (at least its
				// neighbours).
				var got, want int
				fmt.Sscanf(r[2], "%d / %d", &got, &want)
				if got != want || (what != "quarantine" && want != 11) || want < 3 {
					t.Errorf("%s enforced by %s", what, r[2])
				}
			}
		}
		if !found {
			t.Errorf("no row for %s", what)
		}
	}
}

// progressToLog sends progress lines to the test log.
type progressToLog struct{ t *testing.T }

func (w progressToLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// TestProbeScenarioFile runs ZTMESH_SIM_FILE (a scenario file of the
// propagation, churn or hardening kind) with its quick settings, or with
// ZTMESH_SIM_NODES nodes (with ZTMESH_SIM_STANDARD=1, standard durations),
// and logs the report: for sizing runs by hand.
func TestProbeScenarioFile(t *testing.T) {
	path := os.Getenv("ZTMESH_SIM_FILE")
	if path == "" {
		t.Skip("set ZTMESH_SIM_FILE=scenarios/NAME.yaml")
	}
	sc, err := LoadScenario(path)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := strconv.Atoi(os.Getenv("ZTMESH_SIM_NODES")); n > 0 {
		sc.QuickNodes, sc.Nodes = []int{n}, []int{n}
	}
	start := time.Now()
	standard := os.Getenv("ZTMESH_SIM_STANDARD") != "" // standard durations
	r := Run(context.Background(), []*Scenario{sc}, Options{Quick: !standard, Progress: progressToLog{t}})
	t.Logf("took %s", time.Since(start))
	var md strings.Builder
	r.Markdown(&md)
	t.Log(md.String())
	if dir := os.Getenv("ZTMESH_SIM_OUT"); dir != "" {
		if err := r.Write(dir, "report.md"); err != nil {
			t.Fatal(err)
		}
	}
}
