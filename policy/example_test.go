package policy_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/policy"
)

// Example decides two requests with the embedded default policy: a member of
// zone north subscribes to it, then tries to publish with too low a trust
// score.
func Example() {
	engine, err := policy.New()
	if err != nil {
		panic(err)
	}
	subject := policy.Subject{
		DID:             "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
		Role:            "vehicle",
		TrustScore:      0.3,
		Zones:           []string{"north"},
		SoftwareVersion: "1.4.0",
		CredentialID:    "urn:uuid:0c1d4a0e-7b52-4a4e-9d7c-2f7f0d5c1a11", // cache by credential
		ValidUntil:      time.Now().Add(12 * time.Hour),
	}
	in := &policy.Input{
		Action:  policy.ActionSubscribe,
		Mesh:    "fleet",
		Zone:    "north",
		Channel: "maps",
		Topic:   "ztmesh/fleet/zone/north/maps",
		Subject: subject,
	}
	d := engine.Decide(context.Background(), in)
	fmt.Println("subscribe:", d.Allow)

	in.Action = policy.ActionPublish
	d = engine.Decide(context.Background(), in)
	fmt.Println("publish:", d.Allow, d.Reasons)

	// Output:
	// subscribe: true
	// publish: false [trust score 0.3 below minimum 0.5 for publish]
}

// ExampleEngine_ApplyBundle replaces the policy with a bundle signed by a
// pinned issuer; the same bundle again is refused as a rollback.
func ExampleEngine_ApplyBundle() {
	issuer, _ := did.GenerateIdentity(rand.Reader)
	trusted := func(d did.DID) bool { return d == issuer.DID() }

	bundle, err := policy.SignBundle(issuer, map[string]string{
		"authz.rego": "package ztmesh.authz\n\nallow if input.subject.role == \"operator\"\n",
	}, 1, policy.Scope{Mesh: "default", Expires: time.Now().Add(30 * 24 * time.Hour)}, time.Now())
	if err != nil {
		panic(err)
	}

	engine, _ := policy.New()
	if _, err := engine.ApplyBundle(bundle, trusted); err != nil {
		panic(err)
	}
	fmt.Println("in force: version", engine.Version())

	_, err = engine.ApplyBundle(bundle, trusted)
	fmt.Println("again refused as a rollback:", errors.Is(err, policy.ErrRollback))

	// Output:
	// in force: version 1
	// again refused as a rollback: true
}
