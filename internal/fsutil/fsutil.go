// Package fsutil holds the few file-system helpers the ztmesh packages and
// commands share: reading a file with a size cap decided before it is read
// into memory, replacing a file atomically, and asking whether a path
// exists. It knows nothing of ztmesh's formats.
package fsutil

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrTooLarge is returned by ReadFileLimited for a file over its limit.
// did.ErrTooLarge is the same error.
var ErrTooLarge = errors.New("too large")

// ReadFileLimited reads a file of at most limit bytes: credentials,
// revocation lists, configs and the like are capped before they are read
// into memory. A larger file is an error wrapping ErrTooLarge.
func ReadFileLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrTooLarge, path, limit)
	}
	return data, nil
}

// WriteFileAtomic writes data to path through a temporary file in the same
// directory, synced, then renamed over path, so a reader never sees a
// half-written file. The file gets the permissions perm. The directory is
// synced after the rename, so the new file survives a crash once this
// returns.
func WriteFileAtomic(path string, data []byte, perm fs.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// FileExists reports whether path exists (whatever it is: a file, a
// directory). An error other than "does not exist", such as a permission
// error, also reports false.
func FileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
