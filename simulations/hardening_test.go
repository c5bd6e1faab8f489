package simulations

import (
	"context"
	"strconv"
	"testing"
	"time"
)

// TestHardeningScenario runs both attacks on 12 honest nodes and 4
// attackers: honest delivery with ztmesh must stay high, and the
// attackers must really drop (they receive nothing once dropping).
func TestHardeningScenario(t *testing.T) {
	if testing.Short() {
		t.Skip("runs four small networks for about 70 s")
	}
	secs := runScenario(t, runHardening, "name: hard\nkind: hardening\nnodes: [12]\nattackers: 4\nzones: 1\ndegree: 3\ncross: 0\nlink: {latency: 5ms}\nmessage_size: 256\nrate: 2\nduration: 4s\n", 3*time.Minute)
	rows := secs[0].Tables[0].Rows
	if len(rows) != 4 {
		t.Fatalf("%d rows, want 4 (two attacks on two networks)", len(rows))
	}
	for _, r := range rows {
		if d, _ := strconv.ParseFloat(r[3], 64); r[1] == "ztmesh" && d < 0.9 {
			t.Errorf("%s: ztmesh honest delivery %v during the attack, want at least 0.9", r[0], d)
		}
	}
}

// TestDropValidatorDrops checks the attackers' mechanism on plain
// GossipSub: a node whose validator drops everything neither receives nor
// forwards, so a node reachable only through it receives nothing.
func TestDropValidatorDrops(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := NewBaseline(ctx, make([]NodeSpec, 3), Link{}, 0, 0, 1) // no zones: no links drawn
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// A chain 0 - 1 - 2: node 1 is the only path.
	if err := connectPairs(ctx, b.Net, b.Hosts, [][2]int{{0, 1}, {1, 2}}); err != nil {
		t.Fatal(err)
	}
	var eps []*plainZoneEndpoint
	for i := range b.Hosts {
		ep, err := newPlainZoneEndpoint(b.Subs[i], "z")
		if err != nil {
			t.Fatal(err)
		}
		eps = append(eps, ep)
	}
	time.Sleep(2 * time.Second) // meshes
	if err := eps[0].publish(ctx, []byte("before")); err != nil {
		t.Fatal(err)
	}
	if _, err := eps[2].next(ctx); err != nil {
		t.Fatal("an honest relay did not forward:", err)
	}
	if err := dropTopic(b.Subs[1], "zone/z/"+zoneLoadChannel); err != nil {
		t.Fatal(err)
	}
	if err := eps[0].publish(ctx, []byte("after")); err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
	defer rcancel()
	if data, err := eps[2].next(rctx); err == nil {
		t.Fatalf("message %q crossed the dropping node", data)
	}
}
