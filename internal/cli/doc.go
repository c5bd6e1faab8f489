// Package cli holds the conventions the ztmesh commands (ztmesh, ztmeshd,
// ztmesh-sim) share: GNU-style --flags with a usage that names the command,
// flags accepted before and after positional arguments, repeatable list
// flags, and the mapping of errors to exit statuses (0 success and --help,
// 2 a usage error, 1 anything else), each reason on one line.
//
// It is not a command framework: each command keeps its own table of
// subcommands, each a function (args, stdout, stderr) error, and only main
// exits.
package cli
