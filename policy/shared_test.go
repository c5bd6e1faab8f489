package policy

import (
	"context"
	"testing"
)

// TestSharedCompiles: engines sharing compiled policies decide as engines
// of their own would, each with the policy it loaded; a policy is compiled
// once for all of them, and one that fails to compile is not kept.
func TestSharedCompiles(t *testing.T) {
	ctx := context.Background()
	c := NewCompiles()
	a := newEngine(t, WithCompiles(c))
	b := newEngine(t, WithCompiles(c))
	in := zoneInput(ActionPublish, "north", member())
	if len(c.m) != 1 {
		t.Fatalf("%d compiled policies after two engines started on the default, want 1", len(c.m))
	}
	if err := a.LoadModules(map[string]string{"deny.rego": denyAll}, 1, "test"); err != nil {
		t.Fatal(err)
	}
	if d := a.Decide(ctx, in); d.Allow || d.Version != 1 {
		t.Fatalf("a after loading deny-all: %+v", d)
	}
	if d := b.Decide(ctx, in); !d.Allow || d.Version != 0 {
		t.Fatalf("b, still on the default: %+v", d)
	}
	if err := b.LoadModules(map[string]string{"deny.rego": denyAll}, 5, "other"); err != nil {
		t.Fatal(err)
	}
	if d := b.Decide(ctx, in); d.Allow || d.Version != 5 || b.Source() != "other" {
		t.Fatalf("b after loading deny-all: %+v from %s", d, b.Source())
	}
	if len(c.m) != 2 {
		t.Fatalf("%d compiled policies, want 2", len(c.m))
	}
	if err := b.LoadModules(map[string]string{"bad.rego": "package ztmesh.authz\nallow if {"}, 6, "bad"); err == nil {
		t.Fatal("a policy that does not compile was loaded")
	}
	if d := b.Decide(ctx, in); d.Allow || d.Version != 5 {
		t.Fatalf("b after a failed load: %+v", d)
	}
	if len(c.m) != 2 {
		t.Fatalf("%d compiled policies after a failed compile, want 2", len(c.m))
	}
	mods := a.Modules()
	mods["deny.rego"] = "changed"
	if b.Modules()["deny.rego"] != denyAll {
		t.Fatal("one engine's Modules changed another's")
	}
}
