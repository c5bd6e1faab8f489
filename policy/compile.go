package policy

import (
	"cmp"
	"context"
	_ "embed"
	"errors"
	"fmt"
	iofs "io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/tester"
)

//go:embed default.rego
var defaultRego string

// deniedBuiltins are Rego built-ins a ztmesh policy may not call. A decision
// sits on the path of every message: it must not reach the network, and it
// must be a function of its input (or the cache would be wrong).
var deniedBuiltins = map[string]bool{
	"http.send":          true, // network
	"net.lookup_ip_addr": true, // network (DNS)
	"opa.runtime":        true, // the process environment
	"rand.intn":          true, // not a function of the input
	"uuid.rfc4122":       true, // not a function of the input
}

// capabilities are OPA's built-ins for this version minus deniedBuiltins.
var capabilities = sync.OnceValue(func() *ast.Capabilities {
	c := ast.CapabilitiesForThisVersion()
	c.Builtins = slices.DeleteFunc(c.Builtins, func(b *ast.Builtin) bool { return deniedBuiltins[b.Name] })
	return c
})

func newCompiler() *ast.Compiler {
	return ast.NewCompiler().
		WithCapabilities(capabilities()).
		WithDefaultRegoVersion(ast.RegoV1).
		WithEnablePrintStatements(false)
}

// parseModules parses Rego v1 modules, reporting every module's errors.
func parseModules(modules map[string]string) (map[string]*ast.Module, error) {
	parsed := make(map[string]*ast.Module, len(modules))
	var errs []string
	for _, name := range slices.Sorted(maps.Keys(modules)) {
		m, err := ast.ParseModuleWithOpts(name, modules[name], ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			errs = append(errs, astErrors(err)...)
			continue
		}
		parsed[name] = m
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrCompile, strings.Join(errs, "\n"))
	}
	return parsed, nil
}

// compileModules parses and compiles a policy and checks that it defines
// data.ztmesh.authz.allow.
func compileModules(modules map[string]string) (*ast.Compiler, error) {
	if len(modules) == 0 {
		return nil, fmt.Errorf("%w: no Rego modules", ErrCompile)
	}
	parsed, err := parseModules(modules)
	if err != nil {
		return nil, err
	}
	c := newCompiler()
	if c.Compile(parsed); c.Failed() {
		return nil, fmt.Errorf("%w: %s", ErrCompile, strings.Join(astErrors(c.Errors), "\n"))
	}
	if len(c.GetRulesExact(allowRef)) == 0 {
		return nil, fmt.Errorf("%w: no rule %s: a ztmesh policy is package ztmesh.authz with an allow rule", ErrCompile, allowRef)
	}
	return c, nil
}

// astErrors lists OPA's errors one per line ("file:row: code: message").
func astErrors(err error) []string {
	var list ast.Errors
	if errors.As(err, &list) {
		out := make([]string, len(list))
		for i, e := range list {
			out[i] = e.Error()
		}
		return out
	}
	return []string{err.Error()}
}

// Validate compiles modules as the engine would (Rego v1, the network and
// non-deterministic built-ins denied, data.ztmesh.authz.allow defined) and
// returns an error wrapping ErrCompile that lists every problem found.
func Validate(modules map[string]string) error {
	_, err := compileModules(modules)
	return err
}

// ReadPath reads a policy from path: a .rego file, or every .rego file in a
// directory tree (directories whose name starts with "." are skipped, as
// Kubernetes' ..data is; symbolic links to files are followed). Modules are
// named by their path relative to the directory, with "/" separators (a
// single file by its base name). Files ending in _test.rego are Rego tests:
// they are returned in tests, never in modules. The modules together, and the
// tests together, may be at most MaxBundleSize bytes.
func ReadPath(path string) (modules, tests map[string]string, err error) {
	modules, tests = map[string]string{}, map[string]string{}
	var sizeModules, sizeTests int
	add := func(name, file string) error {
		set, size := modules, &sizeModules
		if strings.HasSuffix(name, "_test.rego") {
			set, size = tests, &sizeTests
		}
		data, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		if *size += len(data); *size > MaxBundleSize {
			return fmt.Errorf("%w: the policy in %s is larger than %d bytes", ErrTooLarge, path, MaxBundleSize)
		}
		set[name] = string(data)
		return nil
	}
	info, err := os.Stat(path)
	if err != nil {
		return nil, nil, err
	}
	if !info.IsDir() {
		if err := add(filepath.Base(path), path); err != nil {
			return nil, nil, err
		}
		return modules, tests, nil
	}
	err = filepath.WalkDir(path, func(file string, d iofs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if file != path && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(d.Name(), ".rego") || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		rel, err := filepath.Rel(path, file)
		if err != nil {
			return err
		}
		return add(filepath.ToSlash(rel), file)
	})
	if err != nil {
		return nil, nil, err
	}
	if len(modules) == 0 && len(tests) == 0 {
		return nil, nil, fmt.Errorf("no .rego files in %s", path)
	}
	return modules, tests, nil
}

// TestResult is the outcome of one Rego test (a rule named test_*).
type TestResult struct {
	Name     string // package and rule: data.ztmesh.authz_test.test_member_subscribes
	Location string // file:row of the test
	Pass     bool
	Skip     bool          // a todo_test_ rule
	Err      error         // an evaluation error, if any (the test fails)
	Output   string        // what the test printed with print()
	Duration time.Duration //
}

// RunTests compiles modules (the policy, which must compile on its own) with
// tests (modules with test_* rules, usually from *_test.rego files) and runs
// every test, as `opa test` would. Built-in errors fail a test, as they deny
// a decision. The results are sorted by name; an error wrapping ErrCompile
// means the policy or its tests do not compile.
func RunTests(ctx context.Context, modules, tests map[string]string) ([]TestResult, error) {
	if err := Validate(modules); err != nil {
		return nil, err
	}
	all := maps.Clone(modules)
	for name, src := range tests {
		if _, dup := all[name]; dup {
			return nil, fmt.Errorf("%w: %s is both a module and a test", ErrCompile, name)
		}
		all[name] = src
	}
	parsed, err := parseModules(all)
	if err != nil {
		return nil, err
	}
	ch, err := tester.NewRunner().
		SetCompiler(newCompiler().WithEnablePrintStatements(true)).
		SetDefaultRegoVersion(ast.RegoV1).
		RaiseBuiltinErrors(true).
		SetModules(parsed).
		RunTests(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrCompile, strings.Join(astErrors(err), "\n"))
	}
	var out []TestResult
	for r := range ch {
		tr := TestResult{
			Name:     r.Package + "." + r.Name,
			Pass:     r.Pass(),
			Skip:     r.Skip,
			Err:      r.Error,
			Output:   string(r.Output),
			Duration: r.Duration,
		}
		if r.Location != nil {
			tr.Location = fmt.Sprintf("%s:%d", r.Location.File, r.Location.Row)
		}
		out = append(out, tr)
	}
	if err := ctx.Err(); err != nil {
		return out, err
	}
	slices.SortFunc(out, func(a, b TestResult) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}
