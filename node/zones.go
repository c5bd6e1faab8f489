package node

import (
	"errors"

	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ztmesh/ztmesh/policy"
	"github.com/ztmesh/ztmesh/pubsub"
)

// Member returns a member of the mesh this node holds, connected or known
// from its announcement, with this node's view of it: its effective trust,
// attestation, quarantine and rate limit.
func (n *Node) Member(p peer.ID) (pubsub.Member, bool) {
	cred, kp, ok := n.roster.Member(p)
	if !ok {
		return pubsub.Member{}, false
	}
	trust, attested, quarantine := n.standing(cred)
	return pubsub.Member{Credential: cred, KeyPackage: kp, TrustScore: trust,
		Attested: attested, Quarantined: quarantine != "", RateLimit: n.s.rateLimit}, true
}

// members is the node as pubsub.Members: the roster's members with the
// trust book's standing, versioned by what both report changing.
type members struct{ n *Node }

func (m members) Member(p peer.ID) (pubsub.Member, bool) { return m.n.Member(p) }

func (m members) StandingVersion(p peer.ID) uint64 { return m.n.standings.of(p) }

// controller is the node as pubsub.Control: the content of the control topic
// goes to the verifier (revocations), the policy engine (bundles) and the
// trust book (reference values, evidence, quarantine announcements).
type controller struct{ n *Node }

func (c controller) ApplyRevocations(token []byte) (bool, error) {
	return c.n.applyRevocations(token, "mesh")
}
func (c controller) ApplyPolicyBundle(token []byte) (bool, error) { return c.n.applyBundle(token) }
func (c controller) ApplyReference(token []byte) (bool, error)    { return c.n.ApplyReference(token) }
func (c controller) ApplyEvidence(origin peer.ID, token []byte) (bool, error) {
	return c.n.ApplyEvidence(origin, token)
}
func (c controller) ApplyQuarantine(token []byte) (bool, error) { return c.n.ApplyQuarantine(token) }
func (c controller) ControlState() pubsub.ControlState          { return c.n.controlState() }

// controlState is the revocation lists, policy bundle and reference values
// in force, for late joiners.
func (n *Node) controlState() pubsub.ControlState {
	var st pubsub.ControlState
	for _, l := range n.verifier.Revocations().Lists() {
		st.Revocations = append(st.Revocations, []byte(l.Raw))
	}
	if ref := n.references.Current(); ref != nil {
		st.Reference = ref.Raw
	}
	n.polMu.Lock()
	defer n.polMu.Unlock()
	st.Bundle = n.bundle
	return st
}

// applyBundle verifies a signed policy bundle from the control topic
// (pinned issuer, newer version, compiles) and swaps the policy.
func (n *Node) applyBundle(token []byte) (bool, error) {
	n.polMu.Lock()
	if n.bundle != nil && string(n.bundle) == string(token) {
		n.polMu.Unlock()
		return false, nil
	}
	b, err := n.policy.ApplyBundle(token, n.verifier.Trusts)
	if err != nil {
		n.polMu.Unlock()
		if !errors.Is(err, policy.ErrRollback) {
			n.log.Error("policy bundle refused", "event_type", "policy_refused", "reason", oneLine(err))
		}
		return false, err
	}
	n.bundle = append([]byte(nil), token...)
	n.polMu.Unlock()
	n.log.Info("policy bundle applied", "event_type", "policy_applied", "issuer", b.Issuer.String(), "version", b.Version)
	n.policyChanged()
	return true, nil
}

// ReloadPolicy loads the configured policy file or directory. A policy that
// does not compile is refused and the old one stays in force. While a
// signed bundle from the mesh is in force, the file is not reloaded.
func (n *Node) ReloadPolicy() error {
	loaded, err := n.loadPolicyFile()
	if loaded {
		n.policyChanged()
	}
	return err
}

// loadPolicyFile puts the configured policy file in force, without acting
// on the peers it may now refuse (New, before there are any).
func (n *Node) loadPolicyFile() (loaded bool, err error) {
	if n.cfg.Policy == "" {
		return false, nil
	}
	n.polMu.Lock()
	n.polStamp = pathStamp(n.cfg.Policy)
	if n.bundle != nil {
		n.polMu.Unlock()
		n.log.Warn("policy file not reloaded: a signed bundle is in force", "event_type", "policy_reload_skipped", "version", n.policy.Version())
		return false, nil
	}
	err = n.policy.LoadPath(n.cfg.Policy)
	n.polMu.Unlock()
	if err != nil {
		n.log.Error("policy file refused", "event_type", "policy_refused", "file", n.cfg.Policy, "reason", oneLine(err))
		return false, fmt.Errorf("policy %s: %w", n.cfg.Policy, err)
	}
	n.log.Info("policy loaded", "event_type", "policy_applied", "source", n.policy.Source(), "version", n.policy.Version())
	return true, nil
}

// policyChanged enforces a new policy: new sender keys (only members the
// new policy allows can pull them) and peers subscribed where they may no
// longer be are disconnected, to rejoin under the new rules.
func (n *Node) policyChanged() {
	n.mesh.RotateKeys("policy changed")
	for _, p := range n.roster.connected.List() {
		if n.mesh.Disallowed(p.ID) {
			n.drop(p.ID, "policy", "the policy no longer allows a topic it is subscribed to")
		}
	}
}

// pathStamp summarizes a file's or a directory's .rego files' modification
// times and sizes.
func pathStamp(path string) fileStamp {
	var st fileStamp
	_ = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if fi, err := os.Stat(p); err == nil {
			if fi.ModTime().After(st.mod) {
				st.mod = fi.ModTime()
			}
			st.size += fi.Size() + 1
		}
		return nil
	})
	return st
}
