package simulations

import (
	"context"
	"strings"
	"testing"
	"time"
)

// runScenario parses a scenario, runs it with run within limit, logs its
// report and fails the test for each failed check of the report.
func runScenario(t *testing.T, run RunFunc, yaml string, limit time.Duration) []*Section {
	t.Helper()
	sc, err := ParseScenario([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	secs, err := run(ctx, &Env{Progress: progressToLog{t}}, sc)
	if err != nil {
		t.Fatal(err)
	}
	var md strings.Builder
	if err := (&Report{Sections: secs}).Markdown(&md); err != nil {
		t.Fatal(err)
	}
	t.Log(md.String())
	for _, s := range secs {
		for _, f := range s.Failures {
			t.Error(f)
		}
	}
	return secs
}
