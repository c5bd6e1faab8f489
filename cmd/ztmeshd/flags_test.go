package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ztmesh/ztmesh/internal/cli"
)

// TestListFlagsSplitCommas pins ztmeshd's list flags to ztmesh's meaning:
// --trust-issuer A,B is --trust-issuer A --trust-issuer B.
func TestListFlagsSplitCommas(t *testing.T) {
	var comma, repeated listFlag
	fs := flag.NewFlagSet("ztmeshd", flag.ContinueOnError)
	fs.Var(&comma, "a", "")
	fs.Var(&repeated, "b", "")
	if err := fs.Parse([]string{"--a", "did:key:z6MkA,did:key:z6MkB", "--b", "did:key:z6MkA", "--b", "did:key:z6MkB"}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(comma, repeated) || len(comma) != 2 {
		t.Errorf("--a A,B gave %q, --b A --b B gave %q", comma, repeated)
	}
}

// TestCommandLine: --help and --version exit 0 on stdout; a flag error is
// one line, a usage error (exit 2), with a hint for durations.
func TestCommandLine(t *testing.T) {
	var out bytes.Buffer
	for _, tc := range []struct {
		args  []string
		want  error
		words string
	}{
		{[]string{"--help"}, cli.ErrHelp, ""},
		{[]string{"--version"}, cli.ErrHelp, ""},
		{[]string{"--listne"}, cli.ErrUsage, "listne"},
		{[]string{"--auth-grace", "10"}, cli.ErrUsage, "10s"},
		{[]string{"--dir", "d", "extra"}, cli.ErrUsage, "unexpected argument"},
	} {
		out.Reset()
		_, err := parseFlags(tc.args, &out)
		if !errors.Is(err, tc.want) {
			t.Errorf("%v: %v, want %v", tc.args, err, tc.want)
			continue
		}
		if tc.want == cli.ErrUsage {
			if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, tc.words) {
				t.Errorf("%v: %q is not one line naming %q", tc.args, msg, tc.words)
			}
			if out.Len() != 0 {
				t.Errorf("%v: printed %d bytes of usage on an error", tc.args, out.Len())
			}
		}
	}
	out.Reset()
	parseFlags([]string{"--version"}, &out)
	if !strings.HasPrefix(out.String(), "ztmeshd ") || !strings.Contains(out.String(), "go1.") {
		t.Errorf("--version printed %q", out.String())
	}
}

// TestCheckConfig: check-config accepts a valid file and reports every
// problem of a bad one, naming the file, line and field.
func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("trust_issuers: [did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK]\nmesh: fleet\n"), 0o644)
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("mesh: fleet\nlog_levle: debug\n"), 0o644)
	worse := filepath.Join(dir, "worse.yaml")
	os.WriteFile(worse, []byte("mesh: Bad Mesh\nmetrics: 0.0.0.0:9464\n"), 0o644)
	var out bytes.Buffer
	if err := run(context.Background(), []string{"check-config", "--config", good, "--dir", dir}, &out, &out, nil); err != nil {
		t.Fatalf("good config: %v", err)
	}
	if !strings.Contains(out.String(), "config OK") {
		t.Fatalf("printed %q", out.String())
	}
	err := run(context.Background(), []string{"check-config", "--config", bad, "--dir", dir}, &out, &out, nil)
	if err == nil || !strings.Contains(err.Error(), "bad.yaml") || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "log_levle") {
		t.Fatalf("misspelt field: %v", err)
	}
	err = run(context.Background(), []string{"check-config", "--config", worse, "--dir", dir}, &out, &out, nil)
	for _, want := range []string{"mesh name", "metrics", "trusted issuers"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("bad config: %v does not name %q", err, want)
		}
	}
}
