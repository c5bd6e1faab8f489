package attest_test

import (
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/ztmesh/ztmesh/attest"
	"github.com/ztmesh/ztmesh/did"
)

// Example walks attestation end to end: an operator signs reference values
// allowing one binary, a node measures itself and answers a verifier's
// challenge with signed evidence, and the verifier checks it. Then the
// operator raises a minimum version and the same node no longer passes, and
// an old, laxer reference list is refused.
func Example() {
	operator, _ := did.GenerateIdentity(rand.Reader)
	node, _ := did.GenerateIdentity(rand.Reader)
	now := time.Now()

	// The node measures itself: its executable, build info, config, policy.
	m, err := attest.Measure(attest.MeasureOptions{
		Config:       []byte("mesh: fleet-7\n"),
		PolicySHA256: attest.HashPolicy(map[string]string{"authz.rego": "package ztmesh.authz\n"}),
		Start:        now.Add(-time.Hour),
		Now:          now,
	})
	if err != nil {
		panic(err)
	}

	// The operator allows that binary (in practice: the release's hash).
	refs := attest.NewReferences(func(d did.DID) bool { return d == operator.DID() })
	v1, _ := attest.SignReference(operator, &attest.Reference{
		Version:         1,
		AllowedBinaries: []string{m.BinarySHA256},
		MinVersions:     map[string]string{attest.GoKey: "go1.22.0"},
		Forbidden:       []attest.Module{{Path: "github.com/evil/backdoor"}},
	}, now)
	if _, _, err := refs.Update(v1); err != nil {
		panic(err)
	}

	// A verifier challenges the node with a nonce; the node answers with
	// evidence (no TPM here: software-only).
	nonce := make([]byte, 32)
	rand.Read(nonce)
	evidence, err := attest.Sign(node, m, nonce, now, nil)
	if err != nil {
		panic(err)
	}

	// The verifier parses (signature, freshness) and checks it.
	e, err := attest.ParseEvidence(evidence, now.Add(time.Second), 5*time.Minute)
	if err != nil {
		panic(err)
	}
	r := attest.Verify(e, refs.Current(), nonce)
	fmt.Printf("ok=%v hardware=%v reference=v%d\n", r.OK, r.Hardware, r.ReferenceVersion)

	// The operator now requires a newer main module than this build has.
	v2, _ := attest.SignReference(operator, &attest.Reference{
		Version:         2,
		AllowedBinaries: []string{m.BinarySHA256},
		MinVersions:     map[string]string{attest.MainModuleKey: "v9.0.0"},
	}, now)
	refs.Update(v2)
	r = attest.Verify(e, refs.Current(), nonce)
	fmt.Printf("ok=%v problems=%d\n", r.OK, len(r.Problems))

	// Replaying version 1 does not bring the laxer values back.
	_, _, err = refs.Update(v1)
	fmt.Println(errors.Is(err, attest.ErrRollback))
	// Output:
	// ok=true hardware=false reference=v1
	// ok=false problems=1
	// true
}
