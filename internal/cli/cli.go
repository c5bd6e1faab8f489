package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// ErrUsage marks an error in how a command was called (exit status 2).
var ErrUsage = errors.New("usage")

// ErrHelp is returned after --help printed a command's usage (exit status 0).
var ErrHelp = errors.New("help shown")

// NewFlags returns a flag set for the subcommand name of the program prog,
// whose usage names both, the arguments and a description, and lists the
// flags (see PrintFlags) on stdout.
func NewFlags(prog, name, argsSyntax, description string, stdout io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprintf(stdout, "Usage: %s %s %s\n\n%s\n\nFlags:\n", prog, name, argsSyntax, description)
		PrintFlags(stdout, fs)
	}
	return fs
}

// PrintFlags lists flags GNU style (--name), with their defaults.
func PrintFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		arg, usage := flag.UnquoteUsage(f)
		if arg != "" {
			arg = " " + strings.ToUpper(arg)
		}
		def := ""
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "[]" {
			def = fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "  --%s%s\n      %s%s\n", f.Name, arg, usage, def)
	})
}

// Parse parses flags that may appear before or after positional arguments
// and returns the positional ones. After --help it returns ErrHelp; a bad
// flag is an error wrapping ErrUsage.
func Parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) { // fs.Parse has printed the usage
				return nil, ErrHelp
			}
			return nil, fmt.Errorf("%w: %s %v (see --help)", ErrUsage, fs.Name(), err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// ExitCode prints err as one line prefixed with prog and maps it to an exit
// status: 0 success (and --help), 2 usage errors, 1 everything else.
func ExitCode(prog string, err error, stderr io.Writer) int {
	switch {
	case err == nil || errors.Is(err, ErrHelp):
		return 0
	case errors.Is(err, ErrUsage):
		fmt.Fprintf(stderr, "%s: %s\n", prog, OneLine(err))
		return 2
	default:
		fmt.Fprintf(stderr, "%s: %s\n", prog, OneLine(err))
		return 1
	}
}

// OneLine folds a multi-line error (errors.Join) into one line.
func OneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}

// List is a repeatable flag whose every use may also hold a
// comma-separated list: --x A,B is --x A --x B. Space around each value is
// trimmed and empty values are dropped. Use it with flag.FlagSet.Var.
type List []string

func (l *List) String() string { return strings.Join(*l, ",") }

// Set adds the comma-separated values of s.
func (l *List) Set(s string) error {
	for v := range strings.SplitSeq(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}
