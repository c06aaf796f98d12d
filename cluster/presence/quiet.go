package presence

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"net/netip"
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

// Admit decides whether a packet from from should be read at all; false
// means drop it without answer. It is meant for the transport's
// DropSource, and is cheap. Outside quiet mode it admits everything (the
// datagram handlers drop strangers themselves). In quiet mode it admits
// the known peers' addresses, addresses we sent to in the last
// OnlineIntervals·T (at least 10 s: answers from STUN servers and peers),
// and any address while one of our windows is open.
func (p *Presence) Admit(from netip.AddrPort, quic bool) bool {
	if !p.cfg.Quiet {
		return true
	}
	from = normAddr(from)
	now := p.cfg.Now()
	p.mu.Lock()
	fresh := p.known != nil && now.Sub(p.knownAt) < time.Second && !now.Before(p.knownAt)
	p.mu.Unlock()
	if !fresh {
		known := map[netip.AddrPort]bool{}
		for _, pi := range p.cfg.Book.Peers() {
			if pi.Addr.IsValid() {
				known[normAddr(pi.Addr)] = true
			}
		}
		p.mu.Lock()
		p.known, p.knownAt = known, now
		p.mu.Unlock()
	}
	p.mu.Lock()
	ok := p.known[from]
	if t, sent := p.contacted[from]; sent && now.Sub(t) <= p.contactTTL() {
		ok = true
	}
	p.mu.Unlock()
	return ok || WindowOpen(p.cfg.Window, now)
}
