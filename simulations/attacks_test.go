package simulations

import (
	"context"
	mrand "math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ztmesh/ztmesh/did"
)

// TestAttacksSmall runs the whole attack suite on a small mesh and checks
// its table: every attack ran, none was accepted, and honest delivery held.
func TestAttacksSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every attack for a few seconds each, and a replay 72 s after capture")
	}
	sc, err := ParseScenario([]byte(`
kind: attacks
seed: 3
nodes: [16]
zones: 2
degree: 4
cross: 1
link: {latency: 5ms}
message_size: 128
rate: 1
duration: 3s
attackers: 10
`))
	if err != nil {
		t.Fatal(err)
	}
	sc.Name = "attacks-test"
	env := &Env{Seed: sc.Seed, Quick: true} // the plain GossipSub comparison has its own test
	if testing.Verbose() {
		env.Progress = os.Stderr
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	secs, err := runAttacks(ctx, env, sc)
	if err != nil {
		t.Fatal(err)
	}
	if len(secs) != 1 || len(secs[0].Tables) != 1 {
		t.Fatalf("sections %+v", secs)
	}
	tbl := secs[0].Tables[0]
	var b strings.Builder
	tbl.markdown(&b)
	t.Log("\n" + b.String())
	if got, want := len(tbl.Rows), len(attacks)+1; got != want {
		t.Fatalf("%d rows, want %d (one per attack and the reference)", got, want)
	}
	for _, r := range tbl.Rows[1:] {
		if r[2] != "0" {
			t.Errorf("%s: accepted %s", r[0], r[2])
		}
		if r[1] == "0" {
			t.Errorf("%s: no attempts made", r[0])
		}
	}
	for _, f := range secs[0].Failures {
		t.Error(f)
	}
}

// TestAttackSelection checks that a scenario can name attacks, and that a
// misspelt one is refused rather than skipped.
func TestAttackSelection(t *testing.T) {
	sc := &Scenario{Attacks: []string{"sybil", "no-credential", "sybil"}}
	got, err := selectedAttacks(sc)
	if err != nil || len(got) != 2 || attacks[got[0]].name != "no-credential" || attacks[got[1]].name != "sybil" {
		t.Fatalf("got %v, %v", got, err)
	}
	if _, err := selectedAttacks(&Scenario{Attacks: []string{"sybill"}}); err == nil {
		t.Fatal("unknown attack accepted")
	}
}

// TestPlainComparison checks the plain GossipSub column on a small mesh:
// there, an outsider and Sybils do read zone traffic, which is the point
// of the comparison (and of ztmesh).
func TestPlainComparison(t *testing.T) {
	if testing.Short() {
		t.Skip("runs plain GossipSub for about 15 s")
	}
	sc, err := ParseScenario([]byte("kind: attacks\nseed: 5\nnodes: [12]\nzones: 2\ndegree: 3\ncross: 1\nrate: 2\nduration: 3s\nattackers: 4\n"))
	if err != nil {
		t.Fatal(err)
	}
	l := &lab{sc: sc, rnd: mrand.New(mrand.NewPCG(1, 2)), zones: Zones(sc.Zones), attackers: map[did.DID]string{}}
	res, err := l.runPlain(context.Background(), 12, 3*time.Second, 2, 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	if res.honestSent == 0 || res.outsiderRead < 0.5 || res.outsiderRead > 1 || res.sybilRead < 0.5 || res.sybilRead > 1 || res.outsiderJunk == 0 {
		t.Fatalf("plain GossipSub should let an outsider read and write: %+v", res)
	}
}
