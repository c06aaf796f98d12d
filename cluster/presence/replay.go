package presence

import (
	crand "crypto/rand"
	"encoding/binary"
)

// replayWindow refuses sequence numbers seen before. It remembers the
// highest number accepted and which of the 64 numbers below it were
// accepted too, so that a packet overtaken by a later one on the way is
// still taken once (as in IPsec and WireGuard).
//
// A number older than the window, or more than maxSeqJump above its top,
// is not refused outright: it is what a sender that restarted sends (its
// counter starts at a random place in every run), and it is also what a
// replay from another run looks like. Such a number is unsynced: its
// packet is believed in nothing until an echo-verified reply resyncs the
// window (see reset).
type replayWindow struct {
	top    uint64 // highest accepted; 0 = none yet (unsynced)
	bitmap uint64 // bit i set: top-i accepted
}

const (
	replayWindowSize = 64
	// maxSeqJump is how far above the window's top a sequence number may
	// be and still count as the same run of its sender. A sender's
	// counter starts at a random place in [2^61, 2^62) in every run, so a
	// run lands within this distance of another with probability about
	// 2^-28.
	maxSeqJump = 1 << 32
)

// seqVerdict is what a replay window says of a sequence number.
type seqVerdict int

const (
	seqFresh    seqVerdict = iota // not seen, in the window or just above it
	seqSeen                       // seen before (or zero): a replay, dropped
	seqUnsynced                   // no window yet, or outside it: needs an echo
)

// check says what the window makes of seq, without recording it.
func (w *replayWindow) check(seq uint64) seqVerdict {
	switch {
	case seq == 0:
		return seqSeen
	case w.top == 0:
		return seqUnsynced
	case seq > w.top:
		if seq-w.top > maxSeqJump {
			return seqUnsynced
		}
		return seqFresh
	case w.top-seq >= replayWindowSize:
		return seqUnsynced
	case w.bitmap&(1<<(w.top-seq)) != 0:
		return seqSeen
	default:
		return seqFresh
	}
}

// accept records seq, which check found fresh.
func (w *replayWindow) accept(seq uint64) {
	switch {
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

// behind reports whether seq is below the window but close enough to be
// the same run: a reply overtaken by many later packets, not a restart.
func (w *replayWindow) behind(seq uint64) bool {
	return w.top != 0 && seq < w.top && w.top-seq <= maxSeqJump
}

// reset restarts the window at seq, the sequence number of a reply that
// echoed a heartbeat of ours: that proves seq is the sender's current
// run, whatever the window held.
func (w *replayWindow) reset(seq uint64) {
	w.top, w.bitmap = seq, 1
}

// randomSeqStart is where a run's sequence numbers start: a random number
// in [2^61, 2^62), so that they depend on no clock and leave room to
// count. It lies above the Unix-nanosecond clock (below 2^61 until 2043),
// where earlier kiths started theirs, so that they take it as newer.
func randomSeqStart() uint64 {
	var b [8]byte
	crand.Read(b[:])
	return 1<<61 | binary.BigEndian.Uint64(b[:])>>3
}
