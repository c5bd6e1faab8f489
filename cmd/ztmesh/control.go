package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/ztmesh/ztmesh/node"
	"github.com/ztmesh/ztmesh/node/api"
)

func controlReset(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("control reset", "--dir DIR --yes",
		"Move a stopped node's durable control state (DIR/control: the revocation\n"+
			"lists, policy bundle and reference values it accepted) aside, to\n"+
			"DIR/control.broken-TIME, so that a node that refuses to start over\n"+
			"unreadable control state starts afresh. It then learns revocations, the\n"+
			"bundle and reference values again from its peers and its files: check that\n"+
			"its --revocations file holds the current list. Refuses while the daemon runs.", stdout)
	dir := fs.String("dir", "", "data `DIR` of the stopped node")
	yes := fs.Bool("yes", false, "really move the state aside")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if err := requireFlag(fs, "dir", *dir); err != nil {
		return err
	}
	return resetControl(*dir, *yes, time.Now(), stdout)
}

func resetControl(dir string, yes bool, now time.Time, stdout io.Writer) error {
	state := filepath.Join(dir, node.ControlDir)
	if _, err := os.Stat(state); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s does not exist: nothing to reset", state)
	} else if err != nil {
		return err
	}
	if c, err := api.Dial(dir); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := c.Status(ctx)
		cancel()
		if err == nil {
			return fmt.Errorf("the daemon of %s is running: stop it first (its control state is in force)", dir)
		}
	}
	aside := state + ".broken-" + now.UTC().Format("20060102T150405Z")
	if !yes {
		return fmt.Errorf("%w: this moves %s to %s and the node forgets the revocations, bundle floor and reference values it accepted until it learns them again; give --yes to do it", errUsage, state, aside)
	}
	if err := os.Rename(state, aside); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "moved %s to %s\nthe node starts afresh; check that its --revocations file holds the current list\n", state, aside)
	return nil
}
