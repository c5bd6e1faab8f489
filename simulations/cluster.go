package simulations

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"

	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/node"
)

// Link is the model of every link between two simulated nodes.
type Link struct {
	Latency   time.Duration // one way
	Bandwidth float64       // bytes per second per link direction; 0 = unlimited
	// TCP puts the nodes on real TCP on 127.0.0.1 instead of mocknet
	// (Latency and Bandwidth then do not apply).
	TCP bool
}

// NodeSpec is what one node's credential says.
type NodeSpec struct {
	Zones []string
	Role  string
	Trust float64
}

// ClusterConfig describes a simulated mesh.
type ClusterConfig struct {
	Mesh  string
	Nodes []NodeSpec
	Link  Link
	// Dir holds the nodes' data directories ("" = a new temporary one,
	// removed by Close).
	Dir string
	// Logger receives every node's logs; nil discards them.
	Logger *slog.Logger
	// Configure, if set, adjusts node i's Config and Options before it is
	// created.
	Configure func(i int, cfg *node.Config, opts *node.Options)
	// IssueOptions are passed to every credential issuance.
	IssueOptions did.IssueOptions
	// Progress, if set, receives a line every 30 s while Wire connects.
	Progress func(format string, args ...any)
}

// Cluster is a running simulated mesh: real ztmesh nodes (credentials,
// handshake, policy, GossipSub, sealing) on go-libp2p's mocknet, whose links
// add latency and limit bandwidth in memory. Nothing in the data path is
// replaced; only the transport is.
type Cluster struct {
	Issuer *did.Identity
	Net    mocknet.Mocknet
	Nodes  []*Member
	cfg    ClusterConfig
	dir    string
	rmDir  bool
}

// Member is one node of a Cluster.
type Member struct {
	*node.Node
	Index int
	ID    *did.Identity
	Spec  NodeSpec
	Token string // its credential
}

// NewCluster creates and starts every node of cfg. Nodes are not connected
// yet: call Connect or Wire.
func NewCluster(ctx context.Context, cfg ClusterConfig) (*Cluster, error) {
	if cfg.Mesh == "" {
		cfg.Mesh = "sim"
	}
	c := &Cluster{cfg: cfg, Net: mocknet.New(), dir: cfg.Dir}
	c.Net.SetLinkDefaults(mocknet.LinkOptions{Latency: cfg.Link.Latency, Bandwidth: cfg.Link.Bandwidth})
	if c.dir == "" {
		d, err := os.MkdirTemp("", "ztmesh-sim-")
		if err != nil {
			return nil, err
		}
		c.dir, c.rmDir = d, true
	}
	var err error
	if c.Issuer, err = did.GenerateIdentity(rand.Reader); err != nil {
		return nil, err
	}
	c.Nodes = make([]*Member, len(cfg.Nodes))
	// Node creation is CPU-bound (credential issuance and verification,
	// OPA compilation): two workers keep both cores busy.
	errs := make([]error, len(cfg.Nodes))
	work := make(chan int)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for i := range work {
				c.Nodes[i], errs[i] = c.start(ctx, i, cfg.Nodes[i])
			}
		})
	}
	for i := range cfg.Nodes {
		work <- i
	}
	close(work)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Issue issues a credential for id under the cluster's issuer.
func (c *Cluster) Issue(id *did.Identity, spec NodeSpec, opts did.IssueOptions) (string, error) {
	return did.Issue(c.Issuer, id.DID(), did.Claims{
		Role: spec.Role, TrustScore: spec.Trust, Zones: spec.Zones, SoftwareVersion: "1.4.0",
	}, opts)
}

func (c *Cluster) start(ctx context.Context, i int, spec NodeSpec) (*Member, error) {
	id, err := did.GenerateIdentity(rand.Reader)
	if err != nil {
		return nil, err
	}
	tok, err := c.Issue(id, spec, c.cfg.IssueOptions)
	if err != nil {
		return nil, err
	}
	n, err := c.StartNode(ctx, i, id, tok)
	if err != nil {
		return nil, err
	}
	return &Member{Node: n, Index: i, ID: id, Spec: spec, Token: tok}, nil
}

// StartNode starts one node with identity id and credential token on the
// cluster's network, configured like the others (index i is passed to
// Configure). Attackers use it with credentials of their own making.
func (c *Cluster) StartNode(ctx context.Context, i int, id *did.Identity, token string) (*node.Node, error) {
	dir := filepath.Join(c.dir, fmt.Sprintf("n%05d-%s", i, id.DID().String()[len(id.DID().String())-8:]))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, did.CredentialFile), []byte(token), 0o600); err != nil {
		return nil, err
	}
	off := false
	cfg := node.Config{
		Dir:          dir,
		Mesh:         c.cfg.Mesh,
		TrustIssuers: []string{c.Issuer.DID().String()},
		MDNS:         &off,
		API:          "off",
		// Listen is unused on mocknet, but must parse.
		Listen:    []string{"/ip4/127.0.0.1/tcp/0"},
		AuthGrace: node.Duration(5 * time.Second),
		ConnLow:   400, ConnHigh: 600,
	}
	logger := c.cfg.Logger
	if logger == nil {
		logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	opts := node.Options{
		Identity: id,
		Logger:   logger,
		Test: node.TestHooks{
			// Evidence broadcasts cost every node a verification of every
			// other node's evidence; scenarios that measure attestation
			// turn them on.
			AttestDelay: -1,
			// A fixed hash: every simulated node runs "the approved binary".
			BinarySHA256: "5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f",
			NewHost: func(key crypto.PrivKey, gater connmgr.ConnectionGater) (host.Host, error) {
				return c.addHost(key)
			},
		},
	}
	if c.cfg.Link.TCP {
		opts.Test.NewHost = nil // the node's own host, listening below
	}
	if c.cfg.Configure != nil {
		c.cfg.Configure(i, &cfg, &opts)
	}
	n, err := node.New(cfg, opts)
	if err != nil {
		return nil, err
	}
	if err := n.Start(ctx); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// addHost adds a mocknet host with identity key.
func (c *Cluster) addHost(key crypto.PrivKey) (host.Host, error) {
	pid, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, err
	}
	// A unique blackhole address per peer, as mocknet's GenPeer makes.
	h, err := c.Net.AddPeer(key, blackholeAddr(pid))
	if err != nil {
		return nil, err
	}
	return h, nil
}

// Connect links and connects a and b (the dial runs the ztmesh handshake).
func (c *Cluster) Connect(ctx context.Context, a, b host.Host) error {
	if !c.cfg.Link.TCP {
		if _, err := c.Net.LinkPeers(a.ID(), b.ID()); err != nil {
			return err
		}
	}
	return a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()})
}

// Wire connects the cluster in the locality topology of Topology.
func (c *Cluster) Wire(ctx context.Context, degree, cross int, seed uint64) error {
	specs := make([]NodeSpec, len(c.Nodes))
	for i, m := range c.Nodes {
		specs[i] = m.Spec
	}
	pairs := Topology(specs, degree, cross, seed)
	var done atomic.Int64
	if c.cfg.Progress != nil {
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			t := time.NewTicker(30 * time.Second)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					c.cfg.Progress("wiring: %d of %d connections made", done.Load(), len(pairs))
				}
			}
		}()
	}
	connect := func(p [2]int) error {
		a, b := c.Nodes[p[0]], c.Nodes[p[1]]
		// Generous: while hundreds of nodes join at once, each one's
		// announcement reaches all the others, and the dial waits for
		// identify on a busy machine.
		dctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		if err := c.Connect(dctx, a.Host(), b.Host()); err != nil {
			return fmt.Errorf("connect %d-%d: %w", a.Index, b.Index, err)
		}
		return nil
	}
	var (
		mu     sync.Mutex
		failed [][2]int
	)
	parallel(len(pairs), 16, func(i int) error {
		defer done.Add(1)
		if err := connect(pairs[i]); err != nil {
			mu.Lock()
			failed = append(failed, pairs[i])
			mu.Unlock()
		}
		return nil
	})
	if len(failed) == 0 || ctx.Err() != nil {
		return ctx.Err()
	}
	// A dial that timed out while a thousand nodes joined at once is tried
	// once more when the rush is over, as a real node would redial.
	if c.cfg.Progress != nil {
		c.cfg.Progress("wiring: %d of %d dials failed; trying them again", len(failed), len(pairs))
	}
	return parallel(len(failed), 4, func(i int) error { return connect(failed[i]) })
}

// Topology returns the links of a fleet: the members of each zone form a
// ring (so no zone is ever split), and every node adds random distinct
// members of its first zone until it has degree zone links, plus cross
// random nodes of any zone (they carry the control topic between zones).
// The same seed gives the same graph, so a baseline can run on exactly the
// links ztmesh ran on.
func Topology(specs []NodeSpec, degree, cross int, seed uint64) [][2]int {
	r := mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var zoneNames []string
	byZone := map[string][]int{}
	for i, s := range specs {
		if len(s.Zones) > 0 {
			z := s.Zones[0]
			if _, ok := byZone[z]; !ok {
				zoneNames = append(zoneNames, z)
			}
			byZone[z] = append(byZone[z], i)
		}
	}
	seen := map[[2]int]bool{}
	deg := make([]int, len(specs)) // zone links per node
	var pairs [][2]int
	add := func(a, b int) bool {
		p := [2]int{min(a, b), max(a, b)}
		if a == b || seen[p] {
			return false
		}
		seen[p] = true
		pairs = append(pairs, p)
		return true
	}
	for _, z := range zoneNames { // in first-seen order: deterministic
		members := byZone[z]
		ring := slices.Clone(members)
		r.Shuffle(len(ring), func(i, j int) { ring[i], ring[j] = ring[j], ring[i] })
		for i := range ring {
			if len(ring) > 1 && add(ring[i], ring[(i+1)%len(ring)]) {
				deg[ring[i]]++
				deg[ring[(i+1)%len(ring)]]++
			}
		}
	}
	for i, s := range specs {
		if len(s.Zones) > 0 {
			members := byZone[s.Zones[0]]
			for _, k := range r.Perm(len(members)) {
				if deg[i] >= min(degree, len(members)-1) {
					break
				}
				if j := members[k]; add(i, j) {
					deg[i]++
					deg[j]++
				}
			}
		}
		for range cross {
			add(i, r.IntN(len(specs)))
		}
	}
	return pairs
}

// parallel calls f(i) for each i in [0, n), at most limit at a time, and
// joins their errors.
func parallel(n, limit int, f func(i int) error) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, limit)
	)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := f(i); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// linker links two peers on a network (mocknet.Mocknet.LinkPeers).
type linker interface {
	LinkPeers(a, b peer.ID) (mocknet.Link, error)
}

// connectPairs links and connects pairs of hosts, a few at a time.
func connectPairs(ctx context.Context, net linker, hosts []host.Host, pairs [][2]int) error {
	return parallel(len(pairs), 32, func(i int) error {
		a, b := hosts[pairs[i][0]], hosts[pairs[i][1]]
		if _, err := net.LinkPeers(a.ID(), b.ID()); err != nil {
			return err
		}
		dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := a.Connect(dctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
			return fmt.Errorf("connect %d-%d: %w", pairs[i][0], pairs[i][1], err)
		}
		return nil
	})
}

// linkZoneMembers gives every pair of nodes that share a zone (zones[i] is
// node i's) a mocknet link: a network path, not a connection. A ztmesh node
// that receives a message from an origin it is not connected to dials that
// origin for its sender key, at the addresses of its member announcement;
// on a real network that dial works, but mocknet refuses dials between
// peers it has not linked. Links carry no traffic until a node dials, so
// the GossipSub topology stays the one Wire built (and the one the
// baseline runs on). Equal zones for all nodes link every pair.
func linkZoneMembers(net mocknet.Mocknet, ids []peer.ID, zones []string) error {
	linked := map[[2]peer.ID]bool{}
	for a, m := range net.Links() {
		for b, ls := range m {
			if len(ls) > 0 { // a removed link may leave an empty set
				linked[[2]peer.ID{peer.ID(a), peer.ID(b)}] = true
			}
		}
	}
	for i := range ids {
		for j := i + 1; j < len(ids); j++ {
			if zones[i] != zones[j] || linked[[2]peer.ID{ids[i], ids[j]}] || linked[[2]peer.ID{ids[j], ids[i]}] {
				continue
			}
			if _, err := net.LinkPeers(ids[i], ids[j]); err != nil {
				return err
			}
		}
	}
	return nil
}

// LinkZones links every pair of nodes whose first zones are equal (see
// linkZoneMembers); on TCP any node can dial any other already.
func (c *Cluster) LinkZones() error {
	if c.cfg.Link.TCP {
		return nil
	}
	ids := make([]peer.ID, len(c.Nodes))
	zones := make([]string, len(c.Nodes))
	for i, m := range c.Nodes {
		ids[i] = m.Host().ID()
		if len(m.Spec.Zones) > 0 {
			zones[i] = m.Spec.Zones[0]
		}
	}
	return linkZoneMembers(c.Net, ids, zones)
}

// AwaitVerified waits until every node has verified at least want peers
// (capped by how many it is connected to), or ctx ends.
func (c *Cluster) AwaitVerified(ctx context.Context) error {
	for {
		pending := 0
		for _, m := range c.Nodes {
			if m.Registry().Len() < len(m.Host().Network().Peers()) {
				pending++
			}
		}
		if pending == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d nodes still have unverified peers: %w", pending, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Close stops every node and removes the temporary data directory.
func (c *Cluster) Close() error {
	var wg sync.WaitGroup
	for _, m := range c.Nodes {
		if m != nil {
			wg.Go(func() { m.Close() })
		}
	}
	wg.Wait()
	err := c.Net.Close()
	if c.rmDir {
		err = errors.Join(err, os.RemoveAll(c.dir))
	}
	return err
}

// Zones returns zone names z000, z001, ... for n zones.
func Zones(n int) []string {
	out := make([]string, n)
	w := max(3, int(math.Ceil(math.Log10(float64(n+1)))))
	for i := range out {
		out[i] = fmt.Sprintf("z%0*d", w, i)
	}
	return out
}
