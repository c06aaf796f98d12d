package presence

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"testing"
	"time"
)

// The schedule as doc.go states it, computed here independently.
func docWindowStart(secret []byte, slot int64) time.Time {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("kith/v1/quiet"))
	m.Write(binary.BigEndian.AppendUint64(nil, uint64(slot)))
	off := binary.BigEndian.Uint64(m.Sum(nil)[:8]) % 56
	return time.Unix(slot*60+int64(off), 0)
}

func TestWindowScheduleAsDocumented(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	base := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	for i := range int64(2000) {
		slot := base.Unix()/60 + i
		want := docWindowStart(secret, slot)
		start, end := NextWindow(secret, time.Unix(slot*60, 0))
		if !start.Equal(want) || end.Sub(start) != WindowLength {
			t.Fatalf("slot %d: window %v..%v, want from %v", slot, start, end, want)
		}
		// Exactly the 5 s from start are open, second by second, and
		// the window never spills into the next slot.
		open := 0
		for s := range int64(60) {
			at := time.Unix(slot*60+s, 0)
			inside := !at.Before(start) && at.Before(end)
			if WindowOpen(secret, at) != inside {
				t.Fatalf("slot %d second %d: open %v, want %v", slot, s, !inside, inside)
			}
			if inside {
				open++
			}
		}
		if open != 5 {
			t.Fatalf("slot %d: %d seconds open", slot, open)
		}
	}
}

func TestNextWindow(t *testing.T) {
	secret := []byte("another secret of thirty-two b..")
	at := time.Date(2026, 11, 2, 12, 0, 0, 0, time.UTC)
	for range 500 {
		start, end := NextWindow(secret, at)
		if !at.Before(end) {
			t.Fatalf("NextWindow(%v) ends at %v", at, end)
		}
		if WindowOpen(secret, at) != !at.Before(start) {
			t.Fatalf("at %v: open %v but next window starts %v", at, WindowOpen(secret, at), start)
		}
		// Nothing opens between at and start.
		for x := at; x.Before(start); x = x.Add(time.Second) {
			if WindowOpen(secret, x) {
				t.Fatalf("open at %v before the next window %v", x, start)
			}
		}
		at = at.Add(7*time.Second + 300*time.Millisecond)
	}
}

func TestWindowSecretsDiffer(t *testing.T) {
	a, b := []byte("secret a"), []byte("secret b")
	same := 0
	for slot := range int64(1000) {
		if docWindowStart(a, slot).Equal(docWindowStart(b, slot)) {
			same++
		}
	}
	// 1/56 of slots agree by chance: about 18.
	if same > 50 {
		t.Errorf("%d of 1000 windows coincide", same)
	}
	if WindowOpen(nil, time.Now()) {
		t.Error("an empty secret has an open window")
	}
	if s, e := NextWindow(nil, time.Now()); !s.IsZero() || !e.IsZero() {
		t.Error("an empty secret has a next window")
	}
	// Before 1970 too.
	old := time.Unix(-61, 0)
	if s, _ := NextWindow(a, old); s.After(time.Unix(0, 0)) || s.Before(time.Unix(-120, 0)) {
		t.Errorf("window for %v starts %v", old, s)
	}
}
