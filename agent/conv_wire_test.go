package agent

import (
	"bytes"
	"encoding/hex"
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/kith-project/kith/internal/store"
	"github.com/kith-project/kith/seed"
)

func TestConvFrameGolden(t *testing.T) {
	var d seed.DevicePublic
	for i := range d {
		d[i] = byte(i)
	}
	for _, tc := range []struct {
		f   convFrame
		hex string
	}{
		{convFrame{Type: convDeliver, Envelope: []byte("env")}, "01656e76"},
		{convFrame{Type: convForward, Device: d, Envelope: []byte{0xee}}, "02" + hex.EncodeToString(d[:]) + "ee"},
		{convFrame{Type: convProbe, Device: d}, "03" + hex.EncodeToString(d[:])},
		{convFrame{Type: convSync, Conv: d}, "04" + hex.EncodeToString(d[:])},
		{convFrame{Type: convAck}, "81"},
		{convFrame{Type: convAck, Envelope: []byte{1, 2}}, "810102"},
		{convFrame{Type: convQueued}, "82"},
		{convFrame{Type: convRefused, Code: convCodeQuota, Reason: "full"}, "830366756c6c"},
		{convFrame{Type: convReach, Reach: reachOnline}, "8402"},
		{convFrame{Type: convEnvelopes, Envelopes: [][]byte{{0xaa}, {0xbb, 0xcc}}}, "8501aa02bbcc"},
	} {
		b := encodeConvFrame(tc.f)
		if got := hex.EncodeToString(b); got != tc.hex {
			t.Errorf("encode %+v = %s, want %s", tc.f, got, tc.hex)
		}
		f, err := decodeConvFrame(b)
		if err != nil {
			t.Errorf("decode %s: %v", tc.hex, err)
			continue
		}
		if f.Envelope != nil && len(f.Envelope) == 0 {
			f.Envelope = nil
		}
		if !reflect.DeepEqual(f, tc.f) {
			t.Errorf("decode %s = %+v, want %+v", tc.hex, f, tc.f)
		}
	}
}

func TestConvFrameRefused(t *testing.T) {
	for _, h := range []string{
		"",                              // empty
		"01",                            // deliver without an envelope
		"02" + "00",                     // forward without a device
		"0300",                          // probe of a short key
		"04" + string(make([]byte, 66)), // sync of a long ID
		"8201",                          // queued with a body
		"83",                            // refused without a code
		"8403",                          // an unknown reach state
		"8505aa",                        // an envelope longer than the frame
		"8500",                          // an empty envelope
		"99",                            // an unknown type
	} {
		b, err := hex.DecodeString(h)
		if err != nil {
			b = []byte(h)
		}
		if _, err := decodeConvFrame(b); !errors.Is(err, errConvFrame) {
			t.Errorf("decode %q: %v, want errConvFrame", h, err)
		}
	}
	long := append([]byte{convRefused, 1}, bytes.Repeat([]byte("x"), maxConvReason+1)...)
	if _, err := decodeConvFrame(long); err == nil {
		t.Error("a reason longer than maxConvReason was taken")
	}
	ctl, err := decodeConvFrame([]byte("\x83\x05\x1b[31mred\n"))
	if err != nil || ctl.Reason != "[31mred" {
		t.Errorf("a reason's control characters: %q, %v", ctl.Reason, err)
	}
}

// FuzzConvFrame: no input panics the decoder, and what it decodes encodes
// back to a frame that decodes the same.
func FuzzConvFrame(f *testing.F) {
	var d seed.DevicePublic
	for _, s := range []convFrame{
		{Type: convDeliver, Envelope: []byte("envelope")},
		{Type: convForward, Device: d, Envelope: []byte("x")},
		{Type: convProbe, Device: d},
		{Type: convSync},
		{Type: convAck, Envelope: []byte("ack")},
		{Type: convQueued},
		{Type: convRefused, Code: convCodeHeld, Reason: "held"},
		{Type: convReach, Reach: reachOffline},
		{Type: convEnvelopes, Envelopes: [][]byte{[]byte("a"), []byte("bc")}},
	} {
		f.Add(encodeConvFrame(s))
	}
	f.Add([]byte{0x85, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := decodeConvFrame(b)
		if err != nil {
			return
		}
		again, err := decodeConvFrame(encodeConvFrame(fr))
		if err != nil {
			t.Fatalf("re-encoded frame refused: %v", err)
		}
		norm := func(f convFrame) convFrame {
			if len(f.Envelope) == 0 {
				f.Envelope = nil
			}
			return f
		}
		if !reflect.DeepEqual(norm(again), norm(fr)) {
			t.Fatalf("round trip: %+v, then %+v", fr, again)
		}
	})
}

func TestForwardQueueQuota(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	q, err := openForwardQueue(st, now)
	if err != nil {
		t.Fatal(err)
	}
	// Small quotas, so that the test writes few envelopes: the count
	// binds first, then (below) the bytes.
	q.perOrigin, q.bytesPerOrigin = 20, 1<<20
	var to, origin, other seed.DevicePublic
	to[0], origin[0], other[0] = 1, 2, 3
	env := func(i int) []byte { return append(bytes.Repeat([]byte{byte(i)}, 8<<10), byte(i>>8)) }
	n := 0
	for ; n < q.perOrigin+10; n++ {
		if err := q.put(to, origin, env(n), now); err != nil {
			if !errors.Is(err, errForwardQuota) {
				t.Fatal(err)
			}
			break
		}
	}
	if n != q.perOrigin {
		t.Fatalf("one origin got %d envelopes in", n)
	}
	// The quota is per origin: another one still gets in, and a copy held
	// already is no error.
	if err := q.put(to, other, env(1<<12), now); err != nil {
		t.Fatalf("another origin: %v", err)
	}
	if err := q.put(to, origin, env(0), now); err != nil {
		t.Fatalf("a duplicate: %v", err)
	}
	items, _, dropped := q.stats()
	if items != n+1 || dropped == 0 {
		t.Fatalf("%d items, %d dropped; want %d items", items, dropped, n+1)
	}
	big := bytes.Repeat([]byte{7}, 1<<20)
	if err := q.put(to, other, big, now); !errors.Is(err, errForwardQuota) {
		t.Fatalf("an envelope past the byte quota: %v", err)
	}
	// Reopened, the queue holds the same; oldest first; expiry drops all.
	q2, err := openForwardQueue(st, now)
	if err != nil {
		t.Fatal(err)
	}
	if got, _, _ := q2.stats(); got != n+1 {
		t.Fatalf("reopened: %d items, want %d", got, n+1)
	}
	ps, err := q2.pending(to, 3, 1<<20)
	if err != nil || len(ps) != 3 || !bytes.Equal(ps[0].Envelope, env(0)) {
		t.Fatalf("pending: %d items, %v", len(ps), err)
	}
	if err := q2.delete([]string{ps[0].key}); err != nil {
		t.Fatal(err)
	}
	if err := q2.expire(now.Add(forwardTTL + time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got, bytes, _ := q2.stats(); got != 0 || bytes != 0 || len(q2.targets()) != 0 {
		t.Fatalf("after expiry: %d items, %d bytes, targets %v", got, bytes, q2.targets())
	}
}
