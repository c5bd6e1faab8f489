package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/internal/fsutil"
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
	changed, err := n.loadRevocationsFile()
	if changed {
		n.enforceRevocations()
	}
	return err
}

// loadRevocationsFile applies the configured revocation list file to the
// verifier, without acting on the peers it revokes (New, before there are
// any).
func (n *Node) loadRevocationsFile() (bool, error) {
	if n.cfg.Revocations == "" {
		return false, nil
	}
	n.revMu.Lock()
	n.revStamp = pathStamp(n.cfg.Revocations)
	n.revMu.Unlock()
	data, err := fsutil.ReadFileLimited(n.cfg.Revocations, did.MaxRevocationListSize)
	if err != nil {
		return false, fmt.Errorf("revocation list: %w", err)
	}
	return n.updateRevocations(data, "file "+n.cfg.Revocations)
}

// applyRevocations applies a revocation list from the control topic or a
// peer's sync (pubsub.Control) and disconnects the peers it revokes.
func (n *Node) applyRevocations(token []byte, source string) (bool, error) {
	changed, err := n.updateRevocations(token, source)
	if changed {
		n.enforceRevocations()
	}
	return changed, err
}

// updateRevocations puts a revocation list in force in the verifier.
func (n *Node) updateRevocations(token []byte, source string) (bool, error) {
	n.revMu.Lock()
	defer n.revMu.Unlock()
	list, changed, err := n.verifier.Revocations().Update(token)
	if err != nil {
		if !errors.Is(err, did.ErrRollback) || source != "mesh" {
			n.log.Error("revocation list refused", "event_type", "revocations_refused", "source", source, "reason", oneLine(err))
		}
		return false, err
	}
	if !changed {
		return false, nil
	}
	n.standings.changedAll()
	n.log.Info("revocation list applied", "event_type", "revocations_applied", "source", source, "issuer", list.Issuer.String(),
		"version", list.Version, "credentials", len(list.Credentials), "subjects", len(list.Subjects))
	return true, nil
}

// enforceRevocations disconnects every peer whose credential or DID is now revoked.
func (n *Node) enforceRevocations() {
	rev := n.verifier.Revocations()
	removed := 0
	for _, p := range n.roster.connected.List() {
		if err := rev.Check(p.Credential); err != nil {
			n.drop(p.ID, "revoked", oneLine(err))
			if rev.SubjectRevoked(p.DID) {
				n.mesh.Blacklist(p.ID)
			}
			removed++
		}
	}
	// Connected peers not (yet) verified, whose DID is revoked.
	for _, p := range n.host.Network().Peers() {
		if d, err := did.DIDFromPeerID(p); err == nil && rev.SubjectRevoked(d) {
			n.drop(p, "revoked", "subject "+d.String()+" revoked")
			n.mesh.Blacklist(p)
			removed++
		}
	}
	// Whatever a removed member could read, it could read only with our
	// current sender keys: replace them.
	if removed > 0 {
		n.mesh.RotateKeys("revocation")
	}
}

// watchPath calls reload whenever the file, or the files of the directory,
// at path change (polled every revocationPoll: it works on every
// filesystem). stamp, under mu, is what the last reload saw; a missing path
// is left alone.
func (n *Node) watchPath(ctx context.Context, path string, mu *sync.Mutex, stamp *fileStamp, reload func() error) {
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

// oneLine folds a multi-line error (errors.Join) into one line for logs.
func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}
