package node

import (
	"strings"
	"time"
)

// revocationPoll is how often the revocation file is checked for changes.
// Polling (not inotify) works on every filesystem and keeps the cut-off
// within a second of the file changing.
const revocationPoll = 250 * time.Millisecond

type fileStamp struct {
	mod  time.Time
	size int64
}

// oneLine folds a multi-line error (errors.Join) into one line for logs.
func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}
