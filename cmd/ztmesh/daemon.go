package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/internal/fsutil"
	"github.com/ztmesh/ztmesh/node"
	"github.com/ztmesh/ztmesh/node/api"
)

func status(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("status", "--dir DIR [--json]",
		"Show the running daemon of DIR: its DID, peer ID, listen addresses (full\n"+
			"multiaddrs to give other nodes as --bootstrap), credential and peer counts.", stdout)
	dir := fs.String("dir", "", "data `DIR` of the daemon")
	asJSON := fs.Bool("json", false, "print a JSON object")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if err := requireFlag(fs, "dir", *dir); err != nil {
		return err
	}
	c, err := api.Dial(*dir)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, st)
	}
	fmt.Fprintf(stdout, "did:         %s\n", st.DID)
	fmt.Fprintf(stdout, "peer_id:     %s\n", st.PeerID)
	fmt.Fprintf(stdout, "mesh:        %s\n", st.Mesh)
	for i, a := range st.ListenAddrs {
		label := "listen:"
		if i > 0 {
			label = ""
		}
		fmt.Fprintf(stdout, "%-12s %s\n", label, a)
	}
	cr := st.Credential
	fmt.Fprintf(stdout, "credential:  %s, trust %v, zones %s, software %s, expires %s\n",
		cr.Role, cr.TrustScore, strings.Join(cr.Zones, ","), cr.SoftwareVersion, cr.Expires)
	fmt.Fprintf(stdout, "peers:       %d connected, %d verified\n", st.PeersConnected, st.PeersVerified)
	fmt.Fprintf(stdout, "policy:      %s (version %d)\n", st.PolicySource, st.PolicyVersion)
	for _, r := range st.Revocations {
		fmt.Fprintf(stdout, "revocations: version %d from %s (%d credentials, %d subjects)\n", r.Version, r.Issuer, r.Credentials, r.Subjects)
	}
	for _, r := range st.RefusedBy {
		fmt.Fprintf(stdout, "refused by:  %s: %s (at %s)\n", r.Peer, r.Reason, r.At)
	}
	return nil
}

func peers(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("peers", "--dir DIR [--all] [--json]",
		"List the peers connected to the daemon of DIR, verified ones first, with the\n"+
			"claims of their credentials. Unverified peers have not (yet) presented a valid\n"+
			"credential and are disconnected after the grace period. With --all, also every\n"+
			"member of the node's zones it knows from its announcement but is not connected\n"+
			"to (CONN no), with this node's trust in it and whether it is quarantined here.", stdout)
	dir := fs.String("dir", "", "data `DIR` of the daemon")
	all := fs.Bool("all", false, "also list the members known from announcements that are not connected")
	asJSON := fs.Bool("json", false, "print a JSON array")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if err := requireFlag(fs, "dir", *dir); err != nil {
		return err
	}
	c, err := api.Dial(*dir)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ps, err := c.Peers(ctx)
	if *all {
		ps, err = c.Members(ctx)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, ps)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DID\tVERIFIED\tCONN\tROLE\tTRUST\tEFFECTIVE\tQUARANTINE\tZONES\tEXPIRES\tADDR")
	for _, p := range ps {
		d := p.DID
		if d == "" {
			d = "(peer " + p.PeerID + ")"
		}
		trust, effective, role, expires, quarantine := "-", "-", "-", "-", "-"
		if p.Verified {
			trust, role, expires = fmt.Sprint(p.TrustScore), p.Role, p.Expires
			effective = fmt.Sprintf("%.2f", p.EffectiveTrust)
		}
		if p.Quarantined {
			quarantine = p.QuarantineReason
		}
		conn := "yes"
		if !p.Connected {
			conn = "no"
		}
		fmt.Fprintf(tw, "%s\t%v\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d, p.Verified, conn, role, trust, effective, quarantine,
			orDash(strings.Join(p.Zones, ",")), expires, orDash(strings.Join(p.Addrs, ",")))
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func credInstall(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("cred install", "--dir DIR [--trust-issuer DID ...] FILE",
		"Verify a (renewed) credential for the node of DIR and install it. If the\n"+
			"daemon runs, it verifies the credential, stores it in DIR and presents it to\n"+
			"every connected peer at once, without reconnecting. If it does not run, the\n"+
			"credential is verified here (pinned issuers from --trust-issuer, else\n"+
			"trust_issuers in DIR/ztmeshd.yaml) and written to DIR/credential.jwt.", stdout)
	dir := fs.String("dir", "", "data `DIR` of the node")
	var issuers listFlag
	fs.Var(&issuers, "trust-issuer", "pinned issuer `DID`, when the daemon is not running (repeatable)")
	passFile := fs.String("passphrase-file", "", "passphrase `FILE` if the key is encrypted (daemon not running)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := requireFlag(fs, "dir", *dir); err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: cred install takes one credential FILE (see --help)", errUsage)
	}
	tok, err := readCredential(pos[0])
	if err != nil {
		return err
	}

	if c, err := api.Dial(*dir); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cr, err := c.InstallCredential(ctx, tok)
		if err == nil {
			fmt.Fprintf(stdout, "installed credential %s into the running daemon (expires %s); presented to connected peers\n", cr.ID, cr.Expires)
			return nil
		}
		if !errors.Is(err, api.ErrNotRunning) {
			return fmt.Errorf("daemon refused the credential: %w", err)
		}
	}

	// Offline: verify here, then write the file.
	if len(issuers) == 0 {
		if cfg, err := node.LoadConfigFile(filepath.Join(*dir, node.ConfigFile)); err == nil {
			issuers = cfg.TrustIssuers
		}
	}
	if len(issuers) == 0 {
		return fmt.Errorf("%w: the daemon is not running: give --trust-issuer DID to verify the credential", errUsage)
	}
	pinned, err := parseDIDs(issuers)
	if err != nil {
		return err
	}
	pass, err := passphrase(*passFile)
	if err != nil {
		return err
	}
	id, err := did.LoadIdentity(*dir, pass)
	if err != nil {
		return err
	}
	v, err := did.NewVerifier(pinned)
	if err != nil {
		return err
	}
	cr, err := v.VerifyHolder(tok, id.DID(), time.Now())
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(*dir, did.CredentialFile), []byte(cr.Raw+"\n"), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "installed credential %s into %s (expires %s); the daemon is not running\n",
		cr.ID, filepath.Join(*dir, did.CredentialFile), cr.Expires.Format(time.RFC3339))
	return nil
}
