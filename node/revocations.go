package node

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ztmesh/ztmesh/did"
)

// revocationPoll is how often the revocation file is checked for changes.
// Polling (not inotify) works on every filesystem and keeps the cut-off
// within a second of the file changing.
const revocationPoll = 250 * time.Millisecond

type fileStamp struct {
	mod  time.Time
	size int64
}

// ReloadRevocations reads the configured revocation list file and applies
// it. A list that fails to verify, or is older than the one in force, is
// refused and the old list stays in force. Peers the new list revokes are
// disconnected at once; revoked DIDs are refused by the connection gater
// from then on.
func (n *Node) ReloadRevocations() error {
	if n.cfg.Revocations == "" {
		return nil
	}
	n.revMu.Lock()
	defer n.revMu.Unlock()
	if fi, err := os.Stat(n.cfg.Revocations); err == nil {
		n.revStamp = fileStamp{fi.ModTime(), fi.Size()}
	}
	data, err := did.ReadFileLimited(n.cfg.Revocations, did.MaxRevocationListSize)
	if err != nil {
		return fmt.Errorf("revocation list: %w", err)
	}
	list, changed, err := n.verifier.Revocations().Update(data)
	if err != nil {
		n.log.Error("revocation list refused", "event_type", "revocations_refused", "file", n.cfg.Revocations, "reason", oneLine(err))
		return err
	}
	if !changed {
		return nil
	}
	n.log.Info("revocation list applied", "event_type", "revocations_applied", "issuer", list.Issuer.String(),
		"version", list.Version, "credentials", len(list.Credentials), "subjects", len(list.Subjects))
	if n.host != nil {
		n.enforceRevocations()
	}
	return nil
}

// enforceRevocations disconnects every peer whose credential or DID is now revoked.
func (n *Node) enforceRevocations() {
	rev := n.verifier.Revocations()
	for _, p := range n.registry.List() {
		if err := rev.Check(p.Credential); err != nil {
			n.drop(p.ID, "revoked", oneLine(err))
		}
	}
	// Connected peers not (yet) verified, whose DID is revoked.
	for _, p := range n.host.Network().Peers() {
		if d, err := did.DIDFromPeerID(p); err == nil && rev.SubjectRevoked(d) {
			n.drop(p, "revoked", "subject "+d.String()+" revoked")
		}
	}
}

// watchRevocations reloads the revocation file when it changes.
func (n *Node) watchRevocations(ctx context.Context) {
	t := time.NewTicker(revocationPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fi, err := os.Stat(n.cfg.Revocations)
		if err != nil {
			continue
		}
		n.revMu.Lock()
		same := n.revStamp == fileStamp{fi.ModTime(), fi.Size()}
		n.revMu.Unlock()
		if !same {
			_ = n.ReloadRevocations() // logged inside
		}
	}
}

// oneLine folds a multi-line error (errors.Join) into one line for logs.
func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}
