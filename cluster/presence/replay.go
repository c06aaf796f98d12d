package presence

// replayWindow refuses sequence numbers seen before. It remembers the
// highest number accepted and which of the 64 numbers below it were
// accepted too, so that a packet overtaken by a later one on the way is
// still taken once (as in IPsec and WireGuard). Anything older than the
// window is refused.
type replayWindow struct {
	top    uint64 // highest accepted; 0 = none yet
	bitmap uint64 // bit i set: top-i accepted
}

const replayWindowSize = 64

// check reports whether seq would be accepted, without recording it.
func (w *replayWindow) check(seq uint64) bool {
	switch {
	case seq == 0:
		return false
	case w.top == 0 || seq > w.top:
		return true
	case w.top-seq >= replayWindowSize:
		return false
	default:
		return w.bitmap&(1<<(w.top-seq)) == 0
	}
}

// accept records seq, which check accepted.
func (w *replayWindow) accept(seq uint64) {
	switch {
	case w.top == 0:
		w.top, w.bitmap = seq, 1
	case seq > w.top:
		shift := seq - w.top
		if shift >= replayWindowSize {
			w.bitmap = 0
		} else {
			w.bitmap <<= shift
		}
		w.bitmap |= 1
		w.top = seq
	default:
		w.bitmap |= 1 << (w.top - seq)
	}
}
