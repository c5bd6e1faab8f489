package node

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ztmesh/ztmesh/did"
)

// TestSecondDaemonOnTakenPortRefused holds a TCP port the way go-libp2p
// does (SO_REUSEPORT), as a first daemon would, and starts a node on it:
// the node must refuse to start and name the address, instead of sharing
// the port and splitting the first daemon's incoming connections.
func TestSecondDaemonOnTakenPortRefused(t *testing.T) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port

	m := newMesh(t)
	id, err := did.GenerateIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cred := m.credFor(m.issuer, id, did.IssueOptions{Now: m.clock.now()})
	if err := os.WriteFile(filepath.Join(dir, did.CredentialFile), []byte(cred), 0o600); err != nil {
		t.Fatal(err)
	}
	off := false
	cfg := Config{Dir: dir, Listen: []string{"/ip4/127.0.0.1/tcp/" + strconv.Itoa(port)},
		TrustIssuers: []string{m.issuer.DID().String()}, MDNS: &off, API: "off"}
	n, err := New(cfg, Options{Identity: id, Logger: slog.New(slog.DiscardHandler), Now: m.clock.now})
	if err == nil {
		n.Close()
		t.Fatal("a node started on a port another daemon holds")
	}
	if want := "127.0.0.1:" + strconv.Itoa(port); !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "taken") {
		t.Fatalf("error %q does not name the taken address %s", err, want)
	}
}
