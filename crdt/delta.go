package crdt

import (
	"encoding/json"
	"fmt"

	"github.com/ztmesh/ztmesh/did"
)

// MaxDeltaSize is the largest encoded delta.
const MaxDeltaSize = 1 << 20

// Delta is what a local write produces and what replicas broadcast: a few
// entries of one state, all written by Origin. Carrying only its origin's
// own writes is what lets every receiver authorize a delta as the writes
// of the sender the zone envelope authenticated.
type Delta struct {
	State   string
	Kind    Kind
	Origin  did.DID
	Entries []Entry
}

type wireDelta struct {
	V       int         `json:"v"`
	State   string      `json:"state"`
	Kind    Kind        `json:"kind"`
	Origin  string      `json:"origin"`
	Entries []wireEntry `json:"entries"`
}

// validate checks the syntax and attribution of d, not signatures.
func (d *Delta) validate() error {
	if err := checkHeader("delta", formatVersion, d.State, d.Kind); err != nil {
		return err
	}
	if d.Origin.IsZero() {
		return fmt.Errorf("%w: delta without origin", ErrMalformed)
	}
	switch n := len(d.Entries); {
	case n == 0:
		return fmt.Errorf("%w: delta without entries", ErrMalformed)
	case n > MaxEntries:
		return fmt.Errorf("%w: delta of %d entries, limit %d", ErrTooLarge, n, MaxEntries)
	}
	for i := range d.Entries {
		e := &d.Entries[i]
		if err := e.validate(d.Kind); err != nil {
			return err
		}
		if e.TS.Origin != d.Origin {
			return fmt.Errorf("%w: delta from %s carries key %q written by %s", ErrAttribution, d.Origin, e.Key, e.TS.Origin)
		}
	}
	return nil
}

// Encode returns the wire form of d (docs/CRDT.md, "Delta"), at most
// MaxDeltaSize bytes.
func (d *Delta) Encode() ([]byte, error) {
	if err := d.validate(); err != nil {
		return nil, err
	}
	var n names
	w := wireDelta{V: formatVersion, State: d.State, Kind: d.Kind, Origin: n.format(d.Origin),
		Entries: make([]wireEntry, len(d.Entries))}
	for i := range d.Entries {
		w.Entries[i] = n.toWire(d.Kind, &d.Entries[i])
	}
	b, err := json.Marshal(&w)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxDeltaSize {
		return nil, fmt.Errorf("%w: delta of %d bytes, limit %d", ErrTooLarge, len(b), MaxDeltaSize)
	}
	return b, nil
}

// DecodeDelta parses a delta received from the network. It refuses a delta
// over MaxDeltaSize before parsing, any form other than the one Encode
// produces, and entries outside the limits or written by anyone but the
// delta's origin. It does not verify signatures or authorize anything:
// Replica.Apply does.
func DecodeDelta(data []byte) (*Delta, error) {
	var w wireDelta
	if err := decodeCanonical(data, MaxDeltaSize, "delta", &w); err != nil {
		return nil, err
	}
	if err := checkHeader("delta", w.V, w.State, w.Kind); err != nil {
		return nil, err
	}
	if len(w.Entries) > MaxEntries {
		return nil, fmt.Errorf("%w: delta of %d entries, limit %d", ErrTooLarge, len(w.Entries), MaxEntries)
	}
	var n names
	origin, err := n.parse(w.Origin)
	if err != nil {
		return nil, err
	}
	d := &Delta{State: w.State, Kind: w.Kind, Origin: origin, Entries: make([]Entry, len(w.Entries))}
	for i := range w.Entries {
		if d.Entries[i], err = n.fromWire(w.Kind, &w.Entries[i]); err != nil {
			return nil, err
		}
	}
	if err := d.validate(); err != nil {
		return nil, err
	}
	return d, nil
}
