// Command ztmeshd is the ztmesh peer daemon: a libp2p node whose identity is
// the DID in its data dir, which admits only peers with a valid credential
// from a pinned issuer. All the work is in package node; this is flags,
// signals and exit codes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/gologshim"

	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/internal/buildinfo"
	"github.com/ztmesh/ztmesh/internal/cli"
	"github.com/ztmesh/ztmesh/internal/fsutil"
	"github.com/ztmesh/ztmesh/node"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, hup)
	os.Exit(cli.ExitCode("ztmeshd", err, os.Stderr))
}

const usage = `Usage: ztmeshd --dir DIR [flags]
       ztmeshd check-config [--config FILE] [--dir DIR] [flags]
       ztmeshd --version

Run a ztmesh peer. DIR holds the node's identity (identity.key, from
'ztmesh id init') and credential (credential.jwt, from 'ztmesh cred issue' and
'ztmesh cred install'). Settings come from --config FILE, else DIR/ztmeshd.yaml
if present (see docs/ztmeshd.example.yaml); flags override the file.

check-config reads the config file and flags as the daemon would and
reports every problem, without starting (exit 0 if the config is valid).

SIGHUP reloads the revocation list, the policy and the attestation reference
values; SIGINT and SIGTERM shut down cleanly.
Logs are JSON lines on stderr.

Flags:
`

// listFlag is a repeatable flag; each use may also hold a comma-separated
// list, as in ztmesh: --trust-issuer A,B is --trust-issuer A --trust-issuer B.
type listFlag = cli.List

// flags are ztmeshd's command line, parsed.
type flags struct {
	dir         *string
	configFile  *string
	listen      listFlag
	bootstrap   listFlag
	issuers     listFlag
	revocations *string
	mesh        *string
	apiAddr     *string
	metrics     *string
	metricsPub  *bool
	allowNoRev  *bool
	grace       *time.Duration
	noMDNS      *bool
	logLevel    *string
	passFile    *string
	policyPath  *string
	reference   *string
	attestEvery *time.Duration
	keySuite    *string
	version     *bool
}

// parseFlags parses the command line. --help prints the usage to stdout
// and --version the build, both returning cli.ErrHelp (exit 0); a flag
// error is a one-line cli.ErrUsage (exit 2).
func parseFlags(args []string, stdout io.Writer) (*flags, error) {
	fs := flag.NewFlagSet("ztmeshd", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	// The flag package prints the usage on every parse error too: that is
	// left to --help alone, and an error is one line.
	fs.Usage = func() {}
	f := &flags{}
	f.dir = fs.String("dir", "", "data `DIR` (required)")
	f.configFile = fs.String("config", "", "config `FILE` (default DIR/ztmeshd.yaml if it exists)")
	f.revocations = fs.String("revocations", "", "revocation list `FILE`, reloaded on change and SIGHUP")
	f.mesh = fs.String("mesh", "", "mesh `NAME` (default \"default\")")
	f.apiAddr = fs.String("api", "", "local API `ADDR`: unix:PATH or tcp:127.0.0.1:PORT (default unix:DIR/api.sock)")
	f.metrics = fs.String("metrics", "", "serve Prometheus metrics on `HOST:PORT` (default off; :PORT means 127.0.0.1:PORT)")
	f.metricsPub = fs.Bool("metrics-public", false, "allow a --metrics address that is not loopback (the metrics name every peer's DID and trust score)")
	f.allowNoRev = fs.Bool("allow-missing-revocations", false, "start even if the --revocations file does not exist yet (it is loaded once it appears)")
	f.grace = fs.Duration("auth-grace", 0, "`DURATION` a peer has to present a valid credential (default 10s)")
	f.noMDNS = fs.Bool("no-mdns", false, "disable mDNS discovery on the local network")
	f.logLevel = fs.String("log-level", "", "`LEVEL`: debug, info, warn, error (default info)")
	f.passFile = fs.String("passphrase-file", "", "passphrase `FILE` for an encrypted identity.key (or set ZTMESH_PASSPHRASE)")
	f.policyPath = fs.String("policy", "", "Rego policy `FILE_OR_DIR`, reloaded on change and SIGHUP (default: the embedded policy)")
	f.reference = fs.String("reference", "", "attestation reference values `FILE` (ztmesh attest reference), reloaded on change and SIGHUP")
	f.attestEvery = fs.Duration("attest-interval", 0, "how often to broadcast this node's attestation evidence (default 60s)")
	f.keySuite = fs.String("key-suite", "", "`KEM` for sealing sender keys: MLKEM768-X25519 (default, post-quantum) or X25519 (constrained peers)")
	f.version = fs.Bool("version", false, "print the version, commit, build date and Go version, and exit")
	fs.Var(&f.listen, "listen", "listen `MADDR` (repeatable or comma-separated; default /ip4/0.0.0.0/tcp/4101 and /udp/4101/quic-v1)")
	fs.Var(&f.bootstrap, "bootstrap", "bootstrap peer `MADDR` ending in /p2p/<peer-id> (repeatable or comma-separated)")
	fs.Var(&f.issuers, "trust-issuer", "pinned issuer `DID` (repeatable or comma-separated)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			cli.PrintFlags(stdout, fs)
			return nil, cli.ErrHelp
		}
		hint := ""
		if strings.Contains(err.Error(), "parse error") {
			hint = " (durations are written like 10s, 1m30s or 2h)"
		}
		return nil, fmt.Errorf("%w: %v%s (see --help)", cli.ErrUsage, err, hint)
	}
	if *f.version {
		fmt.Fprintln(stdout, buildinfo.Line("ztmeshd"))
		return nil, cli.ErrHelp
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%w: unexpected argument %q (see --help)", cli.ErrUsage, fs.Arg(0))
	}
	return f, nil
}

// config is the node config: the file (--config, else DIR/ztmeshd.yaml if
// present), then the flags over it.
func (f *flags) config() (node.Config, error) {
	var cfg node.Config
	path := *f.configFile
	if path == "" {
		if p := filepath.Join(*f.dir, node.ConfigFile); fsutil.FileExists(p) {
			path = p
		}
	}
	if path != "" {
		var err error
		if cfg, err = node.LoadConfigFile(path); err != nil {
			return cfg, err
		}
	}
	cfg.Dir = *f.dir
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&cfg.Revocations, *f.revocations)
	set(&cfg.Mesh, *f.mesh)
	set(&cfg.API, *f.apiAddr)
	set(&cfg.Metrics, *f.metrics)
	cfg.MetricsPublic = cfg.MetricsPublic || *f.metricsPub
	cfg.AllowMissingRevocations = cfg.AllowMissingRevocations || *f.allowNoRev
	set(&cfg.LogLevel, *f.logLevel)
	set(&cfg.Policy, *f.policyPath)
	set(&cfg.KeySuite, *f.keySuite)
	set(&cfg.Reference, *f.reference)
	if *f.attestEvery != 0 {
		cfg.AttestInterval = node.Duration(*f.attestEvery)
	}
	if len(f.listen) > 0 {
		cfg.Listen = f.listen
	}
	if len(f.bootstrap) > 0 {
		cfg.Bootstrap = f.bootstrap
	}
	if len(f.issuers) > 0 {
		cfg.TrustIssuers = f.issuers
	}
	if *f.grace != 0 {
		cfg.AuthGrace = node.Duration(*f.grace)
	}
	if *f.noMDNS {
		off := false
		cfg.MDNS = &off
	}

	return cfg, nil
}

// checkConfig validates the config that these flags make, as the daemon
// would read it, and reports every problem without starting anything.
func checkConfig(f *flags, stdout io.Writer) error {
	if *f.dir == "" {
		*f.dir = "."
	}
	cfg, err := f.config()
	if err != nil {
		return err
	}
	if err := cfg.Check(); err != nil {
		return err
	}
	src := *f.configFile
	if src == "" {
		src = "flags only (no --config, no DIR/" + node.ConfigFile + ")"
	}
	fmt.Fprintf(stdout, "config OK: %s\n", src)
	return nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, hup <-chan os.Signal) error {
	checkOnly := len(args) > 0 && args[0] == "check-config"
	if checkOnly {
		args = args[1:]
	}
	f, err := parseFlags(args, stdout)
	if err != nil {
		return err
	}
	if checkOnly {
		return checkConfig(f, stdout)
	}
	if *f.dir == "" {
		return fmt.Errorf("%w: give --dir DIR (see --help)", cli.ErrUsage)
	}
	cfg, err := f.config()
	if err != nil {
		return err
	}
	level := new(slog.LevelVar)
	if err := level.UnmarshalText([]byte(cfg.WithDefaults().LogLevel)); err != nil {
		return fmt.Errorf("log level %q: use debug, info, warn or error", cfg.LogLevel)
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	// go-libp2p logs through its own slog shim, which on its own writes
	// logfmt lines into our JSON log: give it our handler, from WARN up
	// (its INFO is chatter an operator does not act on), marked as libp2p's.
	libp2pLevel := max(level.Level(), slog.LevelWarn)
	gologshim.SetDefaultHandler(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: libp2pLevel}).
		WithAttrs([]slog.Attr{slog.String("component", "libp2p")}))

	var pass []byte
	if *f.passFile != "" {
		var err error
		if pass, err = did.ReadPassphraseFile(*f.passFile); err != nil {
			return err
		}
	} else if p := os.Getenv(did.PassphraseEnv); p != "" {
		pass = []byte(p)
	}

	n, err := node.New(cfg, node.Options{Passphrase: pass, Logger: logger})
	if err != nil {
		return err
	}
	if err := n.Start(ctx); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			logger.Info("shutting down", "event_type", "shutdown", "reason", "signal")
			done := make(chan error, 1)
			go func() { done <- n.Close() }()
			select {
			case err := <-done:
				return err
			case <-time.After(10 * time.Second):
				return errors.New("shutdown took longer than 10s")
			}
		case <-hup:
			logger.Info("SIGHUP: reloading revocation list and policy", "event_type", "reload")
			// A refused list or policy is logged and leaves the old one in force.
			_ = n.Reload() // each file refused is logged with its reason
		}
	}
}
