package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"ztmesh-sim": func() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) },
	})
}

// TestScripts runs the command end to end: each testdata/script/*.txtar
// runs the real ztmesh-sim (this test binary re-executed) in a fresh
// directory.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{Dir: "testdata/script"})
}

func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int
	}{
		{nil, 0},
		{[]string{"help"}, 0},
		{[]string{"--help"}, 0},
		{[]string{"run", "--help"}, 0},
		{[]string{"nope"}, 2},
		{[]string{"run"}, 2},
		{[]string{"run", "--bogus"}, 2},
		{[]string{"run", t.TempDir()}, 1},
	} {
		var out, errOut bytes.Buffer
		if got := run(tc.args, &out, &errOut); got != tc.want {
			t.Errorf("ztmesh-sim %v: exit %d, want %d (stderr %q)", tc.args, got, tc.want, errOut.String())
		}
		if tc.want != 0 && strings.Count(strings.TrimSpace(errOut.String()), "\n") != 0 {
			t.Errorf("ztmesh-sim %v: reason is not one line: %q", tc.args, errOut.String())
		}
	}
}
