package attest

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMeasureRunningBinary(t *testing.T) {
	start := t0.Add(-time.Hour)
	m, err := Measure(MeasureOptions{Config: []byte("mesh: x\n"), Start: start, Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := HashFile(exe); m.BinarySHA256 != want {
		t.Errorf("binary hash %s, want the test binary's %s", m.BinarySHA256, want)
	}
	if m.GoVersion != runtime.Version() {
		t.Errorf("Go version %q, want %q", m.GoVersion, runtime.Version())
	}
	if !slices.IsSortedFunc(m.Deps, func(a, b Module) int { return strings.Compare(a.Path, b.Path) }) {
		t.Error("dependencies not sorted")
	}
	// Test binaries record the main module but no dependencies
	// (TestMeasureOptions checks those).
	if m.MainModule.Path != "github.com/ztmesh/ztmesh" {
		t.Errorf("main module %+v", m.MainModule)
	}
	if m.ConfigSHA256 != HashBytes([]byte("mesh: x\n")) || m.Uptime != time.Hour {
		t.Errorf("config hash %s, uptime %v", m.ConfigSHA256, m.Uptime)
	}
	// What Measure returns, Sign accepts.
	signed(t, m, nil)
}

func TestMeasureOptions(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "ztmeshd")
	os.WriteFile(exe, []byte("binary"), 0o755)
	bi := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/ztmesh/ztmesh", Version: "v1.4.0"},
		Deps: []*debug.Module{
			{Path: "z.org/last", Version: "v1.0.0", Sum: "h1:z"},
			{Path: "a.org/first", Version: "v1.0.0", Sum: "h1:a",
				Replace: &debug.Module{Path: "github.com/fork/first", Version: "v1.0.1", Sum: "h1:f"}},
		},
	}
	m, err := Measure(MeasureOptions{Executable: exe, BuildInfo: bi, ConfigSHA256: hash("c"), PolicySHA256: hash("p")})
	if err != nil {
		t.Fatal(err)
	}
	if m.BinarySHA256 != HashBytes([]byte("binary")) {
		t.Errorf("binary hash %s", m.BinarySHA256)
	}
	want := []Module{
		{Path: "a.org/first", Version: "v1.0.0", Sum: "h1:a", Replace: &Module{Path: "github.com/fork/first", Version: "v1.0.1", Sum: "h1:f"}},
		{Path: "z.org/last", Version: "v1.0.0", Sum: "h1:z"},
	}
	if len(m.Deps) != 2 || *m.Deps[0].Replace != *want[0].Replace || m.Deps[1] != want[1] || m.Deps[0].EffectiveVersion() != "v1.0.1" {
		t.Errorf("deps %+v, want %+v", m.Deps, want)
	}
	if m.Uptime != 0 {
		t.Errorf("uptime %v without a start time", m.Uptime)
	}

	for _, tc := range []struct {
		name string
		opts MeasureOptions
		want error
	}{
		{"config and its hash both given", MeasureOptions{BinarySHA256: hash("b"), BuildInfo: bi, Config: []byte{}, ConfigSHA256: hash("c")}, nil},
		{"config hash not hex", MeasureOptions{BinarySHA256: hash("b"), BuildInfo: bi, ConfigSHA256: "abc"}, ErrMalformed},
		{"policy hash not hex", MeasureOptions{BinarySHA256: hash("b"), BuildInfo: bi, PolicySHA256: "abc"}, ErrMalformed},
		{"binary hash not hex", MeasureOptions{BinarySHA256: "abc", BuildInfo: bi}, ErrMalformed},
		{"executable missing", MeasureOptions{Executable: filepath.Join(t.TempDir(), "gone"), BuildInfo: bi}, os.ErrNotExist},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Measure(tc.opts)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestHashPolicy(t *testing.T) {
	a := map[string]string{"a.rego": "package a\n", "b.rego": "package b\n"}
	b := map[string]string{"b.rego": "package b\n", "a.rego": "package a\n"}
	if HashPolicy(a) != HashPolicy(b) {
		t.Error("hash depends on map order")
	}
	// Moving bytes between a name and a source is another policy.
	if HashPolicy(map[string]string{"a.rego": "xy"}) == HashPolicy(map[string]string{"a.regox": "y"}) {
		t.Error("name/source boundary is ambiguous")
	}
	if HashPolicy(nil) != HashPolicy(map[string]string{}) || HashPolicy(nil) == HashBytes(nil) {
		t.Error("empty policy hash")
	}
	if !isHexSHA256(HashPolicy(a)) {
		t.Error("not lowercase hex SHA-256")
	}
}
