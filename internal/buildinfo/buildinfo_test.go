package buildinfo

import (
	"runtime"
	"strings"
	"testing"
)

func TestString(t *testing.T) {
	for _, tc := range []struct {
		in   Info
		want string
	}{
		{Info{Version: "v1.2.3", Commit: "0123456789ab", Date: "2026-12-05T10:00:00Z", Go: "go1.26.8"},
			"v1.2.3 (commit 0123456789ab, built 2026-12-05T10:00:00Z, go1.26.8)"},
		{Info{Version: "devel", Go: "go1.26.8"}, "devel (go1.26.8)"},
	} {
		if got := tc.in.String(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestGet: a test binary has no stamped version; what the toolchain knows
// fills in, and the Go version is always there.
func TestGet(t *testing.T) {
	i := Get()
	if i.Go != runtime.Version() || i.Version == "" {
		t.Fatalf("%+v", i)
	}
	if !strings.HasPrefix(Line("ztmeshd"), "ztmeshd "+i.Version+" (") {
		t.Fatalf("line %q", Line("ztmeshd"))
	}
}
