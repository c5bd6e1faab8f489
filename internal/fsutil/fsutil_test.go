package fsutil

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
)

func TestReadFileLimited(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name  string
		size  int
		limit int64
		err   error
	}{
		{"a file under the limit is read", 9, 10, nil},
		{"a file of exactly the limit is read", 10, 10, nil},
		{"a file one byte over the limit is refused", 11, 10, ErrTooLarge},
		{"a much larger file is refused", 1 << 20, 10, ErrTooLarge},
		{"an empty file under a zero limit is read", 0, 0, nil},
		{"any byte over a zero limit is refused", 1, 0, ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "f")
			data := bytes.Repeat([]byte{'x'}, tc.size)
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := ReadFileLimited(path, tc.limit)
			if !errors.Is(err, tc.err) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if err == nil && !bytes.Equal(got, data) {
				t.Errorf("read %d bytes, want %d", len(got), len(data))
			}
		})
	}
	if _, err := ReadFileLimited(filepath.Join(dir, "missing"), 10); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want os.ErrNotExist", err)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	for _, content := range []string{"first", "second, longer than the first", "3"} {
		if err := WriteFileAtomic(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != content {
			t.Fatalf("read back %q, %v; want %q", got, err, content)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
	if err := WriteFileAtomic(filepath.Join(dir, "no", "such", "dir"), nil, 0o600); err == nil {
		t.Error("writing into a missing directory succeeded")
	}
}

func TestFileExists(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]bool{file: true, dir: true, filepath.Join(dir, "missing"): false} {
		if got := FileExists(path); got != want {
			t.Errorf("FileExists(%s) = %v, want %v", path, got, want)
		}
	}
}

// TestLockSerializes runs read-modify-write cycles of one counter file from
// many goroutines, each through its own open of the lock file (flock locks
// belong to an open file, so these exclude each other like processes do).
// Without the lock, increments are lost.
func TestLockSerializes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "counter")
	if err := WriteFileAtomic(path, []byte("0"), 0o600); err != nil {
		t.Fatal(err)
	}
	const workers, rounds = 8, 25
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range rounds {
				unlock, err := Lock(path)
				if err != nil {
					t.Error(err)
					return
				}
				data, err := os.ReadFile(path)
				if err != nil {
					t.Error(err)
				}
				n, _ := strconv.Atoi(string(data))
				runtime.Gosched() // invite a lost update if the lock does not hold
				if err := WriteFileAtomic(path, []byte(strconv.Itoa(n+1)), 0o600); err != nil {
					t.Error(err)
				}
				unlock()
			}
		})
	}
	wg.Wait()
	data, _ := os.ReadFile(path)
	if got := string(data); got != strconv.Itoa(workers*rounds) {
		t.Fatalf("counter = %s after %d locked increments", got, workers*rounds)
	}
}
