package node

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	coreconnmgr "github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ztmesh/ztmesh/attest"
	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/internal/fsutil"
	"github.com/ztmesh/ztmesh/node/internal/trust"
	"github.com/ztmesh/ztmesh/policy"
	"github.com/ztmesh/ztmesh/pubsub"
)

// handshakeTimeout bounds one handshake exchange: a peer that is slower is
// dropped.
const handshakeTimeout = 5 * time.Second

// Options are a Node's dependencies beyond its Config. The zero value is
// usable: it loads the identity from the data dir, logs nowhere and uses
// the real clock.
type Options struct {
	// Identity, if set, is used instead of loading DIR/identity.key.
	Identity *did.Identity
	// Passphrase decrypts an encrypted identity.key.
	Passphrase []byte
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Test holds hooks for tests and simulations. A daemon leaves it zero.
	Test TestHooks
}

// TestHooks change what a node does in ways only tests and simulations
// want: many nodes in one process, replays that outlive a cache, a node
// that runs unapproved software. Their zero values are what a daemon does.
type TestHooks struct {
	// SeenTTL overrides GossipSub's seen-cache lifetime (tests of replays
	// that outlive it).
	SeenTTL time.Duration
	// BinarySHA256 overrides the measured hash of the node's executable in
	// its attestation evidence (tests of a node running unapproved software).
	BinarySHA256 string
	// AttestDelay is when the first evidence goes out after Start (0: 2 s;
	// negative: only when Attest is called).
	AttestDelay time.Duration
	// AppScoreTTL overrides how long GossipSub reuses a peer's standing as
	// its score while the standing does not change (0: appScoreTTL;
	// negative: never reused).
	AppScoreTTL time.Duration
	// NewHost, if set, builds the libp2p host instead of the TCP/QUIC one:
	// simulations run many nodes on go-libp2p's mocknet. It must use key
	// as the host's identity and should install gater, which refuses
	// revoked peers before any handshake (mocknet cannot take one).
	NewHost func(key crypto.PrivKey, gater coreconnmgr.ConnectionGater) (host.Host, error)
	// PolicyCompiles, if set, shares compiled policies with the other nodes
	// of this process that use it (simulations of thousands of nodes; see
	// policy.Compiles).
	PolicyCompiles *policy.Compiles
}

// Node is a running ztmesh peer.
type Node struct {
	cfg       Config
	s         *settings
	id        *did.Identity
	log       *slog.Logger
	now       func() time.Time
	verifier  *did.Verifier
	policy    *policy.Engine
	host      host.Host
	mesh      *pubsub.Mesh
	states    *states
	roster    *roster
	standings standingVersions // what GossipSub's score memo keys on
	metrics   *metrics
	cred      atomic.Pointer[did.Credential] // our own, verified
	// noReferenceLogged: "evidence not judged, no reference values" is logged once.
	noReferenceLogged atomic.Bool

	handshakes *handshakes

	mu     sync.Mutex // guards closed and the loops' WaitGroup
	closed bool

	control    *controller // revocations, policy, reference values
	trust      *trust.Book
	references *attest.References
	attestor   *attestor

	ctx       context.Context // until Close, or the end of Start's context
	cancel    context.CancelFunc
	stopAfter func() bool // unhooks cancel from Start's context
	wg        sync.WaitGroup
	api       *apiServer
	metricSrv *http.Server
	mdns      mdns.Service
}

// New builds a node from cfg: it loads the identity, verifies the node's own
// credential against the pinned issuers (a node never starts with a
// credential its peers would refuse), creates the libp2p host and the
// zone mesh, listening but not yet handling handshakes (a peer that
// connects before Start waits for it to be verified). Call Start, then
// Close.
func New(cfg Config, opts Options) (_ *Node, err error) {
	if cfg.Dir != "" {
		abs, err := filepath.Abs(cfg.Dir) // the API address written to api.addr must work from any cwd
		if err != nil {
			return nil, err
		}
		cfg.Dir = abs
	}
	cfg = cfg.WithDefaults()
	s, err := cfg.parse()
	if err != nil {
		return nil, err
	}
	n := &Node{
		cfg: cfg,
		s:   s,
		id:  opts.Identity,
		log: opts.Logger,
		now: opts.Now,
	}
	n.control = &controller{n: n}
	n.handshakes = &handshakes{n: n, pending: map[peer.ID]*time.Timer{},
		unverified: newUnverifiedConns(cfg.UnverifiedConns, cfg.UnverifiedConnsPerIP)}
	if n.now == nil {
		n.now = time.Now
	}
	if n.id == nil {
		if n.id, err = did.LoadIdentity(cfg.Dir, opts.Passphrase); err != nil {
			return nil, err
		}
	}
	if n.log == nil {
		n.log = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	n.log = n.log.With("node_id", n.id.DID().String())

	if n.verifier, err = did.NewVerifier(s.issuers); err != nil {
		return nil, err
	}
	if n.policy, err = policy.New(policy.WithLogger(n.log), policy.WithNow(n.now), policy.WithCompiles(opts.Test.PolicyCompiles)); err != nil {
		return nil, err
	}
	n.references = attest.NewReferences(n.verifier.Trusts)
	n.metrics = newMetrics(
		func() float64 { return float64(len(n.host.Network().Peers())) },
		func() float64 { return float64(n.roster.connected.Len()) })
	// The control state accepted before a restart is in force before the
	// host exists: it listens, and may be dialed, as soon as it does.
	if err := n.control.restore(); err != nil {
		return nil, err
	}
	if _, err := n.control.loadPolicyFile(); err != nil {
		return nil, err
	}
	n.trust = newTrustBook(n)
	n.attestor = &attestor{n: n, started: n.now(), delay: cmp.Or(opts.Test.AttestDelay, 2*time.Second),
		challenged: map[peer.ID]time.Time{}}
	if n.attestor.binaryHash = opts.Test.BinarySHA256; n.attestor.binaryHash == "" {
		m, err := attest.Measure(attest.MeasureOptions{})
		if err != nil {
			return nil, fmt.Errorf("measure own binary: %w", err)
		}
		n.attestor.binaryHash = m.BinarySHA256
	}
	if cfg.Revocations != "" && fsutil.FileExists(cfg.Revocations) {
		if _, err := n.control.loadRevocationsFile(); err != nil {
			return nil, err
		}
	}
	tok, err := fsutil.ReadFileLimited(cfg.Credential, did.MaxCredentialSize)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no credential at %s: have an issuer run `ztmesh cred issue --subject %s ...` and install it with `ztmesh cred install --dir %s FILE`",
			cfg.Credential, n.id.DID(), cfg.Dir)
	}
	if err != nil {
		return nil, fmt.Errorf("credential: %w", err)
	}
	own, err := n.verifier.VerifyHolder(tok, n.id.DID(), n.now())
	if err != nil {
		return nil, fmt.Errorf("own credential %s: %w", cfg.Credential, err)
	}
	n.cred.Store(own)

	newHost := n.newHost
	if opts.Test.NewHost == nil {
		if err := checkListenFree(n.s.listen); err != nil {
			return nil, err
		}
	} else {
		newHost = func() (host.Host, error) {
			return opts.Test.NewHost(n.id.LibP2PKey(), n.newGater())
		}
	}
	if n.host, err = newHost(); err != nil {
		return nil, err
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			n.cancel()
			if n.mesh != nil {
				n.mesh.Close()
			}
			n.host.Close()
		}
	}()
	n.roster = newRoster(n.verifier, n.now, rosterSelf{
		id: n.host.ID(), did: n.id.DID(), credential: n.cred.Load,
		keyPackage: func() []byte { return n.mesh.KeyPackage() },
		addrs:      n.host.Addrs, key: n.id.LibP2PKey(),
	}, n.host.Peerstore(), n.standings.changed)
	n.mesh, err = pubsub.New(n.ctx, n.host, pubsub.Config{
		Mesh: n.cfg.Mesh, Identity: n.id, Credential: n.cred.Load, Policy: n.policy,
		Members: members{n}, Control: n.control, Directory: n.roster, Logger: n.log, Now: n.now,
		MaxSkew: time.Duration(n.cfg.MaxSkew), RotateEvery: time.Duration(n.cfg.KeyRotation), Suite: n.cfg.KeySuite,
		SeenTTL: opts.Test.SeenTTL, OnReject: n.onReject, OnMisbehave: n.onMisbehave, RateLimit: n.s.rateLimit,
		AppScoreTTL: cmp.Or(opts.Test.AppScoreTTL, appScoreTTL), AttestInterval: time.Duration(n.cfg.AttestInterval),
	})
	if err != nil {
		return nil, err
	}
	// Reference values are judged by the trust book against the members
	// the roster holds (none yet).
	if cfg.Reference != "" && fsutil.FileExists(cfg.Reference) {
		if err := n.control.reloadReference(); err != nil {
			return nil, err
		}
	}
	n.metrics.registerZones(n)
	n.metrics.registerProcess(n)
	return n, nil
}

// newHost creates the libp2p host: TCP and QUIC, TLS 1.3 and Noise, yamux,
// identify and ping, our connection gater, and explicit resource limits.
func (n *Node) newHost() (host.Host, error) {
	limits := rcmgr.PartialLimitConfig{
		System: rcmgr.ResourceLimits{
			Conns: 1024, ConnsInbound: 512, ConnsOutbound: 512,
			Streams: 8192, StreamsInbound: 4096, StreamsOutbound: 4096,
			FD: 512, Memory: 512 << 20,
		},
		// Before the handshake, a peer gets few streams: it has proven nothing.
		PeerDefault: rcmgr.ResourceLimits{
			Conns: 8, Streams: 256, StreamsInbound: 128, StreamsOutbound: 128, Memory: 32 << 20,
		},
	}.Build(rcmgr.DefaultLimits.AutoScale())
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits))
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	cm, err := connmgr.NewConnManager(n.cfg.ConnLow, n.cfg.ConnHigh, connmgr.WithGracePeriod(time.Minute))
	if err != nil {
		return nil, fmt.Errorf("connection manager: %w", err)
	}
	h, err := libp2p.New(
		libp2p.Identity(n.id.LibP2PKey()),
		libp2p.ListenAddrs(n.s.listen...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(libp2pquic.NewTransport),
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ConnectionGater(n.newGater()),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.Ping(true),
		libp2p.DisableRelay(),
		libp2p.UserAgent("ztmeshd"),
	)
	if err != nil {
		return nil, fmt.Errorf("libp2p host: %w", err)
	}
	return h, nil
}

func (n *Node) newGater() *gater {
	return &gater{revocations: n.verifier.Revocations(), log: n.log, metrics: n.metrics}
}

// Start begins handling handshakes and runs the node's background work
// (expiry, revocation file, bootstrap, mDNS, local API, metrics) until Close
// or the end of ctx.
func (n *Node) Start(ctx context.Context) error {
	n.stopAfter = context.AfterFunc(ctx, n.cancel)
	if err := n.openStates(); err != nil {
		n.Close()
		return err
	}
	var err error
	n.host.SetStreamHandler(AttestProtocol, n.attestor.handleChallenge)
	n.host.SetStreamHandler(AuthProtocol, n.handshakes.handleAuth)
	n.host.Network().Notify(&network.NotifyBundle{
		ConnectedF:    func(_ network.Network, c network.Conn) { n.handshakes.onConnected(c) },
		DisconnectedF: func(_ network.Network, c network.Conn) { n.handshakes.onDisconnected(c) },
	})
	// Connections made before Notify (none in practice) are handled too.
	for _, c := range n.host.Network().Conns() {
		n.handshakes.onConnected(c)
	}

	if n.s.apiNet != "off" {
		if n.api, err = newAPIServer(n); err != nil {
			n.Close()
			return err
		}
	}
	if n.s.metrics != "" {
		if err := n.serveMetrics(); err != nil {
			n.Close()
			return err
		}
	}
	n.goLoop(n.expiryLoop)
	n.control.watch()
	n.goLoop(n.attestor.loop)
	n.goLoop(n.announceLoop)
	for _, ai := range n.s.bootstrap {
		n.goLoop(func(ctx context.Context) { n.keepConnected(ctx, ai) })
	}
	if *n.cfg.MDNS {
		n.mdns = mdns.NewMdnsService(n.host, "_ztmesh-"+n.cfg.Mesh+"._udp", mdnsNotifee{n})
		if err := n.mdns.Start(); err != nil {
			n.log.Warn("mDNS discovery not started", "event_type", "mdns_error", "reason", err.Error())
			n.mdns = nil
		}
	}
	n.log.Info("node started", "event_type", "node_started", "peer_id", n.host.ID().String(),
		"listen", multiaddrStrings(n.ListenAddrs()), "mesh", n.cfg.Mesh, "api", n.cfg.API)
	return nil
}

// goLoop runs f in a goroutine that Close waits for. After Close it does
// nothing: the WaitGroup is only added to under n.mu while the node is open.
func (n *Node) goLoop(f func(ctx context.Context)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f(n.ctx)
	}()
}

// Close stops the node: it closes the API, discovery and host, and waits for
// every goroutine the node started.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	n.mu.Unlock()
	n.handshakes.stop()
	if n.stopAfter != nil {
		n.stopAfter()
	}
	n.cancel()
	var errs []error
	if n.api != nil {
		errs = append(errs, n.api.close())
	}
	if n.metricSrv != nil {
		errs = append(errs, n.metricSrv.Close())
	}
	if n.mdns != nil {
		errs = append(errs, n.mdns.Close())
	}
	if n.states != nil {
		errs = append(errs, n.states.close())
	}
	errs = append(errs, n.mesh.Close())
	errs = append(errs, n.host.Close())
	n.wg.Wait()
	n.log.Info("node stopped", "event_type", "node_stopped")
	return errors.Join(errs...)
}

// Reload reads the configured revocation list, policy and reference
// values files again (ztmeshd does on SIGHUP). A file that is refused
// leaves what is in force; the errors say which and why.
func (n *Node) Reload() error { return n.control.reload() }

// DID is the node's DID.
func (n *Node) DID() did.DID { return n.id.DID() }

// Host is the node's libp2p host.
func (n *Node) Host() host.Host { return n.host }

// Registry is the node's registry of verified connected peers.
func (n *Node) Registry() *Registry { return n.roster.connected }

// Credential is the node's own current credential.
func (n *Node) Credential() *did.Credential { return n.cred.Load() }

// Mesh is the node's zone messaging.
func (n *Node) Mesh() *pubsub.Mesh { return n.mesh }

// Policy is the node's policy engine.
func (n *Node) Policy() *policy.Engine { return n.policy }

// Config is the node's configuration, with defaults applied.
func (n *Node) Config() Config { return n.cfg }

// ListenAddrs are the node's listen addresses, each ending in /p2p/<peer-id>.
func (n *Node) ListenAddrs() []ma.Multiaddr {
	ai := peer.AddrInfo{ID: n.host.ID(), Addrs: n.host.Addrs()}
	addrs, err := peer.AddrInfoToP2pAddrs(&ai)
	if err != nil {
		return nil
	}
	return addrs
}

func (n *Node) serveMetrics() error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(n.metrics.reg, promhttp.HandlerOpts{}))
	healthHandlers(mux, n)
	ln, err := listenTCP(n.s.metrics)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	if !isLoopback(n.s.metrics) {
		n.log.Warn("metrics served on a non-loopback address", "event_type", "metrics_public", "addr", n.s.metrics,
			"reason", "metrics_public is set: anyone who reaches this address sees every peer's DID and trust score")
	}
	n.metricSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	n.goLoop(func(context.Context) {
		if err := n.metricSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("metrics server", "event_type", "metrics_error", "reason", err.Error())
		}
	})
	return nil
}

// expiryLoop drops verified peers whose credential expired, forgets the
// directory's, and rotates the sender keys if it did either. It wakes every
// second: expiry is enforced within a second, and a credential renewed in
// time has replaced the registry entry before it is looked at.
func (n *Node) expiryLoop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := n.now()
		expired := n.roster.connected.expired(now, did.DefaultClockSkew)
		for _, p := range expired {
			n.drop(p.ID, "expired", fmt.Sprintf("credential %s expired at %s", p.Credential.ID, p.Credential.Expires.Format(time.RFC3339)))
		}
		forgotten := n.roster.forget(func(c *did.Credential) bool { return now.After(c.Expires.Add(did.DefaultClockSkew)) })
		if len(forgotten) > 0 {
			n.log.Info("expired members forgotten", "event_type", "members_forgotten", "reason", "credential expired", "members", len(forgotten))
		}
		// A member, connected or not, could pull our sender keys while
		// its credential was valid: replace them.
		if len(expired)+len(forgotten) > 0 {
			n.mesh.RotateKeys("credential expired")
		}
	}
}

// drop removes a peer from the registry and closes its connections.
func (n *Node) drop(p peer.ID, reason, detail string) {
	n.roster.Remove(p)
	n.metrics.refusal(reason)
	n.log.Warn("peer dropped", "event_type", "peer_dropped", "peer", p.String(), "reason", reason, "detail", detail)
	if err := n.host.Network().ClosePeer(p); err != nil {
		n.log.Debug("close peer", "peer", p.String(), "reason", err.Error())
	}
}

type mdnsNotifee struct{ n *Node }

func (m mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) {
	if ai.ID == m.n.host.ID() {
		return
	}
	ctx, cancel := context.WithTimeout(m.n.ctx, 10*time.Second)
	defer cancel()
	if err := m.n.host.Connect(ctx, ai); err != nil {
		m.n.log.Debug("mDNS peer unreachable", "event_type", "mdns_connect_failed", "peer", ai.ID.String(), "reason", err.Error())
	}
}

func multiaddrStrings(addrs []ma.Multiaddr) []string {
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = a.String()
	}
	return out
}
