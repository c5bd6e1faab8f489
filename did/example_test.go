package did_test

import (
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/ztmesh/ztmesh/did"
)

// Example walks the life of a credential: an issuer and an agent get
// identities, the issuer issues the agent a credential, a node that pins the
// issuer verifies it, then the issuer revokes it and the node refuses it.
func Example() {
	issuer, _ := did.GenerateIdentity(rand.Reader)
	agent, _ := did.GenerateIdentity(rand.Reader)
	now := time.Now()

	token, err := did.Issue(issuer, agent.DID(), did.Claims{
		Role:            "vehicle",
		TrustScore:      0.92,
		Zones:           []string{"district-7"},
		SoftwareVersion: "1.4.0",
	}, did.IssueOptions{TTL: 12 * time.Hour, Now: now})
	if err != nil {
		panic(err)
	}

	verifier, _ := did.NewVerifier([]did.DID{issuer.DID()})
	cred, err := verifier.VerifyHolder([]byte(token), agent.DID(), now)
	if err != nil {
		panic(err)
	}
	fmt.Println("verified:", cred.Claims.Role, cred.Claims.Zones, cred.Claims.TrustScore)

	list, _ := did.SignRevocationList(issuer, &did.RevocationList{Version: 1, Credentials: []string{cred.ID}}, now)
	if _, _, err := verifier.Revocations().Update([]byte(list)); err != nil {
		panic(err)
	}
	_, err = verifier.Verify([]byte(token), now)
	fmt.Println("after revocation, revoked:", errors.Is(err, did.ErrRevoked))

	// Output:
	// verified: vehicle [district-7] 0.92
	// after revocation, revoked: true
}
