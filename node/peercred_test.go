package node

import (
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPeerCredListener checks the local API socket's two locks through a
// real socket: the file is 0600 from the moment it exists, and a
// connection whose kernel-reported uid is refused is closed unread, while
// one from our own uid is served.
func TestPeerCredListener(t *testing.T) {
	path := filepath.Join(t.TempDir(), "api.sock")
	ln, err := listenPrivate(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode&0o077 != 0 {
		t.Fatalf("socket created with mode %v: other users could connect before a chmod", mode)
	}

	// The verdict for each connection comes from the test, in order, and
	// the uid the kernel reported goes back to it.
	verdicts := make(chan bool, 1)
	seen := make(chan uint32, 2)
	pl := &peerCredListener{Listener: ln, log: slog.New(slog.DiscardHandler), allow: func(uid uint32) bool {
		seen <- uid
		return <-verdicts && uidAllowed(uid)
	}}
	served := make(chan net.Conn, 1)
	go func() {
		for {
			c, err := pl.Accept()
			if err != nil {
				close(served)
				return
			}
			served <- c
		}
	}()

	// Refused: the connection is closed by the daemon without a byte read.
	verdicts <- false
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("refused connection: read gave %v, want EOF (closed by the daemon)", err)
	}
	c.Close()
	select {
	case <-served:
		t.Fatal("a refused connection was handed to the server")
	default:
	}
	if uid := <-seen; uid != uint32(os.Getuid()) {
		t.Fatalf("SO_PEERCRED reported uid %d, want ours, %d", uid, os.Getuid())
	}

	// Our own uid: served.
	verdicts <- true
	c, err = net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if sc := <-served; sc == nil {
		t.Fatal("our own connection was not served")
	} else {
		sc.Close()
	}
}

func TestUIDAllowed(t *testing.T) {
	if !uidAllowed(uint32(os.Getuid())) || !uidAllowed(0) {
		t.Fatal("our own uid and root must be allowed")
	}
	if uidAllowed(uint32(os.Getuid()) + 4242) {
		t.Fatal("another uid was allowed")
	}
}

// TestLongSocketPathExplained: a data dir too deep for a Unix socket gets
// an error that says so, not bind's "invalid argument".
func TestLongSocketPathExplained(t *testing.T) {
	path := filepath.Join(t.TempDir(), strings.Repeat("d", 120), "api.sock")
	_, err := listenUnix(path)
	if err == nil || !strings.Contains(err.Error(), "shorter --dir") {
		t.Fatalf("got %v", err)
	}
}
