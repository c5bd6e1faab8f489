package node

import (
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/peer"

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
