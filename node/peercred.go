package node

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// The local API's Unix socket admits only processes of the daemon's own
// user or root. The socket file is created 0600 under a 0177 umask, so no
// other user can connect to it in the first place; the kernel's word on
// every connection (SO_PEERCRED) is checked as well, so a connection that
// got in some other way (a socket in a shared directory, a file mode
// changed by hand) is closed before a byte of it is read.

// uidAllowed reports whether a connection from uid may use the API.
func uidAllowed(uid uint32) bool {
	return uid == 0 || uid == uint32(os.Getuid())
}

// peerCredListener closes every accepted connection whose peer uid the
// allow function refuses, and logs it.
type peerCredListener struct {
	net.Listener
	allow func(uid uint32) bool
	log   *slog.Logger
}

func (l *peerCredListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		uid, err := peerUID(c)
		if err == nil && l.allow(uid) {
			return c, nil
		}
		reason := fmt.Sprintf("uid %d is neither root nor the daemon's user", uid)
		if err != nil {
			reason = "peer credentials unreadable: " + err.Error()
		}
		l.log.Warn("local API connection refused", "event_type", "api_refused", "reason", reason)
		c.Close()
	}
}

// peerUID asks the kernel which user the process at the other end of a
// Unix socket connection runs as.
func peerUID(c net.Conn) (uint32, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return 0, errors.New("not a Unix socket")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, serr
	}
	return cred.Uid, nil
}

// listenPrivate creates a Unix socket that only its owner can connect to
// from the moment it exists: under a 0177 umask, not chmod'ed after the
// fact.
func listenPrivate(path string) (net.Listener, error) {
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	return ln, err
}
