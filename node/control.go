package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ztmesh/ztmesh/attest"
	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/internal/fsutil"
	"github.com/ztmesh/ztmesh/policy"
	"github.com/ztmesh/ztmesh/pubsub"
)

// controller owns the node's control content: the revocation lists, the
// policy and the attestation reference values in force, from their files
// (watched, and reloaded on SIGHUP) and from the control topic (it is the
// node's pubsub.Control). It puts each in force in its engine (the
// verifier's revocation set, the policy engine, the reference values) and
// acts on the change: revoked peers are dropped, a new policy rotates keys
// and drops peers subscribed where they may no longer be, new reference
// values have the trust book judge the evidence it holds again.
//
// What it does not own: the engines themselves, the members (roster) and
// their trust (trust book); evidence and quarantine announcements pass
// through it to the trust book's side of the node.
type controller struct {
	n *Node

	revMu    sync.Mutex // serializes revocation reloads
	revStamp fileStamp

	polMu    sync.Mutex // serializes policy reloads and bundles
	polStamp fileStamp
	bundle   []byte // the signed policy bundle in force, if any

	refMu    sync.Mutex
	refStamp fileStamp
}

// ApplyEvidence implements pubsub.Control (trust.go).
func (c *controller) ApplyEvidence(origin peer.ID, token []byte) (bool, error) {
	return c.n.applyEvidence(origin, token)
}

// ApplyQuarantine implements pubsub.Control (quarantine.go).
func (c *controller) ApplyQuarantine(token []byte) (bool, error) { return c.n.applyQuarantine(token) }

// ApplyRevocations implements pubsub.Control: a revocation list from the
// control topic or a peer's sync.
func (c *controller) ApplyRevocations(token []byte) (bool, error) {
	return c.applyRevocations(token, "mesh")
}

// reload reads every configured file again (SIGHUP).
func (c *controller) reload() error {
	return errors.Join(c.reloadRevocations(), c.reloadPolicy(), c.reloadReference())
}

// watch polls the configured files and reloads each one that changed.
func (c *controller) watch() {
	for _, w := range []struct {
		path   string
		mu     *sync.Mutex
		stamp  *fileStamp
		reload func() error
	}{
		{c.n.cfg.Revocations, &c.revMu, &c.revStamp, c.reloadRevocations},
		{c.n.cfg.Policy, &c.polMu, &c.polStamp, c.reloadPolicy},
		{c.n.cfg.Reference, &c.refMu, &c.refStamp, c.reloadReference},
	} {
		if w.path != "" {
			c.n.goLoop(func(ctx context.Context) { c.watchPath(ctx, w.path, w.mu, w.stamp, w.reload) })
		}
	}
}

// reloadRevocations reads the configured revocation list file and applies
// it. A list that fails to verify, or is older than the one in force, is
// refused and the old list stays in force. Peers the new list revokes are
// disconnected at once; revoked DIDs are refused by the connection gater
// from then on.
func (c *controller) reloadRevocations() error {
	changed, err := c.loadRevocationsFile()
	if changed {
		c.enforceRevocations()
	}
	return err
}

// loadRevocationsFile applies the configured revocation list file to the
// verifier, without acting on the peers it revokes (New, before there are
// any).
func (c *controller) loadRevocationsFile() (bool, error) {
	if c.n.cfg.Revocations == "" {
		return false, nil
	}
	c.revMu.Lock()
	c.revStamp = pathStamp(c.n.cfg.Revocations)
	c.revMu.Unlock()
	data, err := fsutil.ReadFileLimited(c.n.cfg.Revocations, did.MaxRevocationListSize)
	if err != nil {
		return false, fmt.Errorf("revocation list: %w", err)
	}
	return c.updateRevocations(data, "file "+c.n.cfg.Revocations)
}

// applyRevocations applies a revocation list from the control topic or a
// peer's sync (pubsub.Control) and disconnects the peers it revokes.
func (c *controller) applyRevocations(token []byte, source string) (bool, error) {
	changed, err := c.updateRevocations(token, source)
	if changed {
		c.enforceRevocations()
	}
	return changed, err
}

// updateRevocations puts a revocation list in force in the verifier.
func (c *controller) updateRevocations(token []byte, source string) (bool, error) {
	c.revMu.Lock()
	defer c.revMu.Unlock()
	list, changed, err := c.n.verifier.Revocations().Update(token)
	if err != nil {
		if !errors.Is(err, did.ErrRollback) || source != "mesh" {
			c.n.log.Error("revocation list refused", "event_type", "revocations_refused", "source", source, "reason", oneLine(err))
		}
		return false, err
	}
	if !changed {
		return false, nil
	}
	c.n.standings.changedAll()
	c.n.log.Info("revocation list applied", "event_type", "revocations_applied", "source", source, "issuer", list.Issuer.String(),
		"version", list.Version, "credentials", len(list.Credentials), "subjects", len(list.Subjects))
	return true, nil
}

// enforceRevocations disconnects every peer whose credential or DID is now
// revoked, forgets revoked members known from their announcements, and
// rotates the sender keys if it did either.
func (c *controller) enforceRevocations() {
	rev := c.n.verifier.Revocations()
	removed := 0
	for _, p := range c.n.roster.connected.List() {
		if err := rev.Check(p.Credential); err != nil {
			c.n.drop(p.ID, "revoked", oneLine(err))
			if rev.SubjectRevoked(p.DID) {
				c.n.mesh.Blacklist(p.ID)
			}
			removed++
		}
	}
	// Connected peers not (yet) verified, whose DID is revoked.
	for _, p := range c.n.host.Network().Peers() {
		if d, err := did.DIDFromPeerID(p); err == nil && rev.SubjectRevoked(d) {
			c.n.drop(p, "revoked", "subject "+d.String()+" revoked")
			c.n.mesh.Blacklist(p)
			removed++
		}
	}
	// Members known only from their announcements could pull our sender
	// keys as well.
	if forgotten := c.n.roster.forget(func(cred *did.Credential) bool { return rev.Check(cred) != nil }); len(forgotten) > 0 {
		c.n.log.Info("revoked members forgotten", "event_type", "members_forgotten", "reason", "revoked", "members", len(forgotten))
		removed += len(forgotten)
	}
	// Whatever a removed member could read, it could read only with our
	// current sender keys: replace them.
	if removed > 0 {
		c.n.mesh.RotateKeys("revocation")
	}
}

// watchPath calls reload whenever the file, or the files of the directory,
// at path change (polled every revocationPoll: it works on every
// filesystem). stamp, under mu, is what the last reload saw; a missing path
// is left alone.
func (c *controller) watchPath(ctx context.Context, path string, mu *sync.Mutex, stamp *fileStamp, reload func() error) {
	t := time.NewTicker(revocationPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st := pathStamp(path)
		mu.Lock()
		same := st == *stamp
		mu.Unlock()
		if !same && st != (fileStamp{}) {
			_ = reload() // reload logs why it refused
		}
	}
}

// ControlState is the revocation lists, policy bundle and reference values
// in force, for late joiners.
func (c *controller) ControlState() pubsub.ControlState {
	var st pubsub.ControlState
	for _, l := range c.n.verifier.Revocations().Lists() {
		st.Revocations = append(st.Revocations, []byte(l.Raw))
	}
	if ref := c.n.references.Current(); ref != nil {
		st.Reference = ref.Raw
	}
	c.polMu.Lock()
	defer c.polMu.Unlock()
	st.Bundle = c.bundle
	return st
}

// ApplyPolicyBundle verifies a signed policy bundle from the control topic
// (pinned issuer, newer version, compiles) and swaps the policy.
func (c *controller) ApplyPolicyBundle(token []byte) (bool, error) {
	c.polMu.Lock()
	if c.bundle != nil && string(c.bundle) == string(token) {
		c.polMu.Unlock()
		return false, nil
	}
	b, err := c.n.policy.ApplyBundle(token, c.n.verifier.Trusts)
	if err != nil {
		c.polMu.Unlock()
		if !errors.Is(err, policy.ErrRollback) {
			c.n.log.Error("policy bundle refused", "event_type", "policy_refused", "reason", oneLine(err))
		}
		return false, err
	}
	c.bundle = append([]byte(nil), token...)
	c.polMu.Unlock()
	c.n.log.Info("policy bundle applied", "event_type", "policy_applied", "issuer", b.Issuer.String(), "version", b.Version)
	c.policyChanged()
	return true, nil
}

// reloadPolicy loads the configured policy file or directory. A policy that
// does not compile is refused and the old one stays in force. While a
// signed bundle from the mesh is in force, the file is not reloaded.
func (c *controller) reloadPolicy() error {
	loaded, err := c.loadPolicyFile()
	if loaded {
		c.policyChanged()
	}
	return err
}

// loadPolicyFile puts the configured policy file in force, without acting
// on the peers it may now refuse (New, before there are any).
func (c *controller) loadPolicyFile() (loaded bool, err error) {
	if c.n.cfg.Policy == "" {
		return false, nil
	}
	c.polMu.Lock()
	c.polStamp = pathStamp(c.n.cfg.Policy)
	if c.bundle != nil {
		c.polMu.Unlock()
		c.n.log.Warn("policy file not reloaded: a signed bundle is in force", "event_type", "policy_reload_skipped", "version", c.n.policy.Version())
		return false, nil
	}
	err = c.n.policy.LoadPath(c.n.cfg.Policy)
	c.polMu.Unlock()
	if err != nil {
		c.n.log.Error("policy file refused", "event_type", "policy_refused", "file", c.n.cfg.Policy, "reason", oneLine(err))
		return false, fmt.Errorf("policy %s: %w", c.n.cfg.Policy, err)
	}
	c.n.log.Info("policy loaded", "event_type", "policy_applied", "source", c.n.policy.Source(), "version", c.n.policy.Version())
	return true, nil
}

// policyChanged enforces a new policy: new sender keys (only members the
// new policy allows can pull them) and peers subscribed where they may no
// longer be are disconnected, to rejoin under the new rules.
func (c *controller) policyChanged() {
	c.n.mesh.RotateKeys("policy changed")
	for _, p := range c.n.roster.connected.List() {
		if c.n.mesh.Disallowed(p.ID) {
			c.n.drop(p.ID, "policy", "the policy no longer allows a topic it is subscribed to")
		}
	}
}

// ApplyReference implements pubsub.Control: issuer-signed reference
// values, newer than those in force.
func (c *controller) ApplyReference(token []byte) (bool, error) {
	ref, changed, err := c.n.references.Update(token)
	if errors.Is(err, attest.ErrRollback) {
		return false, fmt.Errorf("%w: %w", pubsub.ErrStale, err)
	}
	if err != nil || !changed {
		return false, err
	}
	c.n.log.Info("attestation reference values applied", "event_type", "reference_applied", "issuer", ref.Issuer.String(), "version", ref.Version)
	// Re-judge the evidence we hold against the new values; peers without
	// evidence are pending from now.
	for _, ev := range c.n.trust.Reference(c.n.now()) {
		_, _ = c.n.judgeEvidence(ev, true)
	}
	c.n.reassessAll("reference values changed")
	return true, nil
}

// reloadReference reads the configured reference values file.
func (c *controller) reloadReference() error {
	if c.n.cfg.Reference == "" {
		return nil
	}
	c.refMu.Lock()
	c.refStamp = pathStamp(c.n.cfg.Reference)
	c.refMu.Unlock()
	data, err := fsutil.ReadFileLimited(c.n.cfg.Reference, 1<<20)
	if err != nil {
		return fmt.Errorf("reference values: %w", err)
	}
	if _, err := c.ApplyReference(data); err != nil && !errors.Is(err, pubsub.ErrStale) {
		c.n.log.Error("reference values refused", "event_type", "reference_refused", "file", c.n.cfg.Reference, "reason", oneLine(err))
		return err
	}
	return nil
}
