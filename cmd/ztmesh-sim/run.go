package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof" // for --pprof
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/ztmesh/ztmesh/internal/cli"
	"github.com/ztmesh/ztmesh/simulations"
)

// simReportFile is the report's name inside --out.
const simReportFile = "RESULTS.md"

func runCmd(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags(prog, "run", "SCENARIO.yaml|DIR ...",
		"Run simulations: many complete ztmesh nodes in this process on go-libp2p's\n"+
			"mocknet (in-memory links with latency and bandwidth), each figure next to a\n"+
			"plain go-libp2p-pubsub baseline run on the same links in the same run.\n"+
			"A DIR stands for every *.yaml scenario in it (the standard set is\n"+
			"simulations/scenarios). Progress goes to stderr; the Markdown report goes to\n"+
			"OUT/"+simReportFile+" with PNG plots in OUT/plots. Exit status 1 when a\n"+
			"scenario's checks failed (an attack accepted, say) or a scenario could not run.", stdout)
	out := fs.String("out", "sim-out", "directory for the report and its plots")
	quick := fs.Bool("quick", false, "run the reduced set (quick_nodes, quick_duration): what CI runs")
	logFile := fs.String("log", "", "write every node's JSON logs to this file (large)")
	commit := fs.String("commit", "", "commit recorded in the report (default: git rev-parse HEAD, if in a repository)")
	timeout := fs.Duration("timeout", 60*time.Minute, "stop everything after this long")
	pprofAddr := fs.String("pprof", "", "serve Go's profiles (net/http/pprof) on this address while running, e.g. 127.0.0.1:6060")
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return fmt.Errorf("%w: run needs scenario files or directories, e.g. simulations/scenarios (see --help)", cli.ErrUsage)
	}
	scenarios, err := simulations.LoadScenarios(pos)
	if err != nil {
		return err
	}
	var logger *slog.Logger
	if *logFile != "" {
		f, err := os.OpenFile(*logFile, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		logger = slog.New(slog.NewJSONHandler(f, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	if *commit == "" {
		*commit = gitCommit()
	}
	if limit, ok := simMemoryLimit(); ok {
		fmt.Fprintf(stderr, "heap limit %.1f GiB (two thirds of this machine's memory; set GOMEMLIMIT to change it)\n", float64(limit)/(1<<30))
	}
	if *pprofAddr != "" {
		ln, err := net.Listen("tcp", *pprofAddr)
		if err != nil {
			return fmt.Errorf("--pprof: %w", err)
		}
		defer ln.Close()
		go http.Serve(ln, nil) // net/http/pprof registers on the default mux
		fmt.Fprintf(stderr, "profiles at http://%s/debug/pprof/\n", ln.Addr())
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	report := simulations.Run(ctx, scenarios, simulations.Options{
		Quick:    *quick,
		Progress: stderr,
		Logger:   logger,
		Command:  prog + " run " + strings.Join(args, " "),
		Commit:   *commit,
	})
	if err := report.Write(*out, simReportFile); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	fmt.Fprintf(stdout, "report: %s\n", filepath.Join(*out, simReportFile))
	if f := report.Failures(); len(f) > 0 {
		for _, s := range f {
			fmt.Fprintf(stderr, "FAILED %s\n", s)
		}
		return fmt.Errorf("%d simulation checks failed", len(f))
	}
	return ctx.Err()
}

// gitCommit names the checked-out commit, marked -dirty when the tree has
// changes, or "unknown" outside a repository.
func gitCommit() string {
	rev, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(rev))
	if err := exec.Command("git", "diff", "--quiet", "HEAD").Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			c += "-dirty"
		}
	}
	return c
}

// simMemoryLimit sets the Go heap's soft limit to two thirds of physical
// memory, unless GOMEMLIMIT is set. Every simulated node lives in this
// process and holds an entry for every member of the mesh, so a large mesh
// has a large live heap; with the default GOGC the heap may grow to twice
// that before a collection, which at 1,000 nodes outgrew a 24 GiB machine.
// Near the limit the collector runs more often instead.
func simMemoryLimit() (int64, bool) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return 0, false
	}
	var si syscall.Sysinfo_t
	if err := syscall.Sysinfo(&si); err != nil || si.Totalram == 0 {
		return 0, false
	}
	limit := int64(si.Totalram) * int64(si.Unit) / 3 * 2
	debug.SetMemoryLimit(limit)
	return limit, true
}
