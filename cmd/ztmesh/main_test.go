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
		"ztmesh": func() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) },
	})
}

// TestScripts runs the CLI end to end: each testdata/script/*.txtar runs the
// real ztmesh command (this test binary re-executed as ztmesh) in a fresh
// directory.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// envfile VAR FILE sets $VAR to FILE's content, trimmed.
			"envfile": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 2 {
					ts.Fatalf("usage: envfile VAR FILE")
				}
				ts.Setenv(args[0], strings.TrimSpace(ts.ReadFile(args[1])))
			},
			// flipsig IN OUT writes IN with one bit of its JWS signature flipped.
			"flipsig": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 2 {
					ts.Fatalf("usage: flipsig IN OUT")
				}
				tok := []byte(strings.TrimSpace(ts.ReadFile(args[0])))
				i := bytes.LastIndexByte(tok, '.') + 3
				tok[i] ^= 1
				ts.Check(os.WriteFile(ts.MkAbs(args[1]), tok, 0o644))
			},
		},
	})
}

func TestExitCodes(t *testing.T) {
	var out, errOut bytes.Buffer
	for _, tc := range []struct {
		args []string
		want int
	}{
		{nil, 0},
		{[]string{"help"}, 0},
		{[]string{"cred", "issue", "--help"}, 0},
		{[]string{"nope"}, 2},
		{[]string{"cred", "nope"}, 2},
		{[]string{"cred", "issue"}, 2},
		{[]string{"cred", "verify", "--bogus"}, 2},
		{[]string{"id", "show", "--dir", t.TempDir()}, 1},
	} {
		out.Reset()
		errOut.Reset()
		if got := run(tc.args, &out, &errOut); got != tc.want {
			t.Errorf("ztmesh %v: exit %d, want %d (stderr %q)", tc.args, got, tc.want, errOut.String())
		}
		if tc.want != 0 && strings.Count(strings.TrimSpace(errOut.String()), "\n") != 0 {
			t.Errorf("ztmesh %v: reason is not one line: %q", tc.args, errOut.String())
		}
	}
}
