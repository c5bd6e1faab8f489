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

	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/internal/cli"
	"github.com/ztmesh/ztmesh/internal/fsutil"
	"github.com/ztmesh/ztmesh/node"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, hup); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "ztmeshd: %s\n", strings.ReplaceAll(err.Error(), "\n", "; "))
		os.Exit(1)
	}
}

const usage = `Usage: ztmeshd --dir DIR [flags]

Run a ztmesh peer. DIR holds the node's identity (identity.key, from
'ztmesh id init') and credential (credential.jwt, from 'ztmesh cred issue' and
'ztmesh cred install'). Settings come from --config FILE, else DIR/ztmeshd.yaml
if present (see docs/ztmeshd.example.yaml); flags override the file.

SIGHUP reloads the revocation list, the policy and the attestation reference
values; SIGINT and SIGTERM shut down cleanly.
Logs are JSON lines on stderr.

Flags:
`

// listFlag is a repeatable flag; each use may also hold a comma-separated
// list, as in ztmesh: --trust-issuer A,B is --trust-issuer A --trust-issuer B.
type listFlag = cli.List

func run(ctx context.Context, args []string, stdout, stderr io.Writer, hup <-chan os.Signal) error {
	fs := flag.NewFlagSet("ztmeshd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stdout, usage)
		fs.VisitAll(func(f *flag.Flag) {
			arg, u := flag.UnquoteUsage(f)
			if arg != "" {
				arg = " " + arg
			}
			fmt.Fprintf(stdout, "  --%s%s\n      %s\n", f.Name, arg, u)
		})
	}
	var (
		dir         = fs.String("dir", "", "data `DIR` (required)")
		configFile  = fs.String("config", "", "config `FILE` (default DIR/ztmeshd.yaml if it exists)")
		listen      listFlag
		bootstrap   listFlag
		issuers     listFlag
		revocations = fs.String("revocations", "", "revocation list `FILE`, reloaded on change and SIGHUP")
		mesh        = fs.String("mesh", "", "mesh `NAME` (default \"default\")")
		apiAddr     = fs.String("api", "", "local API `ADDR`: unix:PATH or tcp:127.0.0.1:PORT (default unix:DIR/api.sock)")
		metrics     = fs.String("metrics", "", "serve Prometheus metrics on `HOST:PORT` (default off; :PORT means 127.0.0.1:PORT)")
		metricsPub  = fs.Bool("metrics-public", false, "allow a --metrics address that is not loopback (the metrics name every peer's DID and trust score)")
		allowNoRev  = fs.Bool("allow-missing-revocations", false, "start even if the --revocations file does not exist yet (it is loaded once it appears)")
		grace       = fs.Duration("auth-grace", 0, "`DURATION` a peer has to present a valid credential (default 10s)")
		noMDNS      = fs.Bool("no-mdns", false, "disable mDNS discovery on the local network")
		logLevel    = fs.String("log-level", "", "`LEVEL`: debug, info, warn, error (default info)")
		passFile    = fs.String("passphrase-file", "", "passphrase `FILE` for an encrypted identity.key (or set ZTMESH_PASSPHRASE)")
		policyPath  = fs.String("policy", "", "Rego policy `FILE_OR_DIR`, reloaded on change and SIGHUP (default: the embedded policy)")
		reference   = fs.String("reference", "", "attestation reference values `FILE` (ztmesh attest reference), reloaded on change and SIGHUP")
		attestEvery = fs.Duration("attest-interval", 0, "how often to broadcast this node's attestation evidence (default 60s)")
		keySuite    = fs.String("key-suite", "", "`KEM` for sealing sender keys: MLKEM768-X25519 (default, post-quantum) or X25519 (constrained peers)")
	)
	fs.Var(&listen, "listen", "listen `MADDR` (repeatable or comma-separated; default /ip4/0.0.0.0/tcp/4101 and /udp/4101/quic-v1)")
	fs.Var(&bootstrap, "bootstrap", "bootstrap peer `MADDR` ending in /p2p/<peer-id> (repeatable or comma-separated)")
	fs.Var(&issuers, "trust-issuer", "pinned issuer `DID` (repeatable or comma-separated)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see --help)", fs.Arg(0))
	}
	if *dir == "" {
		return errors.New("give --dir DIR (see --help)")
	}

	var cfg node.Config
	path := *configFile
	if path == "" {
		if p := filepath.Join(*dir, node.ConfigFile); fsutil.FileExists(p) {
			path = p
		}
	}
	if path != "" {
		var err error
		if cfg, err = node.LoadConfigFile(path); err != nil {
			return err
		}
	}
	cfg.Dir = *dir
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&cfg.Revocations, *revocations)
	set(&cfg.Mesh, *mesh)
	set(&cfg.API, *apiAddr)
	set(&cfg.Metrics, *metrics)
	cfg.MetricsPublic = cfg.MetricsPublic || *metricsPub
	cfg.AllowMissingRevocations = cfg.AllowMissingRevocations || *allowNoRev
	set(&cfg.LogLevel, *logLevel)
	set(&cfg.Policy, *policyPath)
	set(&cfg.KeySuite, *keySuite)
	set(&cfg.Reference, *reference)
	if *attestEvery != 0 {
		cfg.AttestInterval = node.Duration(*attestEvery)
	}
	if len(listen) > 0 {
		cfg.Listen = listen
	}
	if len(bootstrap) > 0 {
		cfg.Bootstrap = bootstrap
	}
	if len(issuers) > 0 {
		cfg.TrustIssuers = issuers
	}
	if *grace != 0 {
		cfg.AuthGrace = node.Duration(*grace)
	}
	if *noMDNS {
		off := false
		cfg.MDNS = &off
	}

	level := new(slog.LevelVar)
	if err := level.UnmarshalText([]byte(cfg.WithDefaults().LogLevel)); err != nil {
		return fmt.Errorf("log level %q: use debug, info, warn or error", cfg.LogLevel)
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))

	var pass []byte
	if *passFile != "" {
		var err error
		if pass, err = did.ReadPassphraseFile(*passFile); err != nil {
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
