package main

import (
	"strings"
	"testing"
)

const sample = `goos: linux
pkg: github.com/ztmesh/ztmesh/did
BenchmarkEd25519VerifyBaseline-2   	   20000	     50000 ns/op	       0 B/op	       0 allocs/op
BenchmarkVerifyCredential-2        	    7000	    150000 ns/op	   40000 B/op	     500 allocs/op
pkg: github.com/ztmesh/ztmesh/pubsub
BenchmarkZoneVsGossipSub/2hosts-1KB-2     1   2000000 ns/op   0.95 throughput-ratio   1.10 p99-ratio   1.000 delivery-ratio
ok  	github.com/ztmesh/ztmesh/pubsub	10.0s
`

func TestSummary(t *testing.T) {
	res, order, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if got := res["did/VerifyCredential"].metrics["ns/op"]; got != 150000 {
		t.Fatalf("did/VerifyCredential ns/op = %v", got)
	}
	var b strings.Builder
	write(&b, res, order)
	out := b.String()
	for _, want := range []string{"3.00x", "pubsub/ZoneVsGossipSub/2hosts-1KB", "throughput-ratio", "0.95x", "1.10x"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "delivery-ratio") {
		t.Errorf("a delivery ratio is not a ratio to a baseline:\n%s", out)
	}
}
