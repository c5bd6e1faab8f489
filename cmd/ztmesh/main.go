// Command ztmesh is the operator's tool for a ztmesh fleet: it creates node
// identities, issues, inspects, verifies, revokes and installs credentials,
// tests, signs and pushes policy, shows a running daemon's status and peers,
// and publishes and subscribes on zone channels through it. The simulations
// are a separate command, ztmesh-sim, so that this one does not link them.
//
// Each subcommand is a function (args, stdout, stderr) error; only main
// exits. Run `ztmesh help` for the list.
package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ztmesh/ztmesh/internal/buildinfo"
	"github.com/ztmesh/ztmesh/internal/cli"
)

// command is one subcommand: run parses its own flags from args.
type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"id init", "create a node identity (Ed25519 key, did:key, peer ID) in a data dir", idInit},
		{"id show", "print a data dir's DID, peer ID and key-agreement key", idShow},
		{"cred issue", "issue a credential to a subject DID, signed by an issuer identity", credIssue},
		{"cred verify", "verify a credential against pinned issuers and a revocation list", credVerify},
		{"cred inspect", "decode a credential WITHOUT verifying it", credInspect},
		{"cred revoke", "add credential IDs or subject DIDs to a signed revocation list", credRevoke},
		{"cred install", "verify and install a (renewed) credential into a node, running or not", credInstall},
		{"policy test", "decide one input document with a policy (or the default), like opa eval", policyTest},
		{"policy check", "compile a policy and run its Rego tests (*_test.rego)", policyCheck},
		{"policy sign", "sign a policy as a versioned bundle with an issuer identity", policySign},
		{"policy verify", "verify a policy bundle against pinned issuers and print it", policyVerify},
		{"policy push", "publish a signed policy bundle to the whole mesh through a daemon", policyPush},
		{"attest show", "print the signed attestation evidence of a node (measured by the CLI)", attestShow},
		{"attest reference", "sign attestation reference values: allowed binaries and module versions", attestReference},
		{"attest push", "publish signed reference values to the whole mesh through a daemon", attestPush},
		{"control reset", "move a stopped node's unreadable control state aside so it starts afresh", controlReset},
		{"completion", "print a shell completion script (bash, zsh, fish)", completion},
		{"status", "show a running daemon: DID, addresses, credential, peer counts", status},
		{"peers", "list a running daemon's peers and their verified claims", peers},
		{"pub", "publish a message on a zone channel through a daemon", pub},
		{"sub", "stream a zone channel's verified messages from a daemon", sub},
		{"state put", "write a key of a zone's shared state (replicated CRDT map)", statePut},
		{"state get", "read a key of a zone's shared state", stateGet},
		{"state del", "delete a key of a zone's shared state", stateDel},
		{"state list", "print a zone's shared state", stateList},
		{"state watch", "stream the changes of a zone's shared state", stateWatch},
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return 0
	}
	if args[0] == "help" {
		// ztmesh help [GROUP [COMMAND]]: the list, a group's commands, or
		// a command's --help.
		if len(args) == 1 {
			usage(stdout)
			return 0
		}
		return run(append(args[1:], "--help"), stdout, stderr)
	}
	if args[0] == "version" || args[0] == "--version" {
		fmt.Fprintln(stdout, buildinfo.Line("ztmesh"))
		return 0
	}
	for _, c := range commands() {
		words := strings.Fields(c.name)
		if len(args) >= len(words) && strings.Join(args[:len(words)], " ") == c.name {
			err := c.run(args[len(words):], stdout, stderr)
			return exitCode(err, stderr)
		}
	}
	if args[0] == "sim" {
		fmt.Fprintln(stderr, "ztmesh: the simulations moved to their own command: ztmesh-sim "+strings.Join(args[1:], " ")+" (go run ./cmd/ztmesh-sim --help)")
		return 2
	}
	// A group: with --help, its commands; without a known subcommand, a
	// usage error that lists them.
	if group := groupCommands(args[0]); len(group) > 0 {
		if len(args) > 1 && (args[1] == "--help" || args[1] == "-h") {
			groupUsage(stdout, args[0], group)
			return 0
		}
		if len(args) == 1 {
			fmt.Fprintf(stderr, "ztmesh: %s needs a command: %s (see `ztmesh %s --help`)\n", args[0], groupNames(group), args[0])
		} else {
			fmt.Fprintf(stderr, "ztmesh: unknown command %q: %s has %s (see `ztmesh %s --help`)\n", strings.Join(args[:2], " "), args[0], groupNames(group), args[0])
		}
		return 2
	}
	fmt.Fprintf(stderr, "ztmesh: unknown command %q; see `ztmesh help`\n", args[0])
	return 2
}

// groupCommands returns the commands of a group such as "cred".
func groupCommands(group string) []command {
	var out []command
	for _, c := range commands() {
		if strings.HasPrefix(c.name, group+" ") {
			out = append(out, c)
		}
	}
	return out
}

func groupNames(cs []command) string {
	names := make([]string, len(cs))
	for i, c := range cs {
		names[i] = strings.Fields(c.name)[1]
	}
	return strings.Join(names, ", ")
}

func groupUsage(w io.Writer, group string, cs []command) {
	fmt.Fprintf(w, "Usage: ztmesh %s COMMAND [flags] [args]\n\nCommands:\n", group)
	for _, c := range cs {
		fmt.Fprintf(w, "  %-17s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun `ztmesh %s COMMAND --help` for a command's flags.\n", group)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "ztmesh - operate a ztmesh zero-trust mesh")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: ztmesh COMMAND [flags] [args]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-17s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  %-17s %s\n", "version", "print the version, commit, build date and Go version")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run `ztmesh COMMAND --help` (or `ztmesh help COMMAND`) for a command's flags,")
	fmt.Fprintln(w, "`ztmesh GROUP --help` for a group's commands. The simulations are a")
	fmt.Fprintln(w, "separate command: `ztmesh-sim --help` (go run ./cmd/ztmesh-sim --help).")
}

// exitCode prints err as one line and maps it to an exit status: 0 success
// (and --help), 2 usage errors, 1 everything else.
func exitCode(err error, stderr io.Writer) int { return cli.ExitCode("ztmesh", err, stderr) }
