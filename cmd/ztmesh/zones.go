package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ztmesh/ztmesh/internal/cli"
	"github.com/ztmesh/ztmesh/internal/fsutil"
	"github.com/ztmesh/ztmesh/node/api"
	"github.com/ztmesh/ztmesh/pubsub"
)

func pub(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("pub", "--dir DIR --zone ZONE --channel CHANNEL [--file FILE | DATA]",
		"Publish a message on a zone channel through the daemon of DIR. The daemon asks\n"+
			"the policy whether its own credential may publish there, seals the payload for\n"+
			"the zone and signs it. Exit 0 once published; exit 1 with the policy's reason\n"+
			"(containing \"denied\") when the policy refuses.", stdout)
	dir := fs.String("dir", "", "data `DIR` of the daemon")
	zone := fs.String("zone", "", "`ZONE` to publish in")
	channel := fs.String("channel", "", "`CHANNEL` in the zone")
	file := fs.String("file", "", "read the payload from `FILE` (- for stdin) instead of DATA")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	for name, v := range map[string]string{"dir": *dir, "zone": *zone, "channel": *channel} {
		if err := requireFlag(fs, name, v); err != nil {
			return err
		}
	}
	var data []byte
	switch {
	case *file != "" && len(pos) > 0:
		return fmt.Errorf("%w: give --file or DATA, not both", errUsage)
	case *file == "-":
		data, err = io.ReadAll(io.LimitReader(os.Stdin, pubsub.MaxPayload+1))
	case *file != "":
		data, err = fsutil.ReadFileLimited(*file, pubsub.MaxPayload)
	case len(pos) == 1:
		data = []byte(pos[0])
	default:
		return fmt.Errorf("%w: pub needs DATA or --file (see --help)", errUsage)
	}
	if err != nil {
		return err
	}
	if len(data) > pubsub.MaxPayload {
		return fmt.Errorf("payload of %d bytes is over the %d-byte limit", len(data), pubsub.MaxPayload)
	}
	c, err := api.Dial(*dir)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := c.Publish(ctx, *zone, *channel, data)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "published %d bytes on %s (seq %d)\n", len(data), r.Topic, r.Seq)
	return nil
}

func sub(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("sub", "--dir DIR --zone ZONE --channel CHANNEL [--json]",
		"Stream the messages of a zone channel from the daemon of DIR until interrupted.\n"+
			"Only messages that verified (origin's credential and policy, signature,\n"+
			"sealing, replay window) arrive. Without --json each payload is printed as a\n"+
			"line of text; with --json one object per line: origin (DID), zone, channel,\n"+
			"seq, time, data (base64).", stdout)
	dir := fs.String("dir", "", "data `DIR` of the daemon")
	zone := fs.String("zone", "", "`ZONE` to subscribe to")
	channel := fs.String("channel", "", "`CHANNEL` in the zone")
	asJSON := fs.Bool("json", false, "print one JSON object per message")
	count := fs.Int("count", 0, "exit after `N` messages (0 = until interrupted)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	for name, v := range map[string]string{"dir": *dir, "zone": *zone, "channel": *channel} {
		if err := requireFlag(fs, name, v); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	n := 0
	errDone := errors.New("done")
	show := func(m api.Message) error {
		if *asJSON {
			b, _ := json.Marshal(m)
			fmt.Fprintf(stdout, "%s\n", b)
		} else {
			fmt.Fprintf(stdout, "%s\n", m.Data)
		}
		if f, ok := stdout.(*os.File); ok {
			f.Sync()
		}
		n++
		if *count > 0 && n >= *count {
			return errDone
		}
		return nil
	}
	// A daemon that goes away (restarted, stopped) is waited for and
	// subscribed to again; what it delivered meanwhile is not replayed, and
	// that is said. Only the first connection's failure is final.
	wait := time.Second
	for attempt := 0; ; attempt++ {
		c, err := api.Dial(*dir)
		if err == nil {
			err = c.Subscribe(ctx, *zone, *channel, show)
		}
		switch {
		case errors.Is(err, errDone) || ctx.Err() != nil:
			return nil
		case err == nil:
			err = errors.New("the daemon ended the subscription")
		case attempt == 0 && !wentAway(err):
			return err // never subscribed: not running, or refused
		case !wentAway(err) && !unreachable(err):
			return err // back, and refusing: the policy changed, say
		}
		if wentAway(err) {
			fmt.Fprintf(stderr, "ztmesh: the daemon of %s went away (%s); reconnecting. Messages delivered meanwhile are not replayed.\n", *dir, cli.OneLine(err))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// wentAway reports a subscription whose daemon stopped answering
// mid-stream, as opposed to one that refused it.
func wentAway(err error) bool {
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) ||
		err.Error() == "the daemon ended the subscription"
}

// unreachable reports a daemon that is not (yet) back after going away.
func unreachable(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) || errors.Is(err, api.ErrNotRunning)
}

// publishRevocations sends a revocation list through a daemon, for
// `cred revoke --publish`.
func publishRevocations(dir string, token []byte) error {
	c, err := api.Dial(dir)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return c.PushRevocations(ctx, token)
}

// pushCommand publishes a signed file (policy bundle, reference values)
// on the mesh control topic through a running daemon.
func pushCommand(name, description, what string, push func(*api.Client, context.Context, []byte) error) func([]string, io.Writer, io.Writer) error {
	return func(args []string, stdout, stderr io.Writer) error {
		fs := newFlags(name, "--dir DIR FILE", description, stdout)
		dir := fs.String("dir", "", "data `DIR` of the daemon to publish through")
		pos, err := parse(fs, args)
		if err != nil {
			return err
		}
		if err := requireFlag(fs, "dir", *dir); err != nil {
			return err
		}
		if len(pos) != 1 {
			return fmt.Errorf("%w: %s takes one %s FILE", errUsage, name, what)
		}
		data, err := fsutil.ReadFileLimited(pos[0], pubsub.MaxMessageSize/2)
		if err != nil {
			return err
		}
		c, err := api.Dial(*dir)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := push(c, ctx, data); err != nil {
			return fmt.Errorf("%s refused: %w", what, err)
		}
		fmt.Fprintf(stdout, "published %s %s on the control topic\n", what, pos[0])
		return nil
	}
}

var policyPush = pushCommand("policy push",
	"Publish a signed policy bundle (from `ztmesh policy sign`) on the mesh control\n"+
		"topic through the daemon of DIR. Every node verifies the issuer's signature\n"+
		"and that the version is newer than its own, then swaps its policy; nodes that\n"+
		"join later get it from their peers.", "policy bundle", (*api.Client).PushPolicy)

var attestPush = pushCommand("attest push",
	"Publish signed attestation reference values (from `ztmesh attest reference`)\n"+
		"on the mesh control topic through the daemon of DIR. Every node verifies the\n"+
		"issuer and that the version is newer, then judges every peer's evidence\n"+
		"against them; nodes that join later get them from their peers.", "reference values", (*api.Client).PushReference)
