// Package api is the local HTTP/JSON API of a ztmesh daemon: the types it
// serves and a client for agents and the ztmesh CLI.
//
// The daemon serves it on a Unix socket in its data dir (DIR/api.sock, mode
// 0600) or, when configured, on loopback TCP with a bearer token in
// DIR/api.token (0600). It writes where it listens to DIR/api.addr, which
// Dial reads. Paths are versioned:
//
//	GET  /v1/status                      Status
//	GET  /v1/peers                       []Peer
//	POST /v1/credential                  install a renewed credential (body: the JWT) -> Credential
//	POST /v1/publish                     PublishRequest -> PublishResponse (403 if the policy denies)
//	GET  /v1/subscribe?zone=Z&channel=C  Server-Sent Events, each a Message (403 if denied)
//	PUT  /v1/state/{name}/{key}?zone=Z   write a key of a zone's shared state (body: the value)
//	GET  /v1/state/{name}/{key}?zone=Z   read a key (404 if absent) -> StateValue
//	DELETE /v1/state/{name}/{key}?zone=Z delete a key
//	GET  /v1/state/{name}?zone=Z         the whole state -> map key -> value (base64)
//	GET  /v1/state/{name}/watch?zone=Z   Server-Sent Events, each a StateChange
//	POST /v1/control/revocations         publish a signed revocation list on the control topic
//	POST /v1/control/policy              publish a signed policy bundle on the control topic
//	POST /v1/control/reference           publish signed attestation reference values on the control topic
//
// Errors are JSON {"error": "..."} with a 4xx or 5xx status.
package api

// Status is GET /v1/status.
type Status struct {
	DID            string       `json:"did"`
	PeerID         string       `json:"peer_id"`
	Mesh           string       `json:"mesh"`
	ListenAddrs    []string     `json:"listen_addrs"` // each ends in /p2p/<peer-id>
	Credential     Credential   `json:"credential"`
	PeersConnected int          `json:"peers_connected"`
	PeersVerified  int          `json:"peers_verified"`
	TrustIssuers   []string     `json:"trust_issuers"`
	Revocations    []Revocation `json:"revocations"`
	PolicyVersion  uint64       `json:"policy_version"` // 0 for the embedded or a file policy
	PolicySource   string       `json:"policy_source"`  // embedded, file:PATH or bundle:ISSUER
	Version        string       `json:"version"`        // the daemon's build: version (commit, date, Go)
	// RefusedBy lists the peers whose last answer refused this node's
	// credential: what they said and when.
	RefusedBy []Refusal `json:"refused_by"`
}

// Readiness is GET /readyz: whether the node can do its work, and the
// verdict of each check (credential, peers).
type Readiness struct {
	Ready  bool              `json:"ready"`
	Checks map[string]string `json:"checks"`
}

// Refusal is a peer's refusal of this node's credential.
type Refusal struct {
	Peer   string `json:"peer"`
	Reason string `json:"reason"` // the peer's one-word reason: revoked, expired, quarantined, ...
	At     string `json:"at"`     // RFC 3339
}

// Credential is a credential's claims and validity.
type Credential struct {
	ID              string   `json:"id"`
	Issuer          string   `json:"issuer"`
	Subject         string   `json:"subject"`
	Role            string   `json:"role"`
	TrustScore      float64  `json:"trust_score"`
	Zones           []string `json:"zones"`
	SoftwareVersion string   `json:"software_version"`
	Capabilities    []string `json:"capabilities,omitempty"`
	NotBefore       string   `json:"not_before"`
	Expires         string   `json:"expires"`
}

// Revocation is a revocation list in force.
type Revocation struct {
	Issuer      string `json:"issuer"`
	Version     uint64 `json:"version"`
	Credentials int    `json:"credentials"`
	Subjects    int    `json:"subjects"`
}

// Peer is one entry of GET /v1/peers: a connected peer, verified or not.
// The credential fields are empty for a peer that is not verified.
type Peer struct {
	DID             string   `json:"did"` // empty for a peer with a non-Ed25519 key
	PeerID          string   `json:"peer_id"`
	Verified        bool     `json:"verified"`
	Role            string   `json:"role"`
	TrustScore      float64  `json:"trust_score"`
	Zones           []string `json:"zones"`
	SoftwareVersion string   `json:"software_version"`
	Issuer          string   `json:"issuer,omitempty"`
	Expires         string   `json:"expires"`
	Addrs           []string `json:"addrs"`
	// EffectiveTrust is this node's current trust in the peer: the
	// credential's score lowered by failed or stale attestation, rejected
	// messages and rate-limit violations (docs/ATTESTATION.md).
	EffectiveTrust float64 `json:"effective_trust"`
	Attested       bool    `json:"attested"` // newest evidence passed with a hardware quote
	Quarantined    bool    `json:"quarantined"`
	// Connected is false for a member known only from its announcement
	// (ztmesh peers --all); Peers lists connected peers only.
	Connected        bool   `json:"connected"`
	QuarantineReason string `json:"quarantine_reason,omitempty"`
	// AttestationPending: attestation is enforced, the peer has not
	// attested yet and is still within its time to do so (not penalized).
	AttestationPending bool `json:"attestation_pending,omitempty"`
	// RejectedMessages and RateLimitViolations are the penalty inputs of
	// EffectiveTrust, decayed (half-life 10 minutes): messages of the peer
	// our validators rejected, and its messages dropped over its rate
	// limit in seconds' worth of its allowance.
	RejectedMessages    float64 `json:"rejected_messages"`
	RateLimitViolations float64 `json:"rate_limit_violations"`
}

// Error is the body of an error response.
type Error struct {
	Error string `json:"error"`
}

// Files in the data dir.
const (
	AddrFile  = "api.addr"  // "unix:/path" or "tcp:127.0.0.1:port"
	TokenFile = "api.token" // bearer token for a TCP API
)

// PublishRequest is the body of POST /v1/publish.
type PublishRequest struct {
	Zone    string `json:"zone"`
	Channel string `json:"channel"`
	Data    []byte `json:"data"` // base64 in JSON
}

// PublishResponse answers POST /v1/publish.
type PublishResponse struct {
	Topic string `json:"topic"`
	Seq   uint64 `json:"seq"`
	Time  string `json:"time"`
}

// Message is one event of GET /v1/subscribe (Server-Sent Events, one JSON
// object per "data:" line).
type Message struct {
	Origin  string `json:"origin"` // the publisher's DID
	Zone    string `json:"zone"`
	Channel string `json:"channel"`
	Seq     uint64 `json:"seq"`
	Time    string `json:"time"`
	Data    []byte `json:"data"` // base64 in JSON
}

// StateValue answers GET /v1/state/{name}/{key}.
type StateValue struct {
	Key   string `json:"key"`
	Value []byte `json:"value"` // base64 in JSON
}

// StateChange is one event of GET /v1/state/{name}/watch.
type StateChange struct {
	Key     string `json:"key"`
	Value   []byte `json:"value,omitempty"`
	Deleted bool   `json:"deleted"`
	Writer  string `json:"writer"` // DID of the node that wrote it
	Time    string `json:"time"`
}
