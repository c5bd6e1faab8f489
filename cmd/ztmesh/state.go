package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/ztmesh/ztmesh/node/api"
)

// stateCmd is the shared skeleton of the state commands: flags --dir and
// --zone, positional NAME [KEY] [VALUE], and a client of the daemon.
func stateCmd(verb, argsSyntax, description string, nargs int, run func(c *api.Client, zone string, pos []string, asJSON bool, stdout io.Writer) error) func([]string, io.Writer, io.Writer) error {
	return func(args []string, stdout, stderr io.Writer) error {
		fs := newFlags("state "+verb, "--dir DIR --zone ZONE "+argsSyntax, description, stdout)
		dir := fs.String("dir", "", "data `DIR` of the daemon")
		zone := fs.String("zone", "", "`ZONE` the state belongs to")
		asJSON := fs.Bool("json", false, "print JSON")
		pos, err := parse(fs, args)
		if err != nil {
			return err
		}
		if err := requireFlag(fs, "dir", *dir); err != nil {
			return err
		}
		if err := requireFlag(fs, "zone", *zone); err != nil {
			return err
		}
		if len(pos) != nargs {
			return fmt.Errorf("%w: state %s takes %s (see --help)", errUsage, verb, argsSyntax)
		}
		c, err := api.Dial(*dir)
		if err != nil {
			return err
		}
		return run(c, *zone, pos, *asJSON, stdout)
	}
}

func withTimeout() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

var statePut = stateCmd("put", "NAME KEY VALUE",
	"Write KEY of the zone's shared state NAME (a last-writer-wins map) through the\n"+
		"daemon of DIR. The write is committed to the daemon's store before this\n"+
		"returns, then replicated to every member of the zone. The policy decides\n"+
		"who may write which key (state_write); by default a node writes keys under\n"+
		"its own DID (\"<did>/...\").", 3,
	func(c *api.Client, zone string, pos []string, _ bool, stdout io.Writer) error {
		ctx, cancel := withTimeout()
		defer cancel()
		return c.StatePut(ctx, zone, pos[0], pos[1], []byte(pos[2]))
	})

var stateGet = stateCmd("get", "NAME KEY", "Print the value of KEY in the zone's shared state NAME; exit 1 if absent.", 2,
	func(c *api.Client, zone string, pos []string, asJSON bool, stdout io.Writer) error {
		ctx, cancel := withTimeout()
		defer cancel()
		v, ok, err := c.StateGet(ctx, zone, pos[0], pos[1])
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("no key %q in state %q of zone %q", pos[1], pos[0], zone)
		}
		if asJSON {
			return writeJSON(stdout, api.StateValue{Key: pos[1], Value: v})
		}
		fmt.Fprintf(stdout, "%s\n", v)
		return nil
	})

var stateDel = stateCmd("del", "NAME KEY", "Delete KEY from the zone's shared state NAME (a tombstone every replica keeps).", 2,
	func(c *api.Client, zone string, pos []string, _ bool, stdout io.Writer) error {
		ctx, cancel := withTimeout()
		defer cancel()
		return c.StateDelete(ctx, zone, pos[0], pos[1])
	})

var stateList = stateCmd("list", "NAME", "Print every key and value of the zone's shared state NAME, sorted by key.", 1,
	func(c *api.Client, zone string, pos []string, asJSON bool, stdout io.Writer) error {
		ctx, cancel := withTimeout()
		defer cancel()
		m, err := c.StateList(ctx, zone, pos[0])
		if err != nil {
			return err
		}
		if asJSON {
			return writeJSON(stdout, m)
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			fmt.Fprintf(stdout, "%s\t%s\n", k, m[k])
		}
		return nil
	})

var stateWatch = stateCmd("watch", "NAME", "Stream the changes of the zone's shared state NAME until interrupted.", 1,
	func(c *api.Client, zone string, pos []string, asJSON bool, stdout io.Writer) error {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		err := c.StateWatch(ctx, zone, pos[0], func(ch api.StateChange) error {
			switch {
			case asJSON:
				b, _ := json.Marshal(ch)
				fmt.Fprintf(stdout, "%s\n", b)
			case ch.Deleted:
				fmt.Fprintf(stdout, "del %s\n", ch.Key)
			default:
				fmt.Fprintf(stdout, "put %s\t%s\n", ch.Key, ch.Value)
			}
			return nil
		})
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	})
