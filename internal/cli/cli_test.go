package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"slices"
	"testing"
)

func TestList(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"repeated flags keep their order", []string{"--x", "A", "--x", "B"}, []string{"A", "B"}},
		{"a comma-separated value is the same as repeated flags", []string{"--x", "A,B"}, []string{"A", "B"}},
		{"both forms mix", []string{"--x", "A,B", "--x=C"}, []string{"A", "B", "C"}},
		{"space around values is trimmed", []string{"--x", " A , B "}, []string{"A", "B"}},
		{"empty values are dropped", []string{"--x", ",A,,", "--x", ""}, []string{"A"}},
		{"no flag is an empty list", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var l List
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.Var(&l, "x", "")
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(l, tc.want) {
				t.Errorf("got %q, want %q", l, tc.want)
			}
		})
	}
}

func TestParseFlagsAfterArguments(t *testing.T) {
	var out bytes.Buffer
	fs := NewFlags("prog", "sub", "ARG...", "Does things.", &out)
	v := fs.Bool("v", false, "verbose")
	pos, err := Parse(fs, []string{"a", "-v", "b"})
	if err != nil || !*v || !slices.Equal(pos, []string{"a", "b"}) {
		t.Fatalf("Parse: %q, v=%v, %v", pos, *v, err)
	}
	if _, err := Parse(NewFlags("prog", "sub", "", "", &out), []string{"--bogus"}); !errors.Is(err, ErrUsage) {
		t.Errorf("unknown flag: %v, want ErrUsage", err)
	}
	out.Reset()
	if _, err := Parse(NewFlags("prog", "sub", "ARG...", "Does things.", &out), []string{"--help"}); !errors.Is(err, ErrHelp) {
		t.Errorf("--help: %v, want ErrHelp", err)
	}
	if got, want := out.String(), "Usage: prog sub ARG...\n\nDoes things.\n\nFlags:\n"; got != want {
		t.Errorf("usage %q, want %q", got, want)
	}
}

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
		line string
	}{
		{nil, 0, ""},
		{ErrHelp, 0, ""},
		{fmt.Errorf("%w: needs --dir", ErrUsage), 2, "prog: usage: needs --dir\n"},
		{errors.Join(errors.New("one"), errors.New("two")), 1, "prog: one; two\n"},
	} {
		var stderr bytes.Buffer
		if got := ExitCode("prog", tc.err, &stderr); got != tc.want || stderr.String() != tc.line {
			t.Errorf("ExitCode(%v) = %d, %q; want %d, %q", tc.err, got, stderr.String(), tc.want, tc.line)
		}
	}
}
