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
	n     *Node
	store *controlStore // what it accepted, durable across restarts

	revMu    sync.Mutex // serializes revocation reloads
	revStamp fileStamp

	polMu      sync.Mutex // serializes policy reloads and bundles
	polStamp   fileStamp
	bundle     []byte       // the signed policy bundle in force, if any
	heldBundle heldArtifact // the highest bundle accepted, in force or expired

	refMu    sync.Mutex // serializes reference values
	refStamp fileStamp
	heldRef  heldArtifact // the highest reference values accepted

	eqMu   sync.Mutex
	eqSeen map[string]bool // digests of equivocating artifacts already reported
}

// heldArtifact is the highest version of a control artifact accepted: the
// floor for the next one.
type heldArtifact struct {
	issuer  did.DID
	version uint64
	raw     []byte
}

// errEquivocation: an issuer signed two different artifacts of one kind
// with the same version.
var errEquivocation = errors.New("issuer equivocation")

// errOtherMesh: a revocation list signed for another mesh.
var errOtherMesh = errors.New("revocation list for another mesh")

// equivocation refuses got, a different artifact than held under the same
// issuer and version: evidence that the issuer's key is misused. Each
// distinct pair is logged at ERROR with both digests and counted once, so
// a replayed artifact does not flood the log.
func (c *controller) equivocation(kind string, issuer did.DID, version uint64, held, got []byte) error {
	heldSum, gotSum := digest(held), digest(got)
	c.eqMu.Lock()
	first := !c.eqSeen[kind+gotSum]
	if c.eqSeen == nil {
		c.eqSeen = map[string]bool{}
	}
	if len(c.eqSeen) < 1024 {
		c.eqSeen[kind+gotSum] = true
	}
	c.eqMu.Unlock()
	if first {
		c.n.log.Error("control artifact refused: its issuer signed another one with the same version",
			"event_type", "control_equivocation", "reason", "equivocation", "kind", kind, "issuer", issuer.String(),
			"version", version, "held_sha256", heldSum, "refused_sha256", gotSum)
		if c.n.metrics != nil {
			c.n.metrics.equivocations.WithLabelValues(kind).Inc()
		}
	}
	return fmt.Errorf("%s refused: %w: %s signed version %d twice (held sha256 %s, refused sha256 %s)",
		kind, errEquivocation, issuer, version, heldSum, gotSum)
}

// restore puts in force the control state persisted in the data dir (New,
// before the host exists: nothing is admitted under less than was
// accepted before the restart). Every stored artifact's version becomes a
// floor; a stored bundle that has expired, or names another mesh, keeps its
// floor but is not put in force. Anything that does not verify stops the
// node (fail closed).
func (c *controller) restore() error {
	st, err := openControlStore(c.n.cfg.Dir)
	if err != nil {
		return err
	}
	c.store = st
	for _, raw := range st.revocationLists() {
		if _, _, err := c.n.verifier.Revocations().Update(raw); err != nil {
			l, _ := did.ParseRevocationList(raw, func(did.DID) bool { return true })
			name := controlRevDir
			if l != nil {
				name = revocationsName(l.Issuer)
			}
			return st.corrupt(name, err)
		}
	}
	if raw := st.get(controlBundleFile); raw != nil {
		b, err := policy.VerifyBundle(raw, c.n.verifier.Trusts)
		if err != nil {
			return st.corrupt(controlBundleFile, err)
		}
		c.heldBundle = heldArtifact{issuer: b.Issuer, version: b.Version, raw: b.Raw}
		if err := b.CheckScope(c.n.cfg.Mesh, c.n.now()); err != nil {
			c.n.policy.RaiseBundleFloor(b.Version)
			c.n.log.Warn("persisted policy bundle not put in force; its version stays the floor", "event_type", "policy_refused",
				"reason", oneLine(err), "version", b.Version)
		} else {
			if _, err := c.n.policy.ApplyBundle(raw, c.n.verifier.Trusts); err != nil {
				return st.corrupt(controlBundleFile, err)
			}
			c.bundle = b.Raw
			c.n.log.Info("policy bundle restored", "event_type", "policy_applied", "source", "control state", "issuer", b.Issuer.String(), "version", b.Version)
		}
	}
	if raw := st.get(controlRefFile); raw != nil {
		ref, err := attest.VerifyReference(raw, c.n.verifier.Trusts)
		if err != nil {
			return st.corrupt(controlRefFile, err)
		}
		c.heldRef = heldArtifact{issuer: ref.Issuer, version: ref.Version, raw: ref.Raw}
		// Values of the first format came from the operator's file.
		if err := ref.CheckScope(c.n.cfg.Mesh, c.n.now()); ref.Mesh != "" && err != nil {
			c.n.references.RaiseFloor(ref.Version)
			c.n.log.Warn("persisted reference values not put in force; their version stays the floor", "event_type", "reference_refused",
				"reason", oneLine(err), "version", ref.Version)
		} else if _, _, err := c.n.references.Update(raw); err != nil {
			return st.corrupt(controlRefFile, err)
		}
	}
	return nil
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

// updateRevocations persists a revocation list, then puts it in force in
// the verifier.
func (c *controller) updateRevocations(token []byte, source string) (bool, error) {
	c.revMu.Lock()
	defer c.revMu.Unlock()
	if err := c.persistRevocations(token); err != nil {
		if !errors.Is(err, did.ErrRollback) {
			c.n.log.Error("revocation list refused", "event_type", "revocations_refused", "source", source, "reason", oneLine(err))
		}
		return false, err
	}
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

// persistRevocations writes a list newer than the one held from its
// issuer to the control state; a different list under the held version is
// equivocation. Anything else (older, the same, not verifying) is left to
// Revocations.Update to refuse or ignore.
func (c *controller) persistRevocations(token []byte) error {
	l, err := did.ParseRevocationList(token, c.n.verifier.Trusts)
	if err != nil {
		return nil
	}
	if l.Mesh != "" && l.Mesh != c.n.cfg.Mesh {
		return fmt.Errorf("revocation list rejected: %w: version %d from %s is for mesh %q, this node is in mesh %q",
			errOtherMesh, l.Version, l.Issuer, l.Mesh, c.n.cfg.Mesh)
	}
	for _, cur := range c.n.verifier.Revocations().Lists() {
		if cur.Issuer != l.Issuer {
			continue
		}
		if cur.Version == l.Version && cur.Raw != l.Raw {
			return c.equivocation("revocations", l.Issuer, l.Version, []byte(cur.Raw), []byte(l.Raw))
		}
		if cur.Version >= l.Version {
			return nil
		}
	}
	return c.store.put(revocationsName(l.Issuer), []byte(l.Raw))
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
	b, err := c.acceptBundle(token)
	if err == nil {
		_, err = c.n.policy.ApplyBundle(token, c.n.verifier.Trusts)
	}
	if err != nil {
		c.polMu.Unlock()
		if !errors.Is(err, policy.ErrRollback) && !errors.Is(err, errEquivocation) {
			c.n.log.Error("policy bundle refused", "event_type", "policy_refused", "reason", bundleReason(err), "detail", oneLine(err))
		}
		return false, err
	}
	c.bundle = b.Raw
	c.polMu.Unlock()
	c.n.log.Info("policy bundle applied", "event_type", "policy_applied", "issuer", b.Issuer.String(), "version", b.Version)
	c.policyChanged()
	return true, nil
}

// acceptBundle checks a bundle from the mesh against what this node holds
// (its mesh, its expiry, the version floor, equivocation) and persists it,
// under polMu, before it is put in force.
func (c *controller) acceptBundle(token []byte) (*policy.Bundle, error) {
	b, err := policy.VerifyBundle(token, c.n.verifier.Trusts)
	if err != nil {
		return nil, err
	}
	if err := b.CheckScope(c.n.cfg.Mesh, c.n.now()); err != nil {
		return nil, fmt.Errorf("policy bundle rejected: %w", err)
	}
	held := c.heldBundle
	switch {
	case held.version == b.Version && held.issuer == b.Issuer && string(held.raw) != string(b.Raw):
		return nil, c.equivocation("policy_bundle", b.Issuer, b.Version, held.raw, b.Raw)
	case b.Version <= held.version:
		return nil, fmt.Errorf("policy bundle rejected: %w: version %d from %s is not newer than version %d already accepted",
			policy.ErrRollback, b.Version, b.Issuer, held.version)
	}
	// Compile before persisting: a stored bundle must be one that applies.
	if err := policy.Validate(b.Modules); err != nil {
		return nil, fmt.Errorf("policy bundle version %d from %s rejected: %w", b.Version, b.Issuer, err)
	}
	if err := c.store.put(controlBundleFile, b.Raw); err != nil {
		return nil, err
	}
	c.heldBundle = heldArtifact{issuer: b.Issuer, version: b.Version, raw: b.Raw}
	return b, nil
}

// bundleReason is the one word a refused bundle is logged with.
func bundleReason(err error) string {
	switch {
	case errors.Is(err, policy.ErrOtherMesh):
		return "other_mesh"
	case errors.Is(err, policy.ErrExpired):
		return "expired"
	case errors.Is(err, policy.ErrRollback):
		return "rollback"
	case errors.Is(err, errEquivocation):
		return "equivocation"
	case errors.Is(err, policy.ErrCompile):
		return "compile"
	}
	return "invalid"
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
	return c.applyReference(token, true)
}

// applyReference persists and puts in force reference values from the mesh
// (which must name this mesh and not be expired) or from the operator's
// file (trusted in either format).
func (c *controller) applyReference(token []byte, fromMesh bool) (bool, error) {
	c.refMu.Lock()
	err := c.persistReference(token, fromMesh)
	var ref *attest.Reference
	changed := false
	if err == nil {
		ref, changed, err = c.n.references.Update(token)
	}
	c.refMu.Unlock()
	if errors.Is(err, errEquivocation) {
		return false, err
	}
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

// persistReference writes reference values newer than those held to the
// control state, under refMu; different values under the version held are
// equivocation. Anything else is left to References.Update.
func (c *controller) persistReference(token []byte, fromMesh bool) error {
	ref, err := attest.VerifyReference(token, c.n.verifier.Trusts)
	if err != nil {
		return nil
	}
	if fromMesh {
		if err := ref.CheckScope(c.n.cfg.Mesh, c.n.now()); err != nil {
			reason := "other_mesh"
			if errors.Is(err, attest.ErrExpired) {
				reason = "expired"
			}
			c.n.log.Error("reference values refused", "event_type", "reference_refused", "reason", reason, "detail", oneLine(err))
			return fmt.Errorf("reference values rejected: %w", err)
		}
	}
	held := c.heldRef
	if held.version == ref.Version && held.issuer == ref.Issuer && string(held.raw) != string(ref.Raw) {
		return c.equivocation("reference", ref.Issuer, ref.Version, held.raw, ref.Raw)
	}
	if ref.Version <= held.version {
		return nil
	}
	if err := c.store.put(controlRefFile, ref.Raw); err != nil {
		return err
	}
	c.heldRef = heldArtifact{issuer: ref.Issuer, version: ref.Version, raw: ref.Raw}
	return nil
}

// reloadReference reads the configured reference values file.
func (c *controller) reloadReference() error {
	if c.n.cfg.Reference == "" {
		return nil
	}
	c.refMu.Lock()
	c.refStamp = pathStamp(c.n.cfg.Reference)
	c.refMu.Unlock() // ApplyReference takes it again
	data, err := fsutil.ReadFileLimited(c.n.cfg.Reference, 1<<20)
	if err != nil {
		return fmt.Errorf("reference values: %w", err)
	}
	if _, err := c.applyReference(data, false); err != nil && !errors.Is(err, pubsub.ErrStale) {
		c.n.log.Error("reference values refused", "event_type", "reference_refused", "file", c.n.cfg.Reference, "reason", oneLine(err))
		return err
	}
	return nil
}
