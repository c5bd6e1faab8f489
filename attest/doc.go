// Package attest lets a ztmesh node prove what software it runs, and lets
// other nodes check that proof against reference values an operator signed.
//
// # Evidence
//
// [Measure] measures the running node: the SHA-256 of its executable, its Go
// build information (the Go version and every module linked in, with
// version and go.sum checksum: a supply-chain record), the hashes of its
// configuration and active policy ([HashPolicy]) and its uptime.
//
// [Sign] turns a [Measurement] into evidence: it adds the node's DID, a
// nonce (a verifier's challenge, or fresh random bytes) and the time, and
// signs the result with the node's DID key under the domain-separation
// context [EvidenceContext]. Given a [TPM], it also includes a TPM 2.0
// quote over PCRs whose qualifying data binds the quote to this very
// evidence ([QuoteExtraData]), and an attestation key certified by the DID
// key ([AKContext]). Without a TPM the evidence is software-only and says
// so; [Result.Hardware] tells the two apart.
//
// [ParseEvidence] decodes evidence received from the network: it caps the
// size, decodes strictly and canonically, verifies the signature with the
// key of the DID the evidence names, and refuses evidence older than the
// caller's maximum age or dated in the future. It does not decide whether
// the evidence is acceptable: [Verify] does.
//
// # Reference values
//
// A [Reference] lists the allowed measurements: binary hashes, minimum
// module (and Go) versions, forbidden modules or versions, whether a
// hardware root of trust is required, and optionally pinned PCR values and
// the enrolled TPM attestation keys (without enrollment, a quote proves
// little: a node can certify a key of its own making). An
// issuer signs it with [SignReference] and a version that must increase;
// [VerifyReference] checks it against pinned issuers, and a [References]
// holder keeps the values in force and refuses a rollback ([ErrRollback]).
//
// [Verify] checks evidence against reference values and a challenge nonce
// and reports every problem it finds in a [Result].
//
// # What this package is not
//
// It does not talk to the network, schedule attestations, keep trust scores
// or quarantine nodes: the node package does, and may use [EffectiveTrust]
// for the score. docs/ATTESTATION.md specifies the wire formats and what a
// TPM quote does and does not prove.
//
// The TPM simulator used by the hardware tests needs cgo and OpenSSL; those
// tests are behind the build tag tpmsim. The package itself is pure Go.
package attest
