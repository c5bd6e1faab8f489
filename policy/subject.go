package policy

import "github.com/ztmesh/ztmesh/did"

// SubjectOf is the subject that holds the verified credential c, as the
// credential states it: its trust score is the credential's claim, and it
// is neither attested nor quarantined. A node that has its own view of the
// subject sets TrustScore, Attested and Quarantined on the result. Every
// decision about a member (publish, subscribe, relay, state write) builds
// its subject here, so all of them see the same claims and the same cache
// key.
func SubjectOf(c *did.Credential) Subject {
	return Subject{
		DID:             c.Subject.String(),
		Role:            c.Claims.Role,
		TrustScore:      c.Claims.TrustScore,
		Zones:           c.Claims.Zones,
		SoftwareVersion: c.Claims.SoftwareVersion,
		Capabilities:    c.Claims.Capabilities,
		CredentialID:    c.ID,
		ValidUntil:      c.Expires,
	}
}
