package node

import (
	"errors"

	"fmt"
	"github.com/ztmesh/ztmesh/did"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ztmesh/ztmesh/policy"
	"github.com/ztmesh/ztmesh/pubsub"
)

// Member implements pubsub.Members: a verified peer with its credential and
// key package. Trust is the credential's until attestation adjusts it.
func (n *Node) Member(p peer.ID) (pubsub.Member, bool) {
	cred, kp := (*did.Credential)(nil), (*pubsub.KeyPackage)(nil)
	if e, ok := n.registry.Get(p); ok {
		cred, kp = e.Credential, e.KeyPackage
	} else if e, ok := n.directoryMember(p); ok {
		cred, kp = e.cred, e.kp // not connected: known from its announcement
	} else {
		return pubsub.Member{}, false
	}
	trust, attested, quarantine := n.standing(cred)
	return pubsub.Member{Credential: cred, KeyPackage: kp, TrustScore: trust,
		Attested: attested, Quarantined: quarantine != "", RateLimit: n.s.rateLimit}, true
}

// ControlState implements pubsub.ControlHandler: the revocation lists,
// policy bundle and reference values in force, for late joiners.
func (n *Node) ControlState() pubsub.ControlState {
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

// ApplyPolicyBundle implements pubsub.ControlHandler: verify a signed
// bundle (pinned issuer, newer version, compiles) and swap the policy.
func (n *Node) ApplyPolicyBundle(token []byte) (bool, error) {
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
	if n.cfg.Policy == "" {
		return nil
	}
	n.polMu.Lock()
	n.polStamp = pathStamp(n.cfg.Policy)
	if n.bundle != nil {
		n.polMu.Unlock()
		n.log.Warn("policy file not reloaded: a signed bundle is in force", "event_type", "policy_reload_skipped", "version", n.policy.Version())
		return nil
	}
	err := n.policy.LoadPath(n.cfg.Policy)
	n.polMu.Unlock()
	if err != nil {
		n.log.Error("policy file refused", "event_type", "policy_refused", "file", n.cfg.Policy, "reason", oneLine(err))
		return fmt.Errorf("policy %s: %w", n.cfg.Policy, err)
	}
	n.log.Info("policy loaded", "event_type", "policy_applied", "source", n.policy.Source(), "version", n.policy.Version())
	if n.host != nil {
		n.policyChanged()
	}
	return nil
}

// policyChanged enforces a new policy: new sender keys (only members the
// new policy allows can pull them) and peers subscribed where they may no
// longer be are disconnected, to rejoin under the new rules.
func (n *Node) policyChanged() {
	if n.mesh == nil {
		return
	}
	n.mesh.RotateKeys("policy changed")
	for _, p := range n.registry.List() {
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
