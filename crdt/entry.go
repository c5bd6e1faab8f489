package crdt

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"unicode/utf8"

	"github.com/ztmesh/ztmesh/did"
)

// Limits on what a replica accepts. A delta or chunk over them is refused
// before it is parsed or applied.
const (
	// MaxKeySize is the longest key or element, in bytes.
	MaxKeySize = 256
	// MaxValueSize is the largest value of an LWW map entry.
	MaxValueSize = 256 << 10
	// MaxEntries is the most entries in one delta or one chunk.
	MaxEntries = 4096
	// MaxStateName is the longest state name.
	MaxStateName = 64
)

// EntryContext is the signature context of an entry: every entry is
// signed by its writer with did.Identity.Sign under this context, over the
// bytes described in docs/CRDT.md ("Signed bytes").
const EntryContext = "ztmesh/crdt-entry/v1"

// Kind is the data type of a replicated state.
type Kind string

const (
	// LWWMap is a last-writer-wins map: keys to values, the write with the
	// greatest Timestamp wins, deletes are tombstones.
	LWWMap Kind = "lww"
	// ORSet is an observed-remove set: a remove takes out the adds its
	// writer had seen; a concurrent add survives.
	ORSet Kind = "orset"
)

func (k Kind) valid() bool { return k == LWWMap || k == ORSet }

// Entry is one signed write to a state, the unit that deltas and
// anti-entropy chunks carry and that replicas keep.
//
// In an LWW map an entry sets Key to Value, or deletes Key (Deleted, no
// Value); a replica keeps one entry per key, the greatest. In an OR-set Key
// is the element and Dot names one add of it: an add has Dot equal to TS;
// a remove has Deleted set and Dot naming the add it takes out, and TS its
// own time. A replica keeps one entry per (element, Dot), a remove winning
// over the add; the element is in the set while one of its adds is not
// removed. Values are never modified after a write: treat them as
// read-only.
type Entry struct {
	Key     string
	Value   []byte
	Deleted bool
	Dot     Timestamp
	// TS is when the entry was written; TS.Origin is its writer, whom the
	// policy authorizes and whose key signs it.
	TS Timestamp
	// Sig is the writer's Ed25519 signature (EntryContext) over the entry,
	// the state name and kind. It lets any member relay the entry in
	// anti-entropy without being able to forge one.
	Sig []byte
}

// validate checks the syntax of an entry of a state of kind k. It does not
// check the signature.
func (e *Entry) validate(k Kind) error {
	if err := checkKey(e.Key); err != nil {
		return err
	}
	if e.TS.Origin.IsZero() || e.TS.Wall <= 0 {
		return fmt.Errorf("%w: key %q: timestamp without writer or time", ErrMalformed, e.Key)
	}
	if len(e.Sig) != ed25519.SignatureSize {
		return fmt.Errorf("%w: key %q: signature is %d bytes, want %d", ErrMalformed, e.Key, len(e.Sig), ed25519.SignatureSize)
	}
	switch k {
	case LWWMap:
		if len(e.Value) > MaxValueSize {
			return fmt.Errorf("%w: key %q: value of %d bytes, limit %d", ErrTooLarge, e.Key, len(e.Value), MaxValueSize)
		}
		if e.Deleted && len(e.Value) != 0 {
			return fmt.Errorf("%w: key %q: a delete carries a value", ErrMalformed, e.Key)
		}
		if !e.Dot.IsZero() {
			return fmt.Errorf("%w: key %q: a map entry carries a dot", ErrMalformed, e.Key)
		}
	case ORSet:
		if len(e.Value) != 0 {
			return fmt.Errorf("%w: element %q: a set entry carries a value", ErrMalformed, e.Key)
		}
		if !e.Deleted && e.Dot != e.TS {
			return fmt.Errorf("%w: element %q: an add's dot differs from its timestamp", ErrMalformed, e.Key)
		}
		if e.Deleted && (e.Dot.Origin.IsZero() || e.Dot.Wall <= 0) {
			return fmt.Errorf("%w: element %q: a remove without the dot it removes", ErrMalformed, e.Key)
		}
	default:
		return fmt.Errorf("%w: kind %q", ErrMalformed, k)
	}
	return nil
}

// checkKey checks a key or element: 1 to MaxKeySize bytes of UTF-8.
func checkKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: empty key", ErrInvalid)
	case len(key) > MaxKeySize:
		return fmt.Errorf("%w: key of %d bytes, limit %d", ErrTooLarge, len(key), MaxKeySize)
	case !utf8.ValidString(key):
		return fmt.Errorf("%w: key %q is not UTF-8", ErrInvalid, key)
	}
	return nil
}

// checkStateName checks a state name: 1 to MaxStateName characters of
// [a-z0-9_.-], starting with a letter or digit.
func checkStateName(name string) error {
	if name == "" || len(name) > MaxStateName {
		return fmt.Errorf("%w: state name %q must be 1-%d characters", ErrInvalid, name, MaxStateName)
	}
	for i, c := range []byte(name) {
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || i > 0 && (c == '_' || c == '.' || c == '-')
		if !ok {
			return fmt.Errorf("%w: state name %q: use [a-z0-9_.-], starting with a letter or digit", ErrInvalid, name)
		}
	}
	return nil
}

// compareEntries totally orders the entries of one slot (one key of an LWW
// map; one element and dot of an OR-set). A replica keeps the greatest, so
// merge is a join: commutative, associative and idempotent. In an LWW map
// the timestamp decides; in an OR-set a remove beats the add. The later
// tie-breaks only matter for entries no honest writer produces (one writer
// reusing a timestamp after losing its data, a signer varying its
// signatures), and keep the order total even then.
func compareEntries(k Kind, a, b *Entry) int {
	if k == ORSet && a.Deleted != b.Deleted {
		return cmpInt(b.Deleted)
	}
	if c := a.TS.Compare(b.TS); c != 0 {
		return c
	}
	if a.Deleted != b.Deleted {
		return cmpInt(b.Deleted)
	}
	if c := bytes.Compare(a.Value, b.Value); c != 0 {
		return c
	}
	return bytes.Compare(a.Sig, b.Sig)
}

// signedBytes is what the writer signs (under EntryContext): the state and
// kind, so an entry cannot be replayed into another state, then the entry.
func signedBytes(state string, k Kind, e *Entry) []byte {
	b := make([]byte, 0, 128+len(e.Key)+len(e.Value))
	b = appendBytes(b, []byte(state))
	b = appendBytes(b, []byte(k))
	return appendEntry(b, k, e)
}

// appendEntry appends the binary form of an entry without its signature:
// key, flags, value, timestamp, and for an OR-set the dot. Every variable
// field is length-prefixed, so the form is unambiguous.
func appendEntry(b []byte, k Kind, e *Entry) []byte {
	b = appendBytes(b, []byte(e.Key))
	var flags byte
	if e.Deleted {
		flags |= 1
	}
	b = append(b, flags)
	b = appendBytes(b, e.Value)
	b = appendTS(b, e.TS)
	if k == ORSet {
		b = appendTS(b, e.Dot)
	}
	return b
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// appendTS appends wall (8 bytes), logical (4 bytes), both big-endian, and
// the origin's 32-byte Ed25519 public key (zeros for no origin).
func appendTS(b []byte, ts Timestamp) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(ts.Wall))
	b = binary.BigEndian.AppendUint32(b, ts.Logical)
	if ts.Origin.IsZero() {
		return append(b, make([]byte, ed25519.PublicKeySize)...)
	}
	return append(b, ts.Origin.PublicKey()...)
}

// sign fills in e.Sig.
func sign(s Signer, state string, k Kind, e *Entry) {
	e.Sig = s.Sign(EntryContext, signedBytes(state, k, e))
}

// verify checks e.Sig with the key of e.TS.Origin.
func verify(state string, k Kind, e *Entry) error {
	if !did.VerifyDomain(e.TS.Origin.PublicKey(), EntryContext, signedBytes(state, k, e), e.Sig) {
		return fmt.Errorf("%w: key %q by %s", ErrBadSignature, e.Key, e.TS.Origin)
	}
	return nil
}

// Signer signs entries as this node. *did.Identity implements it.
type Signer interface {
	DID() did.DID
	Sign(context string, msg []byte) []byte
}
