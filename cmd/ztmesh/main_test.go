package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
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
			// flipsig IN OUT writes IN with one letter of its JWS signature
			// changed to another valid base64url letter (a flipped bit may
			// make it invalid base64: 'A'^1 is '@').
			"flipsig": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 2 {
					ts.Fatalf("usage: flipsig IN OUT")
				}
				tok := []byte(strings.TrimSpace(ts.ReadFile(args[0])))
				i := bytes.LastIndexByte(tok, '.') + 3
				if tok[i] == 'A' {
					tok[i] = 'B'
				} else {
					tok[i] = 'A'
				}
				ts.Check(os.WriteFile(ts.MkAbs(args[1]), tok, 0o644))
			},
			// tamperbundle IN OUT writes the policy bundle IN with its version
			// raised by 100 in the payload, without signing it again.
			"tamperbundle": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 2 {
					ts.Fatalf("usage: tamperbundle IN OUT")
				}
				var env map[string]string
				ts.Check(json.Unmarshal([]byte(ts.ReadFile(args[0])), &env))
				payload, err := base64.StdEncoding.DecodeString(env["payload"])
				ts.Check(err)
				var p map[string]any
				ts.Check(json.Unmarshal(payload, &p))
				p["version"] = p["version"].(float64) + 100
				payload, err = json.Marshal(p)
				ts.Check(err)
				env["payload"] = base64.StdEncoding.EncodeToString(payload)
				out, err := json.Marshal(env)
				ts.Check(err)
				ts.Check(os.WriteFile(ts.MkAbs(args[1]), out, 0o644))
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
		{[]string{"policy", "test"}, 2},
		{[]string{"policy", "check"}, 2},
		{[]string{"policy", "nope"}, 2},
		{[]string{"policy", "verify", "--trust-issuer", "did:key:nope", "x"}, 2},
		{[]string{"policy", "check", t.TempDir()}, 1},
		{[]string{"cred"}, 2},
		{[]string{"cred", "--help"}, 0},
		{[]string{"policy", "-h"}, 0},
		{[]string{"help", "state"}, 0},
		{[]string{"help", "cred", "issue"}, 0},
		{[]string{"version"}, 0},
		{[]string{"--version"}, 0},
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

// TestGroupHelp: every command group answers --help with its commands.
func TestGroupHelp(t *testing.T) {
	groups := map[string]bool{}
	for _, c := range commands() {
		if w := strings.Fields(c.name); len(w) == 2 {
			groups[w[0]] = true
		}
	}
	for g := range groups {
		var out, errOut bytes.Buffer
		if code := run([]string{g, "--help"}, &out, &errOut); code != 0 {
			t.Errorf("ztmesh %s --help: exit %d", g, code)
		}
		for _, c := range groupCommands(g) {
			if !strings.Contains(out.String(), c.name) {
				t.Errorf("ztmesh %s --help does not list %q:\n%s", g, c.name, out.String())
			}
		}
	}
	if len(groups) < 4 {
		t.Fatalf("found groups %v", groups)
	}
}
