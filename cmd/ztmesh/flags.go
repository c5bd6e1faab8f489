package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/internal/cli"
)

// The shared command-line conventions (internal/cli), under the names
// this command's files use.
var (
	errUsage = cli.ErrUsage
	parse    = cli.Parse
)

// listFlag is a repeatable flag; each use may also hold a comma-separated list.
type listFlag = cli.List

// newFlags returns a flag set whose usage names the command, its arguments
// and a description.
func newFlags(name, argsSyntax, description string, stdout io.Writer) *flag.FlagSet {
	return cli.NewFlags("ztmesh", name, argsSyntax, description, stdout)
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
