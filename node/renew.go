package node

import (
	"context"
	"fmt"

	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/internal/fsutil"
)

// InstallCredential verifies a new credential for this node, stores it in
// the credential file and presents it to every connected peer, which
// replaces the old one in their registries without reconnecting.
func (n *Node) InstallCredential(tok []byte) (*did.Credential, error) {
	c, err := n.verifier.VerifyHolder(tok, n.id.DID(), n.now())
	if err != nil {
		return nil, err
	}
	if err := fsutil.WriteFileAtomic(n.cfg.Credential, []byte(c.Raw+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("store credential: %w", err)
	}
	n.cred.Store(c)
	n.log.Info("credential installed", "event_type", "credential_installed", "credential", c.ID,
		"expires", c.Expires.Format("2006-01-02T15:04:05Z07:00"))
	for _, p := range n.host.Network().Peers() {
		n.goLoop(func(ctx context.Context) { n.handshakes.presentTo(ctx, p) })
	}
	n.goLoop(func(ctx context.Context) { _ = n.Announce(ctx) }) // members further away learn it too
	return c, nil
}
