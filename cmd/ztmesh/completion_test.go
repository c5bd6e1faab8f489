package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestBashCompletion sources the generated script in a real bash and asks
// it to complete: groups, a group's commands, a command's flags.
func TestBashCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal("bash is needed to test the bash completion:", err)
	}
	var script bytes.Buffer
	if code := run([]string{"completion", "bash"}, &script, os.Stderr); code != 0 {
		t.Fatalf("exit %d", code)
	}
	path := filepath.Join(t.TempDir(), "ztmesh.bash")
	os.WriteFile(path, script.Bytes(), 0o644)
	complete := func(words ...string) []string {
		t.Helper()
		var arr []string
		for _, w := range words {
			arr = append(arr, "'"+w+"'")
		}
		sh := "source " + path + "; COMP_WORDS=(" + strings.Join(arr, " ") + "); COMP_CWORD=" +
			strconv.Itoa(len(words)-1) + "; _ztmesh; printf '%s\\n' \"${COMPREPLY[@]}\""
		out, err := exec.Command(bash, "--norc", "-c", sh).CombinedOutput()
		if err != nil {
			t.Fatalf("bash: %v: %s", err, out)
		}
		return strings.Fields(string(out))
	}
	for _, tc := range []struct {
		words []string
		want  []string
	}{
		{[]string{"ztmesh", "cr"}, []string{"cred"}},
		{[]string{"ztmesh", "cred", ""}, []string{"issue", "verify", "inspect", "revoke", "install"}},
		{[]string{"ztmesh", "cred", "revoke", "--is"}, []string{"--issuer-dir"}},
		{[]string{"ztmesh", "status", "--j"}, []string{"--json"}},
		{[]string{"ztmesh", "completion", "f"}, []string{"fish"}},
	} {
		got := complete(tc.words...)
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("complete %q: %v, want %v", tc.words, got, tc.want)
		}
	}
}

// TestCompletionScripts: every shell gets a script naming every command;
// an unknown shell is a usage error.
func TestCompletionScripts(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		var out bytes.Buffer
		if code := run([]string{"completion", sh}, &out, os.Stderr); code != 0 {
			t.Fatalf("%s: exit %d", sh, code)
		}
		for _, c := range commands() {
			if w := strings.Fields(c.name); !strings.Contains(out.String(), w[len(w)-1]) {
				t.Errorf("%s completion lacks %q", sh, c.name)
			}
		}
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"completion", "tcsh"}, &out, &errOut); code != 2 {
		t.Fatalf("tcsh: exit %d", code)
	}
}
