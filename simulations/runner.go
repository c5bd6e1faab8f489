package simulations

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"
)

// Env is what a scenario's code gets from the runner.
type Env struct {
	// Quick selects the reduced set (QuickNodes, QuickDuration) for CI.
	Quick bool
	// Progress receives one line per step, for the operator watching.
	Progress io.Writer
	// Logger receives the nodes' logs (nil: discarded). Attack scenarios
	// search it for refusals.
	Logger *slog.Logger
	// Seed is the scenario's seed.
	Seed uint64

	mu sync.Mutex
}

// Printf writes a progress line, prefixed with the time since start.
func (e *Env) Printf(format string, args ...any) {
	if e.Progress == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	fmt.Fprintf(e.Progress, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// RunFunc runs one scenario of a kind and returns its report sections.
type RunFunc func(ctx context.Context, env *Env, sc *Scenario) ([]*Section, error)

var (
	kindsMu sync.Mutex
	runners = map[string]RunFunc{}
)

// register makes a scenario kind runnable; each kind's file calls it from
// init.
func register(kind string, f RunFunc) {
	kindsMu.Lock()
	defer kindsMu.Unlock()
	if !slices.Contains(Kinds, kind) {
		panic("simulations: unknown kind " + kind)
	}
	runners[kind] = f
}

// Options are how Run runs scenarios.
type Options struct {
	Quick    bool
	Progress io.Writer
	Logger   *slog.Logger
	// Command and Commit are recorded in the report's preamble.
	Command string
	Commit  string
}

// Run runs the scenarios in order and returns one report of them all. A
// scenario that fails to run becomes a section with the error as a failed
// check; the others still run.
func Run(ctx context.Context, scenarios []*Scenario, o Options) *Report {
	r := &Report{Title: "ztmesh simulation results"}
	mode := "standard set"
	if o.Quick {
		mode = "quick set (--quick)"
	}
	r.Preamble = append(r.Preamble,
		fmt.Sprintf("Generated %s by `%s` at commit `%s`, %s.", time.Now().UTC().Format("2006-01-02 15:04 MST"), o.Command, o.Commit, mode),
		fmt.Sprintf("Machine: %s/%s, %d CPUs, Go %s. Every node is a complete ztmesh node (credential, handshake, OPA policy, GossipSub, sealing) in one process on go-libp2p's mocknet; baselines are plain go-libp2p-pubsub with default settings on the same links and topology in the same run.",
			runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version()))
	start := time.Now()
	var summary Table
	summary.Header = []string{"scenario", "kind", "time", "failed checks"}
	for _, sc := range scenarios {
		env := &Env{Quick: o.Quick, Progress: o.Progress, Logger: o.Logger, Seed: sc.Seed}
		env.Printf("scenario %s (%s): %s", sc.Name, sc.Kind, sc.Description)
		kindsMu.Lock()
		f := runners[sc.Kind]
		kindsMu.Unlock()
		t0 := time.Now()
		var secs []*Section
		var err error
		if f == nil {
			err = fmt.Errorf("kind %s is not implemented", sc.Kind)
		} else {
			secs, err = f(ctx, env, sc)
		}
		if err != nil {
			env.Printf("scenario %s failed: %v", sc.Name, err)
			secs = append(secs, &Section{Title: sc.Name, Failures: []string{"run failed: " + err.Error()}})
		}
		failed := 0
		for _, s := range secs {
			failed += len(s.Failures)
		}
		took := time.Since(t0).Round(time.Second)
		env.Printf("scenario %s done in %s, %d failed checks", sc.Name, took, failed)
		summary.Add(sc.Name, sc.Kind, took, failed)
		r.Sections = append(r.Sections, secs...)
	}
	summary.Caption = fmt.Sprintf("All scenarios took %s.", time.Since(start).Round(time.Second))
	r.Sections = append([]*Section{{Title: "Summary", Tables: []*Table{&summary}}}, r.Sections...)
	return r
}

// LoadScenarios loads the files given; a directory stands for every
// *.yaml file in it, in name order.
func LoadScenarios(paths []string) ([]*Scenario, error) {
	var out []*Scenario
	for _, p := range paths {
		files := []string{p}
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			m, err := filepath.Glob(filepath.Join(p, "*.yaml"))
			if err != nil {
				return nil, err
			}
			slices.Sort(m)
			if len(m) == 0 {
				return nil, fmt.Errorf("%s: no *.yaml scenarios", p)
			}
			files = m
		}
		for _, f := range files {
			sc, err := LoadScenario(f)
			if err != nil {
				return nil, err
			}
			out = append(out, sc)
		}
	}
	return out, nil
}
