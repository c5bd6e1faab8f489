package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/internal/cli"
	"github.com/ztmesh/ztmesh/internal/fsutil"
	"github.com/ztmesh/ztmesh/internal/wire"
	"github.com/ztmesh/ztmesh/policy"
)

// maxInputSize caps an input document read by policy test.
const maxInputSize = 64 << 10

func policyTest(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("policy test", "[--policy FILE_OR_DIR] --input INPUT.json [--json]",
		"Decide one request, like `opa eval`: evaluate the input document in INPUT.json\n"+
			"(- for stdin; its fields are in docs/POLICY.md) with the policy in FILE_OR_DIR\n"+
			"(every .rego file but *_test.rego), or with the embedded default policy.\n"+
			"Print the decision and its reasons; exit 0 if allowed, 1 if denied.", stdout)
	policyPath := fs.String("policy", "", "policy `FILE_OR_DIR` (default: the embedded default policy)")
	inputFile := fs.String("input", "", "input document `FILE` (JSON; - for stdin); without \"now\" it is now")
	asJSON := fs.Bool("json", false, "print the decision as JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return fmt.Errorf("%w: policy test takes no arguments, the input is --input FILE (see --help)", errUsage)
	}
	if err := requireFlag(fs, "input", *inputFile); err != nil {
		return err
	}
	data, err := readLimited(*inputFile, maxInputSize)
	if err != nil {
		return fmt.Errorf("input: %w", err)
	}
	var in policy.Input
	if err := wire.DecodeStrict(data, &in); err != nil {
		return fmt.Errorf("input %s: %v (docs/POLICY.md lists the fields)", *inputFile, err)
	}
	if in.Now.IsZero() {
		in.Now = time.Now().UTC().Truncate(time.Second)
	}
	e, err := policy.New(policy.WithCacheSize(0))
	if err != nil {
		return err
	}
	if *policyPath != "" {
		if err := e.LoadPath(*policyPath); err != nil {
			return err
		}
	}
	d := e.Decide(context.Background(), &in)
	if *asJSON {
		err := writeJSON(stdout, struct {
			Allow         bool     `json:"allow"`
			Reasons       []string `json:"reasons"`
			PolicyVersion uint64   `json:"policy_version"`
			PolicySource  string   `json:"policy_source"`
			InputDigest   string   `json:"input_digest"`
		}{d.Allow, append([]string{}, d.Reasons...), d.Version, e.Source(), in.Digest()})
		if err != nil {
			return err
		}
	} else {
		verdict := "allow"
		if !d.Allow {
			verdict = "deny"
		}
		fmt.Fprintln(stdout, verdict)
		for _, r := range d.Reasons {
			fmt.Fprintf(stdout, "  - %s\n", r)
		}
		fmt.Fprintf(stdout, "policy: %s (version %d)\n", e.Source(), d.Version)
		fmt.Fprintf(stdout, "input:  sha256 %s\n", in.Digest())
	}
	if !d.Allow {
		return fmt.Errorf("denied: %s", strings.Join(d.Reasons, "; "))
	}
	return nil
}

func policyCheck(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("policy check", "FILE_OR_DIR",
		"Compile the policy in FILE_OR_DIR and run its Rego tests (rules named test_*\n"+
			"in *_test.rego files), like `opa test`. Print PASS, FAIL or SKIP for each test;\n"+
			"exit 1 if the policy does not compile or a test fails.", stdout)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: policy check takes one FILE_OR_DIR (see --help)", errUsage)
	}
	modules, tests, err := policy.ReadPath(pos[0])
	if err != nil {
		return err
	}
	results, err := policy.RunTests(context.Background(), modules, tests)
	if err != nil {
		return err
	}
	if len(results) == 0 {
		fmt.Fprintf(stdout, "policy compiles (%d modules); no tests: add test_* rules in *_test.rego files\n", len(modules))
		return nil
	}
	var failed, skipped int
	for _, r := range results {
		switch {
		case r.Skip:
			skipped++
			fmt.Fprintf(stdout, "SKIP %s (%s)\n", r.Name, r.Location)
		case r.Pass:
			fmt.Fprintf(stdout, "PASS %s (%s)\n", r.Name, r.Duration.Round(time.Microsecond))
		default:
			failed++
			fmt.Fprintf(stdout, "FAIL %s (%s)\n", r.Name, r.Location)
			if r.Err != nil {
				fmt.Fprintf(stdout, "     error: %s\n", cli.OneLine(r.Err))
			}
			for line := range strings.Lines(r.Output) {
				fmt.Fprintf(stdout, "     %s", line)
			}
		}
	}
	ran := len(results) - skipped
	if failed > 0 {
		fmt.Fprintf(stdout, "FAIL: %d/%d tests failed\n", failed, ran)
		return fmt.Errorf("%d of %d policy tests failed", failed, ran)
	}
	fmt.Fprintf(stdout, "PASS: %d/%d\n", ran, ran)
	return nil
}

func policySign(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("policy sign", "--issuer-dir DIR --version N --out BUNDLE FILE_OR_DIR",
		"Sign the policy in FILE_OR_DIR (every .rego file but *_test.rego) as a policy\n"+
			"bundle with the identity in --issuer-dir, after checking that it compiles (run\n"+
			"`ztmesh policy check` for its tests). Nodes apply the bundle only if they pin\n"+
			"the issuer and N is higher than the version of every bundle they applied before;\n"+
			"a bundle from the mesh must name the node's mesh and not have expired.", stdout)
	issuerDir := fs.String("issuer-dir", "", "data directory `DIR` of the issuer's identity")
	mesh := fs.String("mesh", "default", "`NAME` of the mesh the bundle is for (the node's mesh setting)")
	expires := fs.Duration("expires", 30*24*time.Hour, "the bundle stops applying after this `DURATION`")
	version := fs.String("version", "", "bundle version `N` (at least 1, higher than the last one)")
	out := fs.String("out", "", "`FILE` to write the bundle to")
	passFile := fs.String("passphrase-file", "", "passphrase `FILE` if the issuer key is encrypted")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: policy sign takes one FILE_OR_DIR (see --help)", errUsage)
	}
	for _, f := range []struct{ name, value string }{{"issuer-dir", *issuerDir}, {"version", *version}, {"out", *out}} {
		if err := requireFlag(fs, f.name, f.value); err != nil {
			return err
		}
	}
	n, err := strconv.ParseUint(*version, 10, 64)
	if err != nil || n == 0 {
		return fmt.Errorf("%w: --version %q is not a whole number of at least 1", errUsage, *version)
	}
	modules, _, err := policy.ReadPath(pos[0])
	if err != nil {
		return err
	}
	if err := policy.Validate(modules); err != nil {
		return fmt.Errorf("%s: %w; not signed", pos[0], err)
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
	tok, err := policy.SignBundle(issuer, modules, n, policy.Scope{Mesh: *mesh, Expires: now.Add(*expires)}, now)
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(*out, append(tok, '\n'), 0o644); err != nil {
		return fmt.Errorf("write bundle: %w", err)
	}
	fmt.Fprintf(stdout, "policy bundle %s: version %d, %d modules, signed by %s\n", *out, n, len(modules), issuer.DID())
	return nil
}

func policyVerify(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("policy verify", "--trust-issuer DID [--trust-issuer DID2 ...] BUNDLE",
		"Verify the policy bundle in BUNDLE (- for stdin): well formed, signed by a\n"+
			"pinned issuer, and its policy compiles. Exit 0 and print its issuer, version\n"+
			"and modules, or exit 1 with the reason. (Whether its version is new enough\n"+
			"depends on the node: it must exceed the last bundle the node applied.)", stdout)
	var issuers listFlag
	fs.Var(&issuers, "trust-issuer", "`DID` of an issuer to trust (repeatable)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: policy verify takes one BUNDLE file (see --help)", errUsage)
	}
	if len(issuers) == 0 {
		return fmt.Errorf("%w: policy verify needs at least one --trust-issuer DID", errUsage)
	}
	pinned, err := parseDIDs(issuers)
	if err != nil {
		return err
	}
	data, err := readLimited(pos[0], policy.MaxBundleSize)
	if err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	b, err := policy.VerifyBundle(data, func(d did.DID) bool { return slices.Contains(pinned, d) })
	if err != nil {
		return err
	}
	if err := policy.Validate(b.Modules); err != nil {
		return fmt.Errorf("policy bundle version %d from %s is signed, but nodes will refuse it: %w", b.Version, b.Issuer, err)
	}
	fmt.Fprintln(stdout, "VERIFIED policy bundle")
	fmt.Fprintf(stdout, "  issuer:    %s\n", b.Issuer)
	fmt.Fprintf(stdout, "  version:   %d\n", b.Version)
	fmt.Fprintf(stdout, "  issued_at: %s\n", b.IssuedAt.Format(time.RFC3339))
	for i, name := range slices.Sorted(maps.Keys(b.Modules)) {
		label := "  modules:  "
		if i > 0 {
			label = "            "
		}
		fmt.Fprintf(stdout, "%s %s (%d bytes)\n", label, name, len(b.Modules[name]))
	}
	return nil
}

// readLimited reads a file (or stdin for "-") of at most limit bytes.
func readLimited(path string, limit int64) ([]byte, error) {
	if path != "-" {
		return fsutil.ReadFileLimited(path, limit)
	}
	data, err := io.ReadAll(io.LimitReader(os.Stdin, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: stdin is larger than %d bytes", fsutil.ErrTooLarge, limit)
	}
	return data, nil
}
