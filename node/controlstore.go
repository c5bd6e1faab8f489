package node

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/internal/fsutil"
	"github.com/ztmesh/ztmesh/policy"
)

// Layout of the durable control state under the data directory. Each file
// holds the highest version of one artifact this node accepted, exactly as
// signed; its version is the floor below which nothing of that kind (and,
// for revocation lists, that issuer) is accepted again, even after a
// restart and even when the artifact itself has since expired.
// ControlDir is the directory of the durable control state inside a data
// dir (`ztmesh control reset` moves it aside).
const ControlDir = "control"

const (
	controlDirName    = ControlDir
	controlBundleFile = "bundle"      // the signed policy bundle
	controlRefFile    = "reference"   // the signed reference values
	controlRevDir     = "revocations" // one signed list per issuer
	controlRevSuffix  = ".jwt"
	// maxControlFiles bounds how many revocation lists are read back.
	maxControlFiles = 1024
)

// errControlState wraps every failure to read the durable control state:
// the daemon stops rather than run with less than it had accepted.
var errControlState = errors.New("control state unreadable")

// controlStore keeps the control artifacts a node accepted, in DIR/control
// (0700; files 0600, written with fsync and rename before the artifact
// takes effect). It only stores bytes: what they mean, and whether they are
// still in force, is the controller's business. A store without a
// directory (a node without a data dir) keeps nothing.
type controlStore struct {
	dir string

	mu   sync.Mutex
	last map[string][]byte // file name → the artifact in it
}

// openControlStore creates or reads DIR/control.
func openControlStore(dataDir string) (*controlStore, error) {
	s := &controlStore{last: map[string][]byte{}}
	if dataDir == "" {
		return s, nil
	}
	s.dir = filepath.Join(dataDir, controlDirName)
	if err := os.MkdirAll(filepath.Join(s.dir, controlRevDir), 0o700); err != nil {
		return nil, fmt.Errorf("%w: %v", errControlState, err)
	}
	// MkdirAll leaves an existing directory as it is: the state is the
	// node's alone.
	for _, d := range []string{s.dir, filepath.Join(s.dir, controlRevDir)} {
		if err := os.Chmod(d, 0o700); err != nil {
			return nil, fmt.Errorf("%w: %v", errControlState, err)
		}
	}
	for _, name := range []string{controlBundleFile, controlRefFile} {
		if err := s.read(name); err != nil {
			return nil, err
		}
	}
	ents, err := os.ReadDir(filepath.Join(s.dir, controlRevDir))
	if err != nil {
		return nil, s.corrupt(controlRevDir, err)
	}
	if len(ents) > maxControlFiles {
		return nil, s.corrupt(controlRevDir, fmt.Errorf("%d files, at most %d", len(ents), maxControlFiles))
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), controlRevSuffix) {
			continue // a temporary file a crash left behind
		}
		if err := s.read(filepath.Join(controlRevDir, e.Name())); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// read loads one file into s.last; a missing file is no artifact.
func (s *controlStore) read(name string) error {
	data, err := fsutil.ReadFileLimited(filepath.Join(s.dir, name), max(policy.MaxBundleSize, did.MaxRevocationListSize))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return s.corrupt(name, err)
	}
	s.last[name] = data
	return nil
}

// corrupt is the error for an unreadable file: it names the file and says
// how to recover.
func (s *controlStore) corrupt(name string, err error) error {
	return fmt.Errorf("%w: %s: %v; the node will not start without the control state it accepted. "+
		"To start afresh (revocations, policy bundle and reference values are then learnt again from the mesh), "+
		"stop the node and run `ztmesh control reset --dir %s --yes`", errControlState, filepath.Join(s.dir, name), err, filepath.Dir(s.dir))
}

// revocationsName is the file of issuer's revocation list.
func revocationsName(issuer did.DID) string {
	h := sha256.Sum256([]byte(issuer.String()))
	return filepath.Join(controlRevDir, hex.EncodeToString(h[:16])+controlRevSuffix)
}

// get returns the stored artifact of a file, or nil.
func (s *controlStore) get(name string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last[name]
}

// revocationLists returns every stored revocation list.
func (s *controlStore) revocationLists() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out [][]byte
	for name, data := range s.last {
		if strings.HasPrefix(name, controlRevDir+string(filepath.Separator)) {
			out = append(out, data)
		}
	}
	return out
}

// put writes an artifact durably (synced file and directory) before the
// caller puts it in force.
func (s *controlStore) put(name string, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dir != "" {
		if err := fsutil.WriteFileAtomic(filepath.Join(s.dir, name), data, 0o600); err != nil {
			return fmt.Errorf("persist control state %s: %w", name, err)
		}
	}
	s.last[name] = append([]byte(nil), data...)
	return nil
}

// digest is an artifact's SHA-256, in hex, for logs.
func digest(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}
