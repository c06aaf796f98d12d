package presence

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"time"
)

// The quiet-mode schedule (see the package documentation).
const (
	// WindowSlot is the length of one slot; each slot has one window.
	WindowSlot = 60 * time.Second
	// WindowLength is how long a window stays open.
	WindowLength = 5 * time.Second

	ctxQuiet = "kith/v1/quiet"
)

// slotOf returns the number of the slot t falls in (floor division, so
// times before 1970 work too).
func slotOf(t time.Time) int64 {
	s := t.Unix()
	n := int64(WindowSlot / time.Second)
	if s < 0 && s%n != 0 {
		return s/n - 1
	}
	return s / n
}

// windowIn returns the window of slot n for secret.
func windowIn(secret []byte, n int64) (start, end time.Time) {
	m := hmac.New(sha256.New, secret)
	var b [len(ctxQuiet) + 8]byte
	copy(b[:], ctxQuiet)
	binary.BigEndian.PutUint64(b[len(ctxQuiet):], uint64(n))
	m.Write(b[:])
	sum := m.Sum(nil)
	choices := uint64((WindowSlot-WindowLength)/time.Second) + 1 // 56 offsets: 0..55 s
	off := binary.BigEndian.Uint64(sum[:8]) % choices
	start = time.Unix(n*int64(WindowSlot/time.Second)+int64(off), 0)
	return start, start.Add(WindowLength)
}

// WindowOpen reports whether t falls inside one of the quiet-mode windows
// of the user whose window secret is secret. An empty secret has no
// windows.
func WindowOpen(secret []byte, t time.Time) bool {
	if len(secret) == 0 {
		return false
	}
	start, end := windowIn(secret, slotOf(t))
	return !t.Before(start) && t.Before(end)
}

// NextWindow returns the window that is open at t, or else the next one to
// open after t, for the user whose window secret is secret. With an empty
// secret it returns zero times.
func NextWindow(secret []byte, t time.Time) (start, end time.Time) {
	if len(secret) == 0 {
		return time.Time{}, time.Time{}
	}
	n := slotOf(t)
	start, end = windowIn(secret, n)
	if t.Before(end) {
		return start, end
	}
	return windowIn(secret, n+1)
}
