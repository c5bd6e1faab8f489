package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ztmesh/ztmesh/did"
)

// errHelp is returned after --help printed a command's usage (exit status 0).
var errHelp = errors.New("help shown")

// newFlags returns a flag set whose usage names the command, its arguments
// and a description.
func newFlags(name, argsSyntax, description string, stdout io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprintf(stdout, "Usage: ztmesh %s %s\n\n%s\n\nFlags:\n", name, argsSyntax, description)
		printFlags(stdout, fs)
	}
	return fs
}

// printFlags lists flags GNU style (--name), with their defaults.
func printFlags(w io.Writer, fs *flag.FlagSet) {
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

// parse parses flags that may appear before or after positional arguments
// and returns the positional ones.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) { // fs.Parse has printed the usage
				return nil, errHelp
			}
			return nil, fmt.Errorf("%w: %s %v (see --help)", errUsage, fs.Name(), err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// listFlag is a repeatable flag; each use may also hold a comma-separated list.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

// passphrase returns the passphrase from --passphrase-file, else from the
// ZTMESH_PASSPHRASE environment variable, else nil.
func passphrase(file string) ([]byte, error) {
	if file != "" {
		return did.ReadPassphraseFile(file)
	}
	if p := os.Getenv(did.PassphraseEnv); p != "" {
		return []byte(p), nil
	}
	return nil, nil
}

func requireFlag(fs *flag.FlagSet, name, value string) error {
	if value == "" {
		return fmt.Errorf("%w: %s needs --%s (see --help)", errUsage, fs.Name(), name)
	}
	return nil
}

func parseDIDs(ss []string) ([]did.DID, error) {
	out := make([]did.DID, 0, len(ss))
	for _, s := range ss {
		d, err := did.ParseDID(s)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		out = append(out, d)
	}
	return out, nil
}
