package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Action is what a subject asks to do.
type Action string

// The actions a node asks the policy about.
const (
	// ActionPublish: publish a message on Input.Topic.
	ActionPublish Action = "publish"
	// ActionSubscribe: subscribe to Input.Topic (or accept the subject as a
	// subscriber of it).
	ActionSubscribe Action = "subscribe"
	// ActionStateWrite: write Input.Key of the shared state Input.State in
	// Input.Zone.
	ActionStateWrite Action = "state_write"
	// ActionRelay: forward the messages of Input.Topic to and from the subject
	// (be or accept a relay for it).
	ActionRelay Action = "relay"
)

// ControlZone is the zone of the mesh control topic ztmesh/<mesh>/control
// (with channel "control"). Zone names in credentials never start with "_".
const ControlZone = "_control"

// Input is the input document of a decision: who asks to do what, where and
// when. Its JSON form (the field tags) is what `ztmesh policy test` reads and
// what the decision log digests; Rego sees the same fields as input.*, with
// state and key always present ("" when unused) and now as an RFC 3339 string.
// docs/POLICY.md describes every field with examples.
type Input struct {
	// Action is what the subject asks to do.
	Action Action `json:"action"`
	// Mesh is the mesh name (the <mesh> of the topic).
	Mesh string `json:"mesh"`
	// Zone is the zone of the topic, or ControlZone for the control topic.
	Zone string `json:"zone"`
	// Channel is the channel in the zone ("control" on the control topic).
	Channel string `json:"channel"`
	// Topic is the full topic: ztmesh/<mesh>/zone/<zone>/<channel>, or
	// ztmesh/<mesh>/control. Mesh, Zone and Channel must be its parts: the
	// decision cache keys on Topic alone.
	Topic string `json:"topic"`
	// State is, for state_write, the name of the shared state (CRDT).
	State string `json:"state,omitempty"`
	// Key is, for state_write, the key being written.
	Key string `json:"key,omitempty"`
	// Subject is who asks.
	Subject Subject `json:"subject"`
	// Now is the time of the decision; zero means the engine's clock. A
	// cached decision is reused for up to the cache TTL, so a policy that
	// looks at input.now is up to that stale.
	Now time.Time `json:"now"`
}

// Subject is who asks: the claims of their verified credential, and the
// node's current view of them.
type Subject struct {
	// DID is the subject's did:key.
	DID string `json:"did"`
	// Role is the credential's role claim.
	Role string `json:"role"`
	// TrustScore is the subject's trust score, 0..1: the credential's claim,
	// possibly lowered by the node's own observations.
	TrustScore float64 `json:"trust_score"`
	// Zones are the credential's zones; "*" means every zone.
	Zones []string `json:"zones"`
	// SoftwareVersion is the credential's software version (semantic).
	SoftwareVersion string `json:"software_version"`
	// Capabilities are the credential's optional capabilities.
	Capabilities []string `json:"capabilities"`
	// Attested reports whether the subject's hardware attestation verified.
	Attested bool `json:"attested"`
	// Quarantined reports whether the subject is quarantined.
	Quarantined bool `json:"quarantined"`

	// CredentialID identifies the (immutable) credential the claims above
	// came from; with the mutable fields (TrustScore, Attested, Quarantined)
	// it forms the cache key. Empty means: do not cache. Not sent to Rego.
	CredentialID string `json:"-"`
	// ValidUntil is when the credential expires: a cached decision never
	// outlives it. Zero means no limit but the cache TTL. Not sent to Rego.
	ValidUntil time.Time `json:"-"`
}

// Names of the input document's fields, as Rego terms. They are shared by
// every input value built and never modified.
var (
	termAction          = ast.StringTerm("action")
	termMesh            = ast.StringTerm("mesh")
	termZone            = ast.StringTerm("zone")
	termChannel         = ast.StringTerm("channel")
	termTopic           = ast.StringTerm("topic")
	termState           = ast.StringTerm("state")
	termKey             = ast.StringTerm("key")
	termSubject         = ast.StringTerm("subject")
	termNow             = ast.StringTerm("now")
	termDID             = ast.StringTerm("did")
	termRole            = ast.StringTerm("role")
	termTrustScore      = ast.StringTerm("trust_score")
	termZones           = ast.StringTerm("zones")
	termSoftwareVersion = ast.StringTerm("software_version")
	termCapabilities    = ast.StringTerm("capabilities")
	termAttested        = ast.StringTerm("attested")
	termQuarantined     = ast.StringTerm("quarantined")
)

// validate refuses an input that cannot be represented faithfully.
func (in *Input) validate() error {
	if s := in.Subject.TrustScore; math.IsNaN(s) || math.IsInf(s, 0) {
		return fmt.Errorf("invalid input: trust score %v is not a finite number", s)
	}
	return nil
}

// value builds the Rego input document directly as an ast.Value, without
// going through map[string]any or JSON. now is the decision time.
func (in *Input) value(now time.Time) ast.Value {
	s := &in.Subject
	subject := ast.NewObject(
		ast.Item(termDID, ast.StringTerm(s.DID)),
		ast.Item(termRole, ast.StringTerm(s.Role)),
		ast.Item(termTrustScore, ast.FloatNumberTerm(s.TrustScore)),
		ast.Item(termZones, stringsTerm(s.Zones)),
		ast.Item(termSoftwareVersion, ast.StringTerm(s.SoftwareVersion)),
		ast.Item(termCapabilities, stringsTerm(s.Capabilities)),
		ast.Item(termAttested, ast.InternedTerm(s.Attested)),
		ast.Item(termQuarantined, ast.InternedTerm(s.Quarantined)),
	)
	return ast.NewObject(
		ast.Item(termAction, ast.StringTerm(string(in.Action))),
		ast.Item(termMesh, ast.StringTerm(in.Mesh)),
		ast.Item(termZone, ast.StringTerm(in.Zone)),
		ast.Item(termChannel, ast.StringTerm(in.Channel)),
		ast.Item(termTopic, ast.StringTerm(in.Topic)),
		ast.Item(termState, ast.StringTerm(in.State)),
		ast.Item(termKey, ast.StringTerm(in.Key)),
		ast.Item(termSubject, ast.NewTerm(subject)),
		ast.Item(termNow, ast.StringTerm(now.UTC().Format(time.RFC3339Nano))),
	)
}

func stringsTerm(ss []string) *ast.Term {
	terms := make([]*ast.Term, len(ss))
	for i, s := range ss {
		terms[i] = ast.StringTerm(s)
	}
	return ast.ArrayTerm(terms...)
}

// canonicalJSON is the input's JSON form with its time in UTC and empty lists
// as [] rather than null: the bytes the decision log digests, and a document
// `ztmesh policy test --input` reads back to the same decision.
func (in *Input) canonicalJSON(now time.Time) ([]byte, error) {
	c := *in
	c.Now = now.UTC()
	if c.Subject.Zones == nil {
		c.Subject.Zones = []string{}
	}
	if c.Subject.Capabilities == nil {
		c.Subject.Capabilities = []string{}
	}
	return json.Marshal(&c)
}

// Digest returns the hex SHA-256 of the input's canonical JSON form (time in
// UTC, empty lists as []): the input_digest of the decision log, for an input
// whose Now is set.
func (in *Input) Digest() string { return in.digest(in.Now) }

// digest is the hex SHA-256 of the canonical JSON of in at time now.
func (in *Input) digest(now time.Time) string {
	b, err := in.canonicalJSON(now)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
