package main

import (
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/internal/fsutil"
)

func credIssue(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("cred issue",
		"--issuer-dir DIR --subject DID --role ROLE --trust 0.92 --zones z1,z2 --software-version 1.4.0 [--ttl 12h] [--out FILE]",
		"Issue a W3C Verifiable Credential (JWT, EdDSA) to the subject DID, signed with\n"+
			"the identity in --issuer-dir. Nodes accept it only if they pin the issuer's DID\n"+
			"(ztmeshd --trust-issuer). The JWT goes to --out (mode 0600) or stdout.", stdout)
	issuerDir := fs.String("issuer-dir", "", "data directory `DIR` of the issuer's identity")
	subject := fs.String("subject", "", "holder's `DID` (ztmesh id show --dir HOLDER_DIR --did prints it)")
	role := fs.String("role", "", "holder's `ROLE`, e.g. vehicle, operator, controller")
	trust := fs.String("trust", "", "trust `SCORE` between 0 and 1")
	var zones, caps listFlag
	fs.Var(&zones, "zones", "comma-separated `ZONES`; * means every zone (repeatable)")
	fs.Var(&caps, "capability", "optional `CAPABILITY` (repeatable or comma-separated)")
	version := fs.String("software-version", "", "holder's software `VERSION`, semantic (1.4.0)")
	ttl := fs.Duration("ttl", did.DefaultTTL, "`DURATION` the credential is valid for")
	out := fs.String("out", "", "`FILE` to write the credential to (default stdout)")
	passFile := fs.String("passphrase-file", "", "passphrase `FILE` if the issuer key is encrypted")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	for name, v := range map[string]string{"issuer-dir": *issuerDir, "subject": *subject, "role": *role,
		"trust": *trust, "software-version": *version} {
		if err := requireFlag(fs, name, v); err != nil {
			return err
		}
	}
	if len(zones) == 0 {
		return requireFlag(fs, "zones", "")
	}
	score, err := strconv.ParseFloat(*trust, 64)
	if err != nil {
		return fmt.Errorf("%w: --trust %q is not a number", errUsage, *trust)
	}
	sub, err := did.ParseDID(*subject)
	if err != nil {
		return fmt.Errorf("%w: --subject: %v", errUsage, err)
	}
	pass, err := passphrase(*passFile)
	if err != nil {
		return err
	}
	issuer, err := did.LoadIdentity(*issuerDir, pass)
	if err != nil {
		return err
	}
	tok, err := did.Issue(issuer, sub, did.Claims{
		Role: *role, TrustScore: score, Zones: zones, SoftwareVersion: *version, Capabilities: caps,
	}, did.IssueOptions{TTL: *ttl})
	if err != nil {
		return err
	}
	if *out == "" {
		fmt.Fprintln(stdout, tok)
		return nil
	}
	if err := fsutil.WriteFileAtomic(*out, []byte(tok+"\n"), 0o600); err != nil {
		return fmt.Errorf("write credential: %w", err)
	}
	fmt.Fprintf(stderr, "wrote credential for %s to %s\n", sub, *out)
	return nil
}

func credVerify(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("cred verify", "--trust-issuer DID [--trust-issuer DID2 ...] [--revocations FILE] [--subject DID] [--json] FILE",
		"Verify the credential in FILE (- for stdin): signed by a pinned issuer, inside\n"+
			"its validity period, claims valid, not revoked, and (with --subject) held by\n"+
			"that DID. Exit 0 and print the verified claims, or exit 1 with the reason.", stdout)
	var issuers listFlag
	fs.Var(&issuers, "trust-issuer", "`DID` of an issuer to trust (repeatable)")
	revFile := fs.String("revocations", "", "revocation list `FILE` to check against")
	subject := fs.String("subject", "", "expected holder `DID`")
	asJSON := fs.Bool("json", false, "print the verified credential as JSON")
	at := fs.String("at", "", "verify as of this `TIME` (RFC 3339) instead of now")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: cred verify takes one credential FILE (see --help)", errUsage)
	}
	if len(issuers) == 0 {
		return fmt.Errorf("%w: cred verify needs at least one --trust-issuer DID", errUsage)
	}
	pinned, err := parseDIDs(issuers)
	if err != nil {
		return err
	}
	now := time.Now()
	if *at != "" {
		if now, err = time.Parse(time.RFC3339, *at); err != nil {
			return fmt.Errorf("%w: --at: %v", errUsage, err)
		}
	}
	v, err := did.NewVerifier(pinned)
	if err != nil {
		return err
	}
	if *revFile != "" {
		data, err := fsutil.ReadFileLimited(*revFile, did.MaxRevocationListSize)
		if err != nil {
			return fmt.Errorf("revocation list: %w", err)
		}
		if _, _, err := v.Revocations().Update(data); err != nil {
			return err
		}
	}
	tok, err := readCredential(pos[0])
	if err != nil {
		return err
	}
	var holder did.DID
	if *subject != "" {
		if holder, err = did.ParseDID(*subject); err != nil {
			return fmt.Errorf("%w: --subject: %v", errUsage, err)
		}
	}
	verify := v.Verify
	if !holder.IsZero() {
		verify = func(tok []byte, now time.Time) (*did.Credential, error) { return v.VerifyHolder(tok, holder, now) }
	}
	c, err := verify(tok, now)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, credentialJSON(c, true))
	}
	fmt.Fprintln(stdout, "VERIFIED credential")
	printCredential(stdout, c)
	return nil
}

func credInspect(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("cred inspect", "[--json] FILE",
		"Decode and print the credential in FILE (- for stdin) WITHOUT verifying it:\n"+
			"signature, issuer, validity and revocation are NOT checked. Use `ztmesh cred\n"+
			"verify` to decide whether to trust it.", stdout)
	asJSON := fs.Bool("json", false, "print as JSON (with \"verified\": false)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: cred inspect takes one credential FILE (see --help)", errUsage)
	}
	tok, err := readCredential(pos[0])
	if err != nil {
		return err
	}
	c, err := did.Inspect(tok)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, credentialJSON(c, false))
	}
	fmt.Fprintln(stdout, "UNVERIFIED credential: signature, issuer, validity and revocation NOT checked")
	printCredential(stdout, c)
	return nil
}

func credRevoke(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("cred revoke", "--issuer-dir DIR (--id CRED_ID | --subject DID)... --list FILE [--publish --dir DIR]",
		"Create or extend the revocation list in FILE, signed by the issuer in\n"+
			"--issuer-dir, with its version incremented. --id revokes one credential;\n"+
			"--subject revokes every credential of a holder. Give the list to nodes with\n"+
			"--revocations FILE, or with --publish --dir DIR send it over the mesh control\n"+
			"topic through a running daemon: every node applies it at once.", stdout)
	issuerDir := fs.String("issuer-dir", "", "data directory `DIR` of the issuer's identity")
	var ids, subjects listFlag
	fs.Var(&ids, "id", "credential `ID` to revoke (repeatable)")
	fs.Var(&subjects, "subject", "subject `DID` whose credentials to revoke (repeatable)")
	listFile := fs.String("list", "", "revocation list `FILE` to create or extend")
	passFile := fs.String("passphrase-file", "", "passphrase `FILE` if the issuer key is encrypted")
	publish := fs.Bool("publish", false, "also publish the list on the mesh control topic through the daemon of --dir")
	daemonDir := fs.String("dir", "", "data `DIR` of a running daemon to publish through (with --publish)")
	mesh := fs.String("mesh", "default", "`NAME` of the mesh the list is for (the node's mesh setting)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if err := requireFlag(fs, "issuer-dir", *issuerDir); err != nil {
		return err
	}
	if err := requireFlag(fs, "list", *listFile); err != nil {
		return err
	}
	if len(ids) == 0 && len(subjects) == 0 {
		return fmt.Errorf("%w: cred revoke needs at least one --id or --subject", errUsage)
	}
	if *publish && *daemonDir == "" {
		return fmt.Errorf("%w: --publish needs --dir DIR of a running daemon", errUsage)
	}
	revokeSubjects, err := parseDIDs(subjects)
	if err != nil {
		return err
	}
	pass, err := passphrase(*passFile)
	if err != nil {
		return err
	}
	issuer, err := did.LoadIdentity(*issuerDir, pass)
	if err != nil {
		return err
	}

	// Concurrent runs on one list take turns: each reads the list the
	// previous one wrote, so no revocation is lost.
	unlock, err := fsutil.Lock(*listFile)
	if err != nil {
		return fmt.Errorf("revocation list: %w", err)
	}
	defer unlock()
	list := &did.RevocationList{}
	data, err := fsutil.ReadFileLimited(*listFile, did.MaxRevocationListSize)
	switch {
	case errors.Is(err, iofs.ErrNotExist):
		// A new list.
	case err != nil:
		return fmt.Errorf("revocation list: %w", err)
	default:
		list, err = did.ParseRevocationList(data, func(d did.DID) bool { return d == issuer.DID() })
		if err != nil {
			return fmt.Errorf("%s: %w (only its own issuer may extend a list)", *listFile, err)
		}
	}
	for _, id := range ids {
		if !slices.Contains(list.Credentials, id) {
			list.Credentials = append(list.Credentials, id)
		}
	}
	for _, s := range revokeSubjects {
		if !slices.Contains(list.Subjects, s) {
			list.Subjects = append(list.Subjects, s)
		}
	}
	list.Version++
	list.Mesh = *mesh
	tok, err := did.SignRevocationList(issuer, list, time.Now())
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(*listFile, []byte(tok+"\n"), 0o644); err != nil {
		return fmt.Errorf("write revocation list: %w", err)
	}
	fmt.Fprintf(stdout, "revocation list %s: version %d, %d credential IDs, %d subjects revoked\n",
		*listFile, list.Version, len(list.Credentials), len(list.Subjects))
	if *publish {
		if err := publishRevocations(*daemonDir, []byte(tok)); err != nil {
			return fmt.Errorf("list written, but publishing it failed: %w", err)
		}
		fmt.Fprintln(stdout, "published on the mesh control topic")
	}
	return nil
}

func readCredential(path string) ([]byte, error) {
	if path == "-" {
		data, err := io.ReadAll(io.LimitReader(os.Stdin, did.MaxCredentialSize+1))
		if err != nil {
			return nil, err
		}
		return data, nil // the verifier enforces the size limit
	}
	return fsutil.ReadFileLimited(path, did.MaxCredentialSize)
}

type credJSON struct {
	Verified        bool     `json:"verified"`
	ID              string   `json:"id"`
	Issuer          string   `json:"issuer"`
	Subject         string   `json:"subject"`
	Role            string   `json:"role"`
	TrustScore      float64  `json:"trust_score"`
	Zones           []string `json:"zones"`
	SoftwareVersion string   `json:"software_version"`
	Capabilities    []string `json:"capabilities,omitempty"`
	NotBefore       string   `json:"not_before"`
	Expires         string   `json:"expires"`
}

func credentialJSON(c *did.Credential, verified bool) credJSON {
	return credJSON{
		Verified: verified, ID: c.ID, Issuer: c.Issuer.String(), Subject: c.Subject.String(),
		Role: c.Claims.Role, TrustScore: c.Claims.TrustScore, Zones: c.Claims.Zones,
		SoftwareVersion: c.Claims.SoftwareVersion, Capabilities: c.Claims.Capabilities,
		NotBefore: c.NotBefore.Format(time.RFC3339), Expires: c.Expires.Format(time.RFC3339),
	}
}

func printCredential(w io.Writer, c *did.Credential) {
	fmt.Fprintf(w, "  id:               %s\n", c.ID)
	fmt.Fprintf(w, "  issuer:           %s\n", c.Issuer)
	fmt.Fprintf(w, "  subject:          %s\n", c.Subject)
	fmt.Fprintf(w, "  role:             %s\n", c.Claims.Role)
	fmt.Fprintf(w, "  trust_score:      %v\n", c.Claims.TrustScore)
	fmt.Fprintf(w, "  zones:            %s\n", strings.Join(c.Claims.Zones, ","))
	fmt.Fprintf(w, "  software_version: %s\n", c.Claims.SoftwareVersion)
	if len(c.Claims.Capabilities) > 0 {
		fmt.Fprintf(w, "  capabilities:     %s\n", strings.Join(c.Claims.Capabilities, ","))
	}
	fmt.Fprintf(w, "  valid:            %s to %s\n", c.NotBefore.Format(time.RFC3339), c.Expires.Format(time.RFC3339))
}
