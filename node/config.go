package node

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"go.yaml.in/yaml/v3"

	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/internal/fsutil"
	"github.com/ztmesh/ztmesh/internal/yamltime"
	"github.com/ztmesh/ztmesh/pubsub"
)

// ConfigFile is the config file ztmeshd reads from the data dir when no
// --config is given (it is optional there).
const ConfigFile = "ztmeshd.yaml"

// maxConfigSize caps a config file before it is parsed.
const maxConfigSize = 64 << 10

// Config is the daemon's configuration. The YAML field names are the ones in
// docs/ztmeshd.example.yaml, which documents each of them; zero values take
// the defaults that Defaults fills in.
type Config struct {
	// Dir is the data directory: identity.key, credential.jwt, api.sock.
	Dir string `yaml:"dir"`
	// Listen are the multiaddrs to listen on.
	Listen []string `yaml:"listen"`
	// Bootstrap are peers to connect to and stay connected to, as
	// /ip4/.../tcp/.../p2p/<peer-id> multiaddrs.
	Bootstrap []string `yaml:"bootstrap"`
	// Mesh names the mesh; nodes of different meshes refuse each other.
	Mesh string `yaml:"mesh"`
	// TrustIssuers are the pinned issuer DIDs.
	TrustIssuers []string `yaml:"trust_issuers"`
	// Credential is the node's credential file (default DIR/credential.jwt).
	Credential string `yaml:"credential"`
	// Revocations is a revocation list file, reloaded on change and SIGHUP.
	Revocations string `yaml:"revocations"`
	// Policy is a Rego policy file or directory, reloaded on change and
	// SIGHUP ("" = the embedded default policy).
	Policy string `yaml:"policy"`
	// Reference is a file of signed attestation reference values
	// (`ztmesh attest reference`), reloaded on change and SIGHUP.
	Reference string `yaml:"reference"`
	// AttestInterval is how often the node broadcasts its evidence (default 60s).
	AttestInterval Duration `yaml:"attest_interval"`
	// KeySuite is the KEM sender keys are sealed with: MLKEM768-X25519
	// (default, post-quantum) or X25519 (constrained peers).
	KeySuite string `yaml:"key_suite"`
	// MaxSkew is how far a zone message's time may be from ours (default 2m).
	MaxSkew Duration `yaml:"max_skew"`
	// KeyRotation is the sender key lifetime (default 10m).
	KeyRotation Duration `yaml:"key_rotation"`
	// RateLimit bounds the zone messages each member may originate on each
	// topic (default 200 a second, bursts of 400). Messages over it are
	// dropped and lower the member's effective trust.
	RateLimit RateLimit `yaml:"rate_limit"`
	// API is the local API address: "unix:PATH" or "tcp:127.0.0.1:PORT"
	// (default unix:DIR/api.sock), or "off" for none (embedded nodes).
	API string `yaml:"api"`
	// Metrics is the host:port to serve Prometheus metrics on ("" = off).
	// A bare ":PORT" listens on 127.0.0.1. The metrics name every peer's
	// DID and trust score, so another address is refused unless
	// MetricsPublic is set.
	Metrics string `yaml:"metrics"`
	// MetricsPublic allows a metrics address that is not loopback.
	MetricsPublic bool `yaml:"metrics_public"`
	// AllowMissingRevocations starts the node when the Revocations file
	// does not exist yet (it is loaded once it appears). Without it, a
	// configured list that is missing stops the node: a typo in the path
	// must not start a node that honours no revocation.
	AllowMissingRevocations bool `yaml:"allow_missing_revocations"`
	// AuthGrace is how long a connected peer has to complete the handshake.
	AuthGrace Duration `yaml:"auth_grace"`
	// UnverifiedConns bounds the inbound connections held by peers that
	// proved nothing yet: not verified in a handshake, not members known
	// from their announcements (default 64). The newest over it is closed
	// at once, so an uncredentialed flood cannot take the members' slots.
	UnverifiedConns int `yaml:"unverified_conns"`
	// UnverifiedConnsPerIP bounds those connections per remote IP address,
	// loopback included (default 8).
	UnverifiedConnsPerIP int `yaml:"unverified_conns_per_ip"`
	// MDNS enables mDNS discovery on the local network (default true).
	MDNS *bool `yaml:"mdns"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `yaml:"log_level"`
	// ConnLow and ConnHigh are the connection manager's water marks.
	ConnLow  int `yaml:"conn_low"`
	ConnHigh int `yaml:"conn_high"`

	configData []byte // the config file as read, for attestation
}

// RateLimit is a token bucket: PerSecond messages a second on average,
// Burst at once. Zero fields take the defaults (a zero Burst is two
// seconds' worth); a negative PerSecond turns the limit off.
type RateLimit struct {
	PerSecond float64 `yaml:"per_second"`
	Burst     int     `yaml:"burst"`
}

// Duration is a time.Duration written as "10s" in YAML (internal/yamltime,
// shared with the simulation scenarios).
type Duration = yamltime.Duration

// Defaults.
const (
	DefaultMesh      = "default"
	DefaultAuthGrace = 10 * time.Second
	DefaultConnLow   = 64
	DefaultConnHigh  = 192

	DefaultUnverifiedConns      = 64
	DefaultUnverifiedConnsPerIP = 8
)

// DefaultListen are the listen addresses when none are configured.
var DefaultListen = []string{"/ip4/0.0.0.0/tcp/4101", "/ip4/0.0.0.0/udp/4101/quic-v1"}

// LoadConfigFile reads a YAML config file. Unknown fields are errors, so a
// misspelt option is caught instead of silently ignored.
func LoadConfigFile(path string) (Config, error) {
	data, err := fsutil.ReadFileLimited(path, maxConfigSize)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	c, err := parseConfig(data)
	if err != nil {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	c.configData = data
	return c, nil
}

// parseConfig decodes a YAML config, refusing unknown fields.
func parseConfig(data []byte) (Config, error) {
	var c Config
	if len(data) > maxConfigSize {
		return c, fmt.Errorf("%d bytes, limit %d", len(data), maxConfigSize)
	}
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) { // an empty file is all defaults
		return c, plainYAMLError(err)
	}
	return c, nil
}

// yamlUnknownField is how the YAML decoder names a misspelt option.
var yamlUnknownField = regexp.MustCompile(`field (\S+) not found in type \S+`)

// plainYAMLError rewrites the YAML decoder's errors in an operator's words:
// "line 5: unknown setting log_levle", one problem after another.
func plainYAMLError(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	msgs := make([]string, len(te.Errors))
	for i, m := range te.Errors {
		msgs[i] = yamlUnknownField.ReplaceAllString(m, "unknown setting $1 (see docs/ztmeshd.example.yaml)")
		msgs[i] = strings.Replace(msgs[i], "cannot unmarshal", "cannot read", 1)
	}
	return errors.New(strings.Join(msgs, "; "))
}

// WithDefaults returns c with every unset field set to its default.
func (c Config) WithDefaults() Config {
	if len(c.Listen) == 0 {
		c.Listen = DefaultListen
	}
	if c.Mesh == "" {
		c.Mesh = DefaultMesh
	}
	if c.Credential == "" {
		c.Credential = filepath.Join(c.Dir, did.CredentialFile)
	}
	if c.API == "" {
		c.API = "unix:" + filepath.Join(c.Dir, "api.sock")
	}
	if c.AuthGrace == 0 {
		c.AuthGrace = Duration(DefaultAuthGrace)
	}
	if c.MDNS == nil {
		on := true
		c.MDNS = &on
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.AttestInterval == 0 {
		c.AttestInterval = Duration(time.Minute)
	}
	if c.KeySuite == "" {
		c.KeySuite = pubsub.SuiteHybrid
	}
	if c.MaxSkew == 0 {
		c.MaxSkew = Duration(2 * time.Minute)
	}
	if c.KeyRotation == 0 {
		c.KeyRotation = Duration(10 * time.Minute)
	}
	if c.ConnLow == 0 {
		c.ConnLow = DefaultConnLow
	}
	if c.ConnHigh == 0 {
		c.ConnHigh = DefaultConnHigh
	}
	if c.UnverifiedConns == 0 {
		c.UnverifiedConns = DefaultUnverifiedConns
	}
	if c.UnverifiedConnsPerIP == 0 {
		c.UnverifiedConnsPerIP = DefaultUnverifiedConnsPerIP
	}
	return c
}

// settings are a Config parsed into typed values.
type settings struct {
	listen    []ma.Multiaddr
	bootstrap []peer.AddrInfo
	issuers   []did.DID
	logLevel  slog.Level
	apiNet    string // "unix" or "tcp"
	apiAddr   string
	rateLimit pubsub.RateLimit // with defaults; PerSecond -1 for none
	metrics   string           // host:port, "" for none
}

// parse validates c (with defaults applied) and reports every problem.
func (c Config) parse() (*settings, error) {
	var errs []error
	s := &settings{}
	if c.Dir == "" {
		errs = append(errs, errors.New("no data dir: give --dir"))
	}
	for _, a := range c.Listen {
		m, err := ma.NewMultiaddr(a)
		if err != nil {
			errs = append(errs, fmt.Errorf("listen %q: %w", a, err))
			continue
		}
		s.listen = append(s.listen, m)
	}
	for _, a := range c.Bootstrap {
		ai, err := peer.AddrInfoFromString(a)
		if err != nil {
			errs = append(errs, fmt.Errorf("bootstrap %q: %w (want /ip4/.../tcp/.../p2p/<peer-id>)", a, err))
			continue
		}
		s.bootstrap = append(s.bootstrap, *ai)
	}
	if len(c.TrustIssuers) == 0 {
		errs = append(errs, errors.New("no trusted issuers: give --trust-issuer DID (or trust_issuers in the config file)"))
	}
	for _, d := range c.TrustIssuers {
		p, err := did.ParseDID(d)
		if err != nil {
			errs = append(errs, fmt.Errorf("trust issuer: %w", err))
			continue
		}
		s.issuers = append(s.issuers, p)
	}
	if !validMeshName(c.Mesh) {
		errs = append(errs, fmt.Errorf("mesh name %q: use 1-64 of a-z, 0-9, '-', '_'", c.Mesh))
	}
	if err := s.logLevel.UnmarshalText([]byte(c.LogLevel)); err != nil {
		errs = append(errs, fmt.Errorf("log level %q: use debug, info, warn or error", c.LogLevel))
	}
	switch network, addr, _ := strings.Cut(c.API, ":"); network {
	case "off":
		s.apiNet = "off"
	case "unix":
		s.apiNet, s.apiAddr = network, addr
	case "tcp":
		if !isLoopback(addr) {
			errs = append(errs, fmt.Errorf("api %q: a TCP API must listen on loopback (127.0.0.1 or [::1])", c.API))
		}
		s.apiNet, s.apiAddr = network, addr
	default:
		errs = append(errs, fmt.Errorf("api %q: want unix:PATH, tcp:127.0.0.1:PORT or off", c.API))
	}
	if c.KeySuite != pubsub.SuiteHybrid && c.KeySuite != pubsub.SuiteX25519 {
		errs = append(errs, fmt.Errorf("key suite %q: use %s or %s", c.KeySuite, pubsub.SuiteHybrid, pubsub.SuiteX25519))
	}
	if c.MaxSkew <= 0 || c.KeyRotation < Duration(time.Minute) {
		errs = append(errs, fmt.Errorf("max skew %s must be positive and key rotation %s at least 1m", time.Duration(c.MaxSkew), time.Duration(c.KeyRotation)))
	}
	if r := c.RateLimit; math.IsNaN(r.PerSecond) || math.IsInf(r.PerSecond, 0) || r.Burst < 0 {
		errs = append(errs, fmt.Errorf("rate limit %g a second, burst %d: give a finite rate (negative: no limit) and a burst of at least 0", r.PerSecond, r.Burst))
	}
	s.rateLimit = pubsub.RateLimit{PerSecond: c.RateLimit.PerSecond, Burst: c.RateLimit.Burst}.WithDefaults()
	if c.AuthGrace <= 0 {
		errs = append(errs, fmt.Errorf("auth grace %s must be positive", time.Duration(c.AuthGrace)))
	}
	if c.AttestInterval < Duration(time.Second) {
		errs = append(errs, fmt.Errorf("attest interval %s: at least 1s (every broadcast goes to every node)", time.Duration(c.AttestInterval)))
	}
	if c.Metrics != "" {
		host, port, err := net.SplitHostPort(c.Metrics)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("metrics %q: want HOST:PORT, e.g. 127.0.0.1:9464", c.Metrics))
		case host == "":
			s.metrics = net.JoinHostPort("127.0.0.1", port)
		case !isLoopback(c.Metrics) && !c.MetricsPublic:
			errs = append(errs, fmt.Errorf("metrics %q is not a loopback address: the metrics name every peer's DID and trust score, so serving them there needs --metrics-public (metrics_public: true)", c.Metrics))
		default:
			s.metrics = c.Metrics
		}
	}
	if c.Revocations != "" && !c.AllowMissingRevocations {
		if _, err := os.Stat(c.Revocations); err != nil {
			errs = append(errs, fmt.Errorf("revocations %q: %w (create it with `ztmesh cred revoke`, fix the path, or start with --allow-missing-revocations to load it once it appears)", c.Revocations, err))
		}
	}
	if c.ConnLow < 1 || c.ConnHigh < c.ConnLow {
		errs = append(errs, fmt.Errorf("connection water marks low=%d high=%d: need 1 <= low <= high", c.ConnLow, c.ConnHigh))
	}
	if c.UnverifiedConns < 1 || c.UnverifiedConnsPerIP < 1 {
		errs = append(errs, fmt.Errorf("unverified connections %d, per IP %d: need at least 1 each", c.UnverifiedConns, c.UnverifiedConnsPerIP))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return s, nil
}

func validMeshName(s string) bool {
	return s != "" && s != did.AllZones && did.ValidZone(s)
}

func isLoopback(hostport string) bool {
	host := hostport
	if i := strings.LastIndex(hostport, ":"); i >= 0 {
		host = hostport[:i]
	}
	host = strings.Trim(host, "[]")
	return host == "127.0.0.1" || host == "::1" || host == "localhost"
}

// Check validates c (with defaults applied) as New would, reporting every
// problem, without opening anything but the files it names (ztmeshd
// check-config).
func (c Config) Check() error {
	_, err := c.WithDefaults().parse()
	return err
}
