package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ztmesh/ztmesh/attest"
	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/internal/fsutil"
	"github.com/ztmesh/ztmesh/node"
	"github.com/ztmesh/ztmesh/policy"
)

func attestReference(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("attest reference",
		"--issuer-dir DIR [--version N] --allow-binary SHA256... [--min-version MODULE=VERSION...] [--forbid MODULE[@VERSION]...] [--require-hardware] [--enroll-ak SHA256...] [--pcr INDEX=SHA256...] --out FILE",
		"Sign attestation reference values with the identity in --issuer-dir: the\n"+
			"binaries allowed to run (SHA-256, e.g. from sha256sum ztmeshd), minimum module\n"+
			"versions (MODULE is a module path, \"main\" for ztmesh itself, or \"go\" for the\n"+
			"toolchain: go=go1.26.8), forbidden modules or versions, whether a TPM quote is\n"+
			"required, the enrolled TPM attestation keys (the ak_sha256 that `ztmesh attest\n"+
			"show` prints on each machine) and pinned PCR values. Nodes apply them only if\n"+
			"they pin the issuer and the version is higher than the one in force; without\n"+
			"--version it is one more than the version in FILE (or 1).", stdout)
	issuerDir := fs.String("issuer-dir", "", "data directory `DIR` of the issuer's identity")
	version := fs.String("version", "", "version `N` (higher than the last one; default: FILE's version + 1)")
	var binaries, minVersions, forbid, pcrs, aks listFlag
	fs.Var(&binaries, "allow-binary", "`SHA256` of an allowed executable, lowercase hex (repeatable)")
	fs.Var(&minVersions, "min-version", "`MODULE=VERSION` minimum, e.g. golang.org/x/crypto=v0.31.0 (repeatable)")
	fs.Var(&forbid, "forbid", "forbidden `MODULE[@VERSION]`, any version without @ (repeatable)")
	requireHW := fs.Bool("require-hardware", false, "refuse software-only evidence: require a TPM quote")
	fs.Var(&aks, "enroll-ak", "`SHA256` of an enrolled TPM attestation key; with any, quotes from other keys are refused (repeatable)")
	fs.Var(&pcrs, "pcr", "required SHA-256 PCR value `INDEX=SHA256` (repeatable)")
	out := fs.String("out", "", "`FILE` to write the reference values to")
	passFile := fs.String("passphrase-file", "", "passphrase `FILE` if the issuer key is encrypted")
	mesh := fs.String("mesh", "default", "`NAME` of the mesh the values are for (the node's mesh setting)")
	expires := fs.Duration("expires", 30*24*time.Hour, "the values stop applying after this `DURATION`")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return fmt.Errorf("%w: attest reference takes no arguments (see --help)", errUsage)
	}
	for _, f := range []struct{ name, value string }{{"issuer-dir", *issuerDir}, {"out", *out}} {
		if err := requireFlag(fs, f.name, f.value); err != nil {
			return err
		}
	}
	if len(binaries) == 0 {
		return fmt.Errorf("%w: attest reference needs at least one --allow-binary SHA256", errUsage)
	}
	ref := &attest.Reference{AllowedBinaries: binaries, MinVersions: map[string]string{}, RequireHardware: *requireHW, AttestationKeys: aks}
	for _, mv := range minVersions {
		mod, v, ok := strings.Cut(mv, "=")
		if !ok || mod == "" || v == "" {
			return fmt.Errorf("%w: --min-version %q: write MODULE=VERSION", errUsage, mv)
		}
		ref.MinVersions[mod] = v
	}
	for _, f := range forbid {
		mod, v, _ := strings.Cut(f, "@")
		ref.Forbidden = append(ref.Forbidden, attest.Module{Path: mod, Version: v})
	}
	for _, p := range pcrs {
		i, v, ok := strings.Cut(p, "=")
		n, err := strconv.Atoi(i)
		if !ok || err != nil {
			return fmt.Errorf("%w: --pcr %q: write INDEX=SHA256", errUsage, p)
		}
		if ref.PCRs == nil {
			ref.PCRs = map[int]string{}
		}
		ref.PCRs[n] = v
	}

	// The version must increase: read the one in FILE, if any.
	var last uint64
	data, err := fsutil.ReadFileLimited(*out, attest.MaxReferenceSize)
	switch {
	case errors.Is(err, iofs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("reference values: %w", err)
	default:
		// Any issuer: this only reads the version, it grants no trust.
		prev, err := attest.VerifyReference(data, func(did.DID) bool { return true })
		if err != nil {
			return fmt.Errorf("%s exists and is not valid reference values (%w); remove it or choose another --out", *out, err)
		}
		last = prev.Version
	}
	ref.Version = last + 1
	if *version != "" {
		if ref.Version, err = strconv.ParseUint(*version, 10, 64); err != nil || ref.Version == 0 {
			return fmt.Errorf("%w: --version %q is not a whole number of at least 1", errUsage, *version)
		}
		if ref.Version <= last {
			return fmt.Errorf("%w: version %d is not higher than version %d in %s: nodes would refuse it; use --version %d",
				attest.ErrRollback, ref.Version, last, *out, last+1)
		}
	}

	pass, err := passphrase(*passFile)
	if err != nil {
		return err
	}
	issuer, err := did.LoadIdentity(*issuerDir, pass)
	if err != nil {
		return err
	}
	if *expires <= 0 || *mesh == "" {
		return fmt.Errorf("%w: --mesh must be set and --expires be positive", errUsage)
	}
	now := time.Now()
	ref.Mesh, ref.Expires = *mesh, now.Add(*expires)
	signed, err := attest.SignReference(issuer, ref, now)
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(*out, append(signed, '\n'), 0o644); err != nil {
		return fmt.Errorf("write reference values: %w", err)
	}
	hw := ""
	if ref.RequireHardware {
		hw = ", hardware required"
	}
	if len(ref.AttestationKeys) > 0 {
		hw += fmt.Sprintf(", %d attestation keys enrolled", len(ref.AttestationKeys))
	}
	fmt.Fprintf(stdout, "reference values %s: version %d, %d binaries, %d minimum versions, %d forbidden modules%s, signed by %s\n",
		*out, ref.Version, len(ref.AllowedBinaries), len(ref.MinVersions), len(ref.Forbidden), hw, issuer.DID())
	return nil
}

func attestShow(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("attest show", "--dir DIR [--json] [--config FILE] [--policy FILE_OR_DIR] [--no-tpm] [--out FILE] [--reference FILE --trust-issuer DID...]",
		"Print the attestation evidence the node of DIR would produce now, signed with\n"+
			"its identity: binary hash, Go build info (every module, version and checksum),\n"+
			"config and policy hashes, and a TPM quote if the machine has a TPM. It is\n"+
			"measured by this CLI, as a stand-in for the daemon: the binary is the ztmesh\n"+
			"CLI's, not ztmeshd's, and a policy pushed to a running daemon is not seen.\n"+
			"With --reference, also check the evidence against signed reference values:\n"+
			"exit 1 and list every problem if it does not satisfy them.", stdout)
	dir := fs.String("dir", "", "data `DIR` of the node")
	asJSON := fs.Bool("json", false, "print a JSON object (with the signed evidence)")
	configFile := fs.String("config", "", "config `FILE` to hash (default DIR/"+node.ConfigFile+" if it exists)")
	policyPath := fs.String("policy", "", "policy `FILE_OR_DIR` to hash (default: the config's, else the embedded policy)")
	noTPM := fs.Bool("no-tpm", false, "do not use the TPM even if there is one (software-only evidence)")
	nonceHex := fs.String("nonce", "", "challenge `HEX` (16 to 64 bytes; default random)")
	out := fs.String("out", "", "also write the signed evidence to `FILE`")
	refFile := fs.String("reference", "", "reference values `FILE` to check the evidence against")
	var issuers listFlag
	fs.Var(&issuers, "trust-issuer", "`DID` of a reference values issuer to trust (repeatable; with --reference)")
	passFile := fs.String("passphrase-file", "", "passphrase `FILE` if the node's key is encrypted")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return fmt.Errorf("%w: attest show takes no arguments (see --help)", errUsage)
	}
	if err := requireFlag(fs, "dir", *dir); err != nil {
		return err
	}
	if (*refFile == "") != (len(issuers) == 0) {
		return fmt.Errorf("%w: --reference and --trust-issuer go together", errUsage)
	}
	pinned, err := parseDIDs(issuers)
	if err != nil {
		return err
	}
	nonce := make([]byte, 32)
	if *nonceHex != "" {
		if nonce, err = hex.DecodeString(*nonceHex); err != nil {
			return fmt.Errorf("%w: --nonce: %v", errUsage, err)
		}
	} else {
		rand.Read(nonce)
	}

	pass, err := passphrase(*passFile)
	if err != nil {
		return err
	}
	id, err := did.LoadIdentity(*dir, pass)
	if err != nil {
		return err
	}
	opts := attest.MeasureOptions{Now: time.Now()}
	cfgPath := *configFile
	if cfgPath == "" {
		if p := filepath.Join(*dir, node.ConfigFile); fsutil.FileExists(p) {
			cfgPath = p
		}
	}
	polPath := *policyPath
	if cfgPath != "" {
		if opts.Config, err = os.ReadFile(cfgPath); err != nil {
			return fmt.Errorf("config: %w", err)
		}
		if polPath == "" {
			cfg, err := node.LoadConfigFile(cfgPath)
			if err != nil {
				return err
			}
			polPath = cfg.Policy
		}
	}
	modules := policy.DefaultModules()
	polSource := "embedded default policy"
	if polPath != "" {
		if modules, _, err = policy.ReadPath(polPath); err != nil {
			return err
		}
		polSource = polPath
	}
	opts.PolicySHA256 = attest.HashPolicy(modules)
	m, err := attest.Measure(opts)
	if err != nil {
		return err
	}

	var tpm attest.TPM
	if !*noTPM {
		tpm, err = attest.OpenTPM(attest.TPMOptions{})
		switch {
		case errors.Is(err, attest.ErrNoTPM):
			tpm = nil
		case err != nil:
			return fmt.Errorf("%w; use --no-tpm for software-only evidence", err)
		default:
			defer tpm.Close()
		}
	}
	now := time.Now()
	evidence, err := attest.Sign(id, m, nonce, now, tpm)
	if err != nil {
		return err
	}
	e, err := attest.ParseEvidence(evidence, now, time.Minute)
	if err != nil {
		return fmt.Errorf("the evidence just made does not parse: %w", err)
	}
	if *out != "" {
		if err := fsutil.WriteFileAtomic(*out, append(evidence, '\n'), 0o644); err != nil {
			return fmt.Errorf("write evidence: %w", err)
		}
	}

	var res *attest.Result
	if *refFile != "" {
		data, err := fsutil.ReadFileLimited(*refFile, attest.MaxReferenceSize)
		if err != nil {
			return fmt.Errorf("reference values: %w", err)
		}
		ref, err := attest.VerifyReference(data, func(d did.DID) bool { return slices.Contains(pinned, d) })
		if err != nil {
			return err
		}
		r := attest.Verify(e, ref, nonce)
		res = &r
	}

	if *asJSON {
		if err := writeJSON(stdout, showJSONOf(e, cfgPath, polSource, res)); err != nil {
			return err
		}
	} else {
		printEvidence(stdout, e, cfgPath, polSource, res)
	}
	if res != nil && !res.OK {
		return fmt.Errorf("the evidence does not satisfy reference values version %d: %s", res.ReferenceVersion, strings.Join(res.Problems, "; "))
	}
	return nil
}

const measuredBy = "measured by the CLI, not the daemon"

func printEvidence(w io.Writer, e *attest.Evidence, cfgPath, polSource string, res *attest.Result) {
	fmt.Fprintf(w, "evidence of %s (%s)\n", e.Subject, measuredBy)
	fmt.Fprintf(w, "  time:          %s\n", e.Time.Format(time.RFC3339Nano))
	fmt.Fprintf(w, "  nonce:         %x\n", e.Nonce)
	if e.Hardware != nil {
		fmt.Fprintf(w, "  root of trust: tpm2 (%d PCRs quoted)\n", len(e.Hardware.PCRs))
		fmt.Fprintf(w, "  ak_sha256:     %s (enroll it: attest reference --enroll-ak)\n", e.Hardware.AKFingerprint())
	} else {
		fmt.Fprintf(w, "  root of trust: software only (no TPM)\n")
	}
	fmt.Fprintf(w, "  binary:        sha256 %s (this ztmesh CLI, not ztmeshd)\n", e.BinarySHA256)
	fmt.Fprintf(w, "  go:            %s\n", e.GoVersion)
	fmt.Fprintf(w, "  main module:   %s %s\n", orDash(e.MainModule.Path), orDash(e.MainModule.Version))
	fmt.Fprintf(w, "  dependencies:  %d modules\n", len(e.Deps))
	for _, d := range e.Deps {
		line := fmt.Sprintf("    %s %s %s", d.Path, d.Version, d.Sum)
		if r := d.Replace; r != nil {
			line += fmt.Sprintf(" => %s %s %s", r.Path, r.Version, r.Sum)
		}
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
	if cfgPath != "" {
		fmt.Fprintf(w, "  config:        sha256 %s (%s)\n", e.ConfigSHA256, cfgPath)
	} else {
		fmt.Fprintf(w, "  config:        none\n")
	}
	fmt.Fprintf(w, "  policy:        sha256 %s (%s)\n", e.PolicySHA256, polSource)
	fmt.Fprintf(w, "  size:          %d bytes signed\n", len(e.Raw))
	if res == nil {
		return
	}
	if res.OK {
		hw := "software only"
		if res.Hardware {
			hw = "TPM quote verified"
		}
		fmt.Fprintf(w, "OK: satisfies reference values version %d (%s)\n", res.ReferenceVersion, hw)
		return
	}
	fmt.Fprintf(w, "FAILED: %d problems against reference values version %d\n", len(res.Problems), res.ReferenceVersion)
	for _, p := range res.Problems {
		fmt.Fprintf(w, "  - %s\n", p)
	}
}

type moduleJSON struct {
	Path    string      `json:"path"`
	Version string      `json:"version"`
	Sum     string      `json:"sum,omitempty"`
	Replace *moduleJSON `json:"replace,omitempty"`
}

func moduleJSONOf(m attest.Module) moduleJSON {
	j := moduleJSON{Path: m.Path, Version: m.Version, Sum: m.Sum}
	if m.Replace != nil {
		r := moduleJSONOf(*m.Replace)
		j.Replace = &r
	}
	return j
}

type showJSON struct {
	MeasuredBy    string          `json:"measured_by"`
	Subject       string          `json:"subject"`
	Time          string          `json:"time"`
	Nonce         string          `json:"nonce"`
	RootOfTrust   string          `json:"root_of_trust"`
	AKFingerprint string          `json:"ak_sha256,omitempty"`
	BinarySHA256  string          `json:"binary_sha256"`
	GoVersion     string          `json:"go_version"`
	Main          moduleJSON      `json:"main"`
	Deps          []moduleJSON    `json:"deps"`
	ConfigSHA256  string          `json:"config_sha256"`
	ConfigFile    string          `json:"config_file,omitempty"`
	PolicySHA256  string          `json:"policy_sha256"`
	PolicySource  string          `json:"policy_source"`
	Evidence      json.RawMessage `json:"evidence"`
	Verification  *verifyJSON     `json:"verification,omitempty"`
}

type verifyJSON struct {
	OK               bool     `json:"ok"`
	Hardware         bool     `json:"hardware"`
	ReferenceVersion uint64   `json:"reference_version"`
	Problems         []string `json:"problems"`
}

func showJSONOf(e *attest.Evidence, cfgPath, polSource string, res *attest.Result) showJSON {
	j := showJSON{
		MeasuredBy: measuredBy, Subject: e.Subject.String(), Time: e.Time.Format(time.RFC3339Nano),
		Nonce: hex.EncodeToString(e.Nonce), RootOfTrust: "software",
		BinarySHA256: e.BinarySHA256, GoVersion: e.GoVersion, Main: moduleJSONOf(e.MainModule),
		Deps:         make([]moduleJSON, 0, len(e.Deps)),
		ConfigSHA256: e.ConfigSHA256, ConfigFile: cfgPath,
		PolicySHA256: e.PolicySHA256, PolicySource: polSource,
		Evidence: e.Raw,
	}
	if e.Hardware != nil {
		j.RootOfTrust, j.AKFingerprint = "tpm2", e.Hardware.AKFingerprint()
	}
	for _, d := range e.Deps {
		j.Deps = append(j.Deps, moduleJSONOf(d))
	}
	if res != nil {
		j.Verification = &verifyJSON{OK: res.OK, Hardware: res.Hardware, ReferenceVersion: res.ReferenceVersion, Problems: res.Problems}
		if j.Verification.Problems == nil {
			j.Verification.Problems = []string{}
		}
	}
	return j
}
