package node

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// docMetrics reads docs/METRICS.md's table: metric name to its label names.
func docMetrics(t *testing.T) map[string][]string {
	t.Helper()
	data, err := os.ReadFile("../docs/METRICS.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("^\\| `(ztmesh_[a-z_]+)` \\| [a-z]+ \\|([^|]*)\\|")
	label := regexp.MustCompile("`([a-z_]+)`")
	out := map[string][]string{}
	for _, line := range strings.Split(string(data), "\n") {
		m := row.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		var labels []string
		for _, part := range strings.Split(m[2], ",") {
			// "`outcome`: accepted, refused" names one label; the values after
			// the colon are not labels.
			name, _, _ := strings.Cut(part, ":")
			if l := label.FindStringSubmatch(name); l != nil && !strings.Contains(part, "pubsub/") {
				labels = append(labels, l[1])
			}
		}
		out[m[1]] = labels
	}
	return out
}

// TestMetricsDocumented: every metric family a running node serves (after
// a handshake, so the labelled ones exist) is in docs/METRICS.md with the
// same labels, and every metric there exists in the code.
func TestMetricsDocumented(t *testing.T) {
	doc := docMetrics(t)
	if len(doc) < 10 {
		t.Fatalf("read only %d metrics from docs/METRICS.md", len(doc))
	}
	m := newMesh(t)
	a, b := m.start(), m.start()
	connect(t, a, b)
	eventually(t, 10*time.Second, "a verifies b", func() bool { _, ok := a.Member(b.host.ID()); return ok })
	a.metrics.attestation("unchecked")
	a.metrics.quarantine("released")
	a.metrics.refusal("expired")
	mfs, err := a.metrics.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	served := map[string]bool{}
	for _, mf := range mfs {
		name := mf.GetName()
		if strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") {
			continue
		}
		served[name] = true
		want, ok := doc[name]
		if !ok {
			t.Errorf("%s is served but not documented in docs/METRICS.md", name)
			continue
		}
		for _, mt := range mf.Metric {
			for _, l := range mt.Label {
				if !slices.Contains(want, l.GetName()) {
					t.Errorf("%s has label %q, documented labels %v", name, l.GetName(), want)
				}
			}
		}
	}
	src := ""
	for _, f := range []string{"metrics.go", "health.go"} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src += string(data)
	}
	for name := range doc {
		if !served[name] && !strings.Contains(src, `"`+name+`"`) {
			t.Errorf("docs/METRICS.md documents %s, which the code does not have", name)
		}
	}
}
