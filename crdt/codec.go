package crdt

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/internal/wire"
)

// formatVersion is the "v" of every message this package encodes. A
// decoder refuses any other version with ErrVersion.
const formatVersion = 1

// The JSON forms of docs/CRDT.md. Field order and omitempty are part of the
// format: decoders accept only the exact bytes the encoder produces.

type wireTS struct {
	Wall    int64  `json:"wall"`
	Logical uint32 `json:"logical,omitempty"`
	Origin  string `json:"origin"`
}

type wireEntry struct {
	Key     string  `json:"key"`
	Value   []byte  `json:"value,omitempty"`
	Deleted bool    `json:"deleted,omitempty"`
	Dot     *wireTS `json:"dot,omitempty"`
	TS      wireTS  `json:"ts"`
	Sig     []byte  `json:"sig"`
}

// ed25519DIDLen is the length of every Ed25519 did:key: "did:key:z" and
// the 47 base58 digits of 0xed 0x01 and a 32-byte key.
const ed25519DIDLen = 56

// names converts DIDs to and from text once per message: a message's
// entries mostly share a few writers, and both directions cost microseconds.
type names struct {
	text map[did.DID]string
	dids map[string]did.DID
}

func (n *names) format(d did.DID) string {
	if s, ok := n.text[d]; ok {
		return s
	}
	if n.text == nil {
		n.text = make(map[did.DID]string)
	}
	s := d.String()
	n.text[d] = s
	return s
}

func (n *names) parse(s string) (did.DID, error) {
	if d, ok := n.dids[s]; ok {
		return d, nil
	}
	// Every Ed25519 did:key is "did:key:z6Mk" and 44 more base58
	// characters. Checking that first keeps other multicodecs away from
	// the did:key decoder under did.ParseDID, which panics on some of them
	// (a short BLS12-381 key, found by FuzzDecodeChunk).
	if len(s) != ed25519DIDLen || !strings.HasPrefix(s, "did:key:z6Mk") {
		return did.DID{}, fmt.Errorf("%w: %q is not an Ed25519 did:key", ErrMalformed, s)
	}
	d, err := did.ParseDID(s)
	if err != nil {
		return did.DID{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if n.dids == nil {
		n.dids = make(map[string]did.DID)
	}
	n.dids[s] = d
	return d, nil
}

func (n *names) toWireTS(ts Timestamp) wireTS {
	return wireTS{Wall: ts.Wall, Logical: ts.Logical, Origin: n.format(ts.Origin)}
}

func (n *names) fromWireTS(w wireTS) (Timestamp, error) {
	d, err := n.parse(w.Origin)
	return Timestamp{Wall: w.Wall, Logical: w.Logical, Origin: d}, err
}

// toWire converts an entry of a state of kind k. An OR-set add's dot is
// left out: it is the timestamp.
func (n *names) toWire(k Kind, e *Entry) wireEntry {
	w := wireEntry{Key: e.Key, Value: e.Value, Deleted: e.Deleted, TS: n.toWireTS(e.TS), Sig: e.Sig}
	if k == ORSet && e.Deleted {
		dot := n.toWireTS(e.Dot)
		w.Dot = &dot
	}
	return w
}

// fromWire converts and validates an entry of a state of kind k.
func (n *names) fromWire(k Kind, w *wireEntry) (Entry, error) {
	ts, err := n.fromWireTS(w.TS)
	if err != nil {
		return Entry{}, err
	}
	e := Entry{Key: w.Key, Value: w.Value, Deleted: w.Deleted, TS: ts, Sig: w.Sig}
	switch {
	case w.Dot != nil && (k != ORSet || !w.Deleted):
		return Entry{}, fmt.Errorf("%w: key %q: a dot is only for OR-set removes", ErrMalformed, w.Key)
	case w.Dot != nil:
		if e.Dot, err = n.fromWireTS(*w.Dot); err != nil {
			return Entry{}, err
		}
	case k == ORSet && !w.Deleted:
		e.Dot = e.TS
	}
	if err := e.validate(k); err != nil {
		return Entry{}, err
	}
	return e, nil
}

// decodeCanonical decodes data strictly into v (a pointer to a message
// with a "v" field) and insists that re-encoding v gives back data, so a
// message has one spelling only: no reordered or duplicated fields, no
// other case, whitespace, number or base64 forms.
func decodeCanonical(data []byte, limit int, what string, v any) error {
	if len(data) > limit {
		return fmt.Errorf("%w: %s of %d bytes, limit %d", ErrTooLarge, what, len(data), limit)
	}
	if err := wire.DecodeStrict(data, v); err != nil {
		var probe struct {
			V int `json:"v"`
		}
		if json.Unmarshal(data, &probe) == nil && probe.V != formatVersion {
			return fmt.Errorf("%w: %s version %d, this node speaks %d", ErrVersion, what, probe.V, formatVersion)
		}
		return fmt.Errorf("%w: %s: %v", ErrMalformed, what, err)
	}
	again, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrMalformed, what, err)
	}
	if !bytes.Equal(again, data) {
		return fmt.Errorf("%w: %s is not in canonical form", ErrMalformed, what)
	}
	return nil
}

// checkHeader checks the fields every message starts with.
func checkHeader(what string, v int, state string, k Kind) error {
	if v != formatVersion {
		return fmt.Errorf("%w: %s version %d, this node speaks %d", ErrVersion, what, v, formatVersion)
	}
	if err := checkStateName(state); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrMalformed, what, err)
	}
	if !k.valid() {
		return fmt.Errorf("%w: %s: kind %q", ErrMalformed, what, k)
	}
	return nil
}
