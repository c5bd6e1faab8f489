package main

import (
	"flag"
	"slices"
	"testing"
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
