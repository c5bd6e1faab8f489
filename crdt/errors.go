package crdt

import "errors"

// Errors returned by this package. Callers test for them with errors.Is; the
// wrapping error adds the detail (which state, key, origin).
var (
	// ErrMalformed: the bytes are not a well-formed delta, digest or chunk
	// (bad JSON, unknown or missing fields, not in canonical form, a field
	// outside its syntax). Nothing was applied.
	ErrMalformed = errors.New("malformed")
	// ErrTooLarge: a message, key, value or entry list is over its limit
	// (see the Max* constants). An oversized message is not parsed.
	ErrTooLarge = errors.New("too large")
	// ErrVersion: the message has a format version this node does not
	// speak; upgrade the node.
	ErrVersion = errors.New("unsupported format version")
	// ErrWrongState: the message is for another state, or for the same name
	// with another kind. The caller routed it to the wrong replica.
	ErrWrongState = errors.New("wrong state")
	// ErrWrongKind: the operation does not exist for the replica's kind
	// (Put on an OR-set, Add on an LWW map), or a store holds the state
	// under another kind.
	ErrWrongKind = errors.New("wrong kind")
	// ErrAttribution: an entry claims another writer than the delta's
	// origin, or the delta's origin is not the authenticated sender.
	ErrAttribution = errors.New("forged attribution")
	// ErrBadSignature: an entry's signature does not verify with its
	// writer's key.
	ErrBadSignature = errors.New("bad signature")
	// ErrUnauthorized: the Authorizer refused a write.
	ErrUnauthorized = errors.New("unauthorized write")
	// ErrClockDrift: a timestamp is further in the future than the clock's
	// maximum drift. The writer's clock is wrong; the entry is refused now
	// and may be accepted by anti-entropy once it is no longer in the future.
	ErrClockDrift = errors.New("timestamp too far in the future")
	// ErrInvalid: a key, state name or argument is outside its syntax.
	ErrInvalid = errors.New("invalid argument")
	// ErrStorePermissions: the store file is readable or writable by group
	// or others.
	ErrStorePermissions = errors.New("store file permissions too open")
	// ErrInUse: another replica of the same state is open on the store.
	ErrInUse = errors.New("state already open")
	// ErrClosed: the replica was closed.
	ErrClosed = errors.New("replica closed")
	// ErrBroadcast: a local write was committed but its broadcast failed.
	// The write is not lost: anti-entropy delivers it to peers later.
	ErrBroadcast = errors.New("broadcast failed")
)
