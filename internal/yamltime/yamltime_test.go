package yamltime

import (
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestDurationYAML(t *testing.T) {
	type doc struct {
		D Duration `yaml:"d"`
	}
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"d: 10s", 10 * time.Second, ""},
		{"d: 1m30s", 90 * time.Second, ""},
		{"d: 250ms", 250 * time.Millisecond, ""},
		{"d: 0s", 0, ""},
		{"d: 10", 0, `line 1: "10" is not a duration: write it like 10s`},
		{"\nd: ten seconds", 0, "line 2: "},
	} {
		var got doc
		err := yaml.Unmarshal([]byte(tc.in), &got)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: error %v, want one containing %q", tc.in, err, tc.err)
		case tc.err == "" && (err != nil || time.Duration(got.D) != tc.want):
			t.Errorf("%q: %v, %v; want %v", tc.in, time.Duration(got.D), err, tc.want)
		}
	}
	out, err := yaml.Marshal(doc{D: Duration(90 * time.Second)})
	if err != nil || string(out) != "d: 1m30s\n" {
		t.Errorf("Marshal: %q, %v; want %q", out, err, "d: 1m30s\n")
	}
}
