package trust

import "errors"

var (
	// ErrNotNewer: evidence not newer than the evidence held from its
	// subject (a replay, or a copy that arrived late).
	ErrNotNewer = errors.New("evidence not newer than the one held")
	// ErrNewerHeld: a quarantine announcement encloses evidence older than
	// the evidence held from the accused.
	ErrNewerHeld = errors.New("newer evidence of the accused is held")
	// ErrAnnounced: a quarantine announcement encloses evidence that an
	// announcement already sent or accepted covered.
	ErrAnnounced = errors.New("evidence already announced")
	// ErrUnjustified: the enclosed evidence does not justify the
	// announced quarantine by this book's judgment.
	ErrUnjustified = errors.New("quarantine not justified here")
	// ErrNoEvidence: a stale-evidence announcement about a peer this book
	// holds no evidence of; it cannot judge the staleness of evidence it
	// never saw.
	ErrNoEvidence = errors.New("no evidence of the accused is held")
)
