package policy

import "encoding/base64"

// The bundle's wire form, written out here apart from internal/envelope so
// that tests build and take apart bundles the way docs/POLICY.md says.

// b64 is standard base64 with padding, strict.
var b64 = base64.StdEncoding.Strict()

type bundleEnvelope struct {
	Payload   string `json:"payload"`
	Signature string `json:"signature"`
}
