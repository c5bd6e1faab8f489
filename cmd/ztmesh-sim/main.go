// Command ztmesh-sim runs the simulations of the simulations package: many
// complete ztmesh nodes in one process on go-libp2p's mocknet (or real TCP
// over 127.0.0.1), each figure next to a plain go-libp2p-pubsub baseline
// measured on the same links in the same run, written up as a Markdown
// report with plots.
//
// It is a separate command from ztmesh, the operator's tool, so that
// neither ztmesh nor ztmeshd links the simulator, mocknet or the plotting
// libraries. Run `ztmesh-sim help` for the list of subcommands.
//
// Each subcommand is a function (args, stdout, stderr) error; only main
// exits.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/ztmesh/ztmesh/internal/cli"
)

// prog is the command's name in usage and error messages.
const prog = "ztmesh-sim"

// command is one subcommand: run parses its own flags from args.
type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"run", "run simulation scenarios (many nodes in-process) and write a report", runCmd},
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return 0
	}
	for _, c := range commands() {
		if args[0] == c.name {
			return cli.ExitCode(prog, c.run(args[1:], stdout, stderr), stderr)
		}
	}
	fmt.Fprintf(stderr, "%s: unknown command %q; see `%s help`\n", prog, args[0], prog)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintf(w, `%[1]s - simulate a ztmesh mesh of many nodes in one process

Usage: %[1]s COMMAND [flags] [args]

Every node is a complete ztmesh node (identity, credential, handshake,
policy, pubsub) on go-libp2p's mocknet: in-memory links with the latency and
bandwidth a scenario gives, or real TCP over 127.0.0.1. Each ztmesh figure
is reported next to a plain go-libp2p-pubsub baseline run on the same links
in the same run. Scenarios are YAML files; the standard set is
simulations/scenarios, the reduced set CI runs is the same with --quick.

Commands:
`, prog)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-5s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, `
Examples:
  %[1]s run --quick --out sim-out simulations/scenarios
  %[1]s run --out /tmp/sim simulations/scenarios/attacks.yaml

Run `+"`%[1]s COMMAND --help`"+` for a command's flags.
`, prog)
}
