// Package wire frames JSON messages on libp2p streams: a 4-byte big-endian
// length, then that many bytes of JSON. Readers refuse a length over their
// limit before allocating, and decode strictly (unknown fields and trailing
// data are errors). Every ztmesh stream protocol uses it.
//
// DecodeStrict is also the one strict JSON decoder of every other ztmesh
// format (credentials, revocation lists, policy bundles, attestation
// evidence, reference values, quarantine announcements, CLI inputs): one
// value, known fields only, nothing after it but white space. The package
// imports only the standard library, so any package may use it.
package wire

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
)

// ErrTooLarge is returned for a frame longer than the reader's limit.
var ErrTooLarge = errors.New("frame too large")

// WriteJSON writes v as one frame; it refuses to write more than limit bytes.
func WriteJSON(w io.Writer, v any, limit int) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return WriteFrame(w, body, limit)
}

// WriteFrame writes body, already encoded, as one frame of at most limit bytes.
func WriteFrame(w io.Writer, body []byte, limit int) error {
	if len(body) > limit {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(body), limit)
	}
	buf := make([]byte, 4+len(body))
	binary.BigEndian.PutUint32(buf, uint32(len(body)))
	copy(buf[4:], body)
	_, err := w.Write(buf)
	return err
}

// readChunk is how much of a frame ReadFrame reads at a time. The buffer
// grows as bytes actually arrive, so a peer that declares a long frame and
// sends a few bytes costs those bytes, not the declared length.
const readChunk = 32 << 10

// ReadFrame reads one frame of at most limit bytes. It never allocates the
// declared length up front: it reads in chunks of readChunk bytes and grows
// its buffer with what arrives.
func ReadFrame(r io.Reader, limit int) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("read frame header: %w", err)
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if uint64(n) > uint64(limit) {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, n, limit)
	}
	body := make([]byte, 0, min(int(n), readChunk))
	for len(body) < int(n) {
		want := min(int(n)-len(body), readChunk)
		body = slices.Grow(body, want)
		got, err := io.ReadFull(r, body[len(body):len(body)+want])
		body = body[:len(body)+got]
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("read frame: %d of %d bytes: %w", len(body), n, err)
		}
	}
	return body, nil
}

// DecodeStrict decodes exactly one JSON value into v, refusing unknown
// fields and trailing data.
func DecodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	// Anything but white space after the value is an error. (dec.More
	// would let a stray "}" or "]" through.)
	var extra json.RawMessage
	if err := dec.Decode(&extra); err != io.EOF {
		return errors.New("trailing data after JSON value")
	}
	return nil
}

// ReadJSON reads one frame and decodes it strictly into v.
func ReadJSON(r io.Reader, v any, limit int) error {
	body, err := ReadFrame(r, limit)
	if err != nil {
		return err
	}
	return DecodeStrict(body, v)
}
