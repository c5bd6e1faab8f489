package pubsub

// replayWindowBits is how far behind the newest sequence number of one
// sender key a message may arrive and still be accepted (once).
const replayWindowBits = 4096

// replayWindow is a sliding anti-replay window (as in IPsec, RFC 4303
// §3.4.3) over the sequence numbers seen under one sender key. It is not
// safe for concurrent use; its owner locks.
type replayWindow struct {
	top  uint64 // highest sequence number accepted
	bits [replayWindowBits / 64]uint64
	used bool
}

// check reports whether seq is new, and records it if so. A sequence number
// seen before, or older than the window, is a replay.
func (w *replayWindow) check(seq uint64) bool {
	if !w.used {
		w.used, w.top = true, seq
		w.set(seq)
		return true
	}
	switch {
	case seq > w.top:
		shift := seq - w.top
		if shift >= replayWindowBits {
			w.bits = [replayWindowBits / 64]uint64{}
		} else {
			for s := w.top + 1; s <= seq; s++ {
				w.clear(s)
			}
		}
		w.top = seq
		w.set(seq)
		return true
	case w.top-seq >= replayWindowBits:
		return false // too old to tell: treat as a replay
	case w.isSet(seq):
		return false
	}
	w.set(seq)
	return true
}

func (w *replayWindow) set(seq uint64)   { w.bits[(seq/64)%uint64(len(w.bits))] |= 1 << (seq % 64) }
func (w *replayWindow) clear(seq uint64) { w.bits[(seq/64)%uint64(len(w.bits))] &^= 1 << (seq % 64) }
func (w *replayWindow) isSet(seq uint64) bool {
	return w.bits[(seq/64)%uint64(len(w.bits))]&(1<<(seq%64)) != 0
}
