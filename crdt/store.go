package crdt

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// storeVersion is the layout version recorded in a store's meta bucket.
const storeVersion = "1"

var (
	metaBucket = []byte("meta")
	versionKey = []byte("version")
)

func stateBucket(name string) []byte { return []byte("state/" + name) }
func kindKey(name string) []byte     { return []byte("kind/" + name) }

// Store keeps the states of one node in a bbolt file, one bucket per state
// holding the entries the replica keeps (the same JSON as on the wire). A
// replica commits every local write and every remote entry it merges
// before the call returns, and bbolt syncs the file at each commit, so a
// write a replica acknowledged survives the process being killed.
//
// A Store is safe for concurrent use by the replicas of different states.
type Store struct {
	db   *bolt.DB
	path string

	mu   sync.Mutex
	open map[string]bool // states with a replica open
}

// OpenStore opens the store file at path, creating it with mode 0600 if it
// does not exist. It refuses a file that group or others may read or
// write, and waits at most a second for another process holding the file.
func OpenStore(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("open store %s: another process has it open", path)
		}
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	fi, err := os.Stat(path)
	if err == nil && fi.Mode().Perm()&0o077 != 0 {
		err = fmt.Errorf("%w: %s has mode %04o; run chmod 600 %s", ErrStorePermissions, path, fi.Mode().Perm(), path)
	}
	if err == nil {
		err = db.Update(func(tx *bolt.Tx) error {
			meta, err := tx.CreateBucketIfNotExists(metaBucket)
			if err != nil {
				return err
			}
			switch v := meta.Get(versionKey); {
			case v == nil:
				return meta.Put(versionKey, []byte(storeVersion))
			case string(v) != storeVersion:
				return fmt.Errorf("%w: store layout %q, this node reads %q", ErrVersion, v, storeVersion)
			}
			return nil
		})
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return &Store{db: db, path: path, open: make(map[string]bool)}, nil
}

// Close closes the file. Replicas using the store cannot commit afterwards.
func (s *Store) Close() error { return s.db.Close() }

// load claims state name for one replica and returns its entries. A state
// stored under another kind is refused.
func (s *Store) load(name string, k Kind) ([]Entry, error) {
	s.mu.Lock()
	if s.open[name] {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: state %q on %s", ErrInUse, name, s.path)
	}
	s.open[name] = true
	s.mu.Unlock()

	var entries []Entry
	err := s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(metaBucket)
		switch stored := meta.Get(kindKey(name)); {
		case stored == nil:
			if err := meta.Put(kindKey(name), []byte(k)); err != nil {
				return err
			}
		case Kind(stored) != k:
			return fmt.Errorf("%w: state %q is stored as %s, not %s", ErrWrongKind, name, stored, k)
		}
		b, err := tx.CreateBucketIfNotExists(stateBucket(name))
		if err != nil {
			return err
		}
		var n names
		return b.ForEach(func(_, v []byte) error {
			var w wireEntry
			if err := json.Unmarshal(v, &w); err != nil {
				return fmt.Errorf("%w: stored entry: %v", ErrMalformed, err)
			}
			e, err := n.fromWire(k, &w)
			if err != nil {
				return fmt.Errorf("stored entry: %w", err)
			}
			entries = append(entries, e)
			return nil
		})
	})
	if err != nil {
		s.release(name)
		return nil, fmt.Errorf("load state %q from %s: %w", name, s.path, err)
	}
	return entries, nil
}

func (s *Store) release(name string) {
	s.mu.Lock()
	delete(s.open, name)
	s.mu.Unlock()
}

// commit writes puts and removes the slots of dels in one synced
// transaction.
func (s *Store) commit(name string, k Kind, puts, dels []Entry) error {
	if len(puts) == 0 && len(dels) == 0 {
		return nil
	}
	var n names
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(stateBucket(name))
		if b == nil {
			return fmt.Errorf("state %q has no bucket", name)
		}
		for i := range dels {
			if err := b.Delete(slotID(k, &dels[i])); err != nil {
				return err
			}
		}
		for i := range puts {
			w := n.toWire(k, &puts[i])
			v, err := json.Marshal(&w)
			if err != nil {
				return err
			}
			if err := b.Put(slotID(k, &puts[i]), v); err != nil {
				return err
			}
		}
		return nil
	})
}

// slotID is the store key of an entry's slot: the key, and for an OR-set
// the dot.
func slotID(k Kind, e *Entry) []byte {
	b := appendBytes(nil, []byte(e.Key))
	if k == ORSet {
		b = appendTS(b, e.Dot)
	}
	return b
}
