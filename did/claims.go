package did

import (
	"errors"
	"fmt"
	"math"
	"regexp"
)

// Claims are what a credential says about its holder. They are the
// credentialSubject of the W3C credential, next to the subject's "id".
type Claims struct {
	// Role is the holder's function in the fleet ("vehicle", "operator",
	// "controller"); the policy decides what each role may do.
	Role string `json:"role"`
	// TrustScore is the issuer's trust in the holder, from 0 to 1.
	TrustScore float64 `json:"trustScore"`
	// Zones the holder belongs to; "*" means every zone.
	Zones []string `json:"zones"`
	// SoftwareVersion is the holder's software version, semantic (1.4.0).
	SoftwareVersion string `json:"softwareVersion"`
	// Capabilities are optional extra permissions the policy may look at.
	Capabilities []string `json:"capabilities,omitempty"`
}

// Limits on claims. They keep a credential small enough to present on every
// connection and a zone name usable as a topic segment.
const (
	maxZones        = 64
	maxCapabilities = 32
	maxNameLen      = 64
)

// AllZones is the zone wildcard: a credential listing it is a member of every zone.
const AllZones = "*"

var (
	nameRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	semverRE = regexp.MustCompile(`^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)
)

// ValidZone reports whether z is a zone name: lowercase letters, digits, '-'
// and '_', starting with a letter or digit, at most 64 characters; or "*".
func ValidZone(z string) bool {
	return z == AllZones || (len(z) <= maxNameLen && nameRE.MatchString(z))
}

// ValidSemver reports whether v is a semantic version (MAJOR.MINOR.PATCH with
// optional pre-release and build parts).
func ValidSemver(v string) bool {
	return len(v) <= maxNameLen && semverRE.MatchString(v)
}

// Validate checks every claim and reports every problem it finds, each
// wrapping ErrInvalidClaim.
func (c Claims) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidClaim}, args...)...))
	}
	switch {
	case c.Role == "":
		bad("role is empty")
	case len(c.Role) > maxNameLen || !nameRE.MatchString(c.Role):
		bad("role %q: use lowercase letters, digits, '-' and '_' (at most %d)", truncate(c.Role), maxNameLen)
	}
	if math.IsNaN(c.TrustScore) || c.TrustScore < 0 || c.TrustScore > 1 {
		bad("trust score %v is outside 0..1", c.TrustScore)
	}
	if len(c.Zones) == 0 {
		bad("no zones")
	}
	if len(c.Zones) > maxZones {
		bad("%d zones, at most %d", len(c.Zones), maxZones)
	}
	seen := make(map[string]bool, len(c.Zones))
	for _, z := range c.Zones {
		if !ValidZone(z) {
			bad("zone %q: use lowercase letters, digits, '-' and '_', or \"*\"", truncate(z))
		} else if seen[z] {
			bad("zone %q listed twice", z)
		}
		seen[z] = true
	}
	if !ValidSemver(c.SoftwareVersion) {
		bad("software version %q is not a semantic version like 1.4.0", truncate(c.SoftwareVersion))
	}
	if len(c.Capabilities) > maxCapabilities {
		bad("%d capabilities, at most %d", len(c.Capabilities), maxCapabilities)
	}
	for _, cp := range c.Capabilities {
		if len(cp) > maxNameLen || !nameRE.MatchString(cp) {
			bad("capability %q: use lowercase letters, digits, '-' and '_'", truncate(cp))
		}
	}
	return errors.Join(errs...)
}

// InZone reports whether the claims make the holder a member of zone z.
func (c Claims) InZone(z string) bool {
	for _, m := range c.Zones {
		if m == z || m == AllZones {
			return true
		}
	}
	return false
}

// SharesZone reports whether holders of zones a and of zones b are members
// of a common zone (the wildcard shares every zone).
func SharesZone(a, b []string) bool {
	for _, z := range a {
		if z == AllZones || (Claims{Zones: b}).InZone(z) {
			return true
		}
	}
	return false
}

func truncate(s string) string {
	if len(s) > maxNameLen {
		return s[:maxNameLen] + "..."
	}
	return s
}
