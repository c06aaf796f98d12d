package presence

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"github.com/kith-project/kith/seed"
)

// pubOf is key's public half as presence names devices.
func pubOf(key ed25519.PrivateKey) seed.DevicePublic {
	return seed.DevicePublic(key.Public().(ed25519.PublicKey))
}

func testKey(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte(name))
	return ed25519.NewKeyFromSeed(seed[:])
}

// The layouts documented in doc.go, checked field by field with plain
// ed25519 over the documented signed messages.
func TestWireLayout(t *testing.T) {
	a, b := testKey("a"), testKey("b")
	aPub, bPub := pubOf(a), pubOf(b)
	addr4 := netip.MustParseAddrPort("192.0.2.1:7117")
	addr6 := netip.MustParseAddrPort("[2001:db8::1]:443")

	rec := signRecord(a, addr4, 0x0102030405060708)
	if len(rec) != 122 {
		t.Fatalf("record is %d bytes, doc says 122", len(rec))
	}
	wantAddr := append(bytes.Repeat([]byte{0}, 10), 0xff, 0xff, 192, 0, 2, 1, 0x1b, 0xcd)
	if !bytes.Equal(rec[:32], aPub[:]) || !bytes.Equal(rec[32:50], wantAddr) ||
		!bytes.Equal(rec[50:58], []byte{1, 2, 3, 4, 5, 6, 7, 8}) {
		t.Errorf("record fields: %x", rec[:58])
	}
	if !ed25519.Verify(aPub[:], append([]byte("kith/v1/addr\x00"), rec[:58]...), rec[58:]) {
		t.Error("record signature is not over the documented message")
	}
	rec6 := signRecord(a, addr6, 1)
	if r, err := decodeRecord(rec6); err != nil || r.addr != addr6 {
		t.Errorf("IPv6 record: %v %v", r.addr, err)
	}

	hb := encodeBeat(TypeHeartbeat, a, bPub, 0x1112131415161718, -5, [][]byte{rec})
	if len(hb) != 51+122+64 {
		t.Fatalf("heartbeat with one record is %d bytes, doc says %d", len(hb), 51+122+64)
	}
	if hb[0] != 0x10 || hb[1] != 1 || !bytes.Equal(hb[2:34], aPub[:]) ||
		binary.BigEndian.Uint64(hb[34:42]) != 0x1112131415161718 ||
		int64(binary.BigEndian.Uint64(hb[42:50])) != -5 || hb[50] != 1 || !bytes.Equal(hb[51:173], rec) {
		t.Errorf("heartbeat fields: %x", hb[:51])
	}
	msg := append(append([]byte("kith/v1/heartbeat\x00"), bPub[:]...), hb[:173]...)
	if !ed25519.Verify(aPub[:], msg, hb[173:]) {
		t.Error("heartbeat signature is not over the documented message")
	}

	upd := encodeBeat(TypeAddrUpdate, a, bPub, 1, 2, nil)
	if upd[0] != 0x12 || len(upd) != 51+64 ||
		!ed25519.Verify(aPub[:], append(append([]byte("kith/v1/addr-update\x00"), bPub[:]...), upd[:51]...), upd[51:]) {
		t.Error("address update layout or signature")
	}

	pk, err := decodePacket(hb)
	if err != nil {
		t.Fatal(err)
	}
	rep := encodeReply(b, aPub, 77, pk, 100, 200, addr6, nil)
	if len(rep) != 93+64 {
		t.Fatalf("reply is %d bytes, doc says %d", len(rep), 93+64)
	}
	be := binary.BigEndian
	if rep[0] != 0x11 || rep[1] != 1 || !bytes.Equal(rep[2:34], bPub[:]) || be.Uint64(rep[34:42]) != 77 ||
		be.Uint64(rep[42:50]) != 0x1112131415161718 || int64(be.Uint64(rep[50:58])) != -5 ||
		be.Uint64(rep[58:66]) != 100 || be.Uint64(rep[66:74]) != 200 || rep[92] != 0 {
		t.Errorf("reply fields: %x", rep[:93])
	}
	if got, _ := getAddr(rep[74:92]); got != addr6 {
		t.Errorf("reply observed address %v", got)
	}
	if !ed25519.Verify(bPub[:], append(append([]byte("kith/v1/heartbeat-reply\x00"), aPub[:]...), rep[:93]...), rep[93:]) {
		t.Error("reply signature is not over the documented message")
	}
}

func TestDecodeRoundTrip(t *testing.T) {
	a, b := testKey("a"), testKey("b")
	bPub := pubOf(b)
	recs := [][]byte{
		signRecord(a, netip.MustParseAddrPort("198.51.100.7:1"), 9),
		signRecord(b, netip.MustParseAddrPort("[2001:db8::2]:65535"), 10),
		signRecord(testKey("c"), netip.MustParseAddrPort("127.0.0.1:7117"), 11),
	}
	hb := encodeBeat(TypeHeartbeat, a, bPub, 5, 6, recs)
	pk, err := decodePacket(hb)
	if err != nil {
		t.Fatal(err)
	}
	if pk.typ != TypeHeartbeat || pk.seq != 5 || pk.t1 != 6 || len(pk.records) != 3 || !verifyPacket(pk, bPub) {
		t.Errorf("decoded %+v", pk)
	}
	for i, r := range pk.records {
		if !bytes.Equal(r.raw, recs[i]) || !verifyRecord(r) {
			t.Errorf("record %d changed on the way", i)
		}
	}
	if verifyPacket(pk, pubOf(a)) {
		t.Error("a heartbeat for b verified as addressed to a")
	}
	hb[60] ^= 1
	if pk, err := decodePacket(hb); err != nil || verifyPacket(pk, bPub) {
		t.Error("a flipped bit kept the signature valid")
	}
}

func TestDecodeRefuses(t *testing.T) {
	a, b := testKey("a"), testKey("b")
	bPub := pubOf(b)
	rec := signRecord(a, netip.MustParseAddrPort("192.0.2.1:1"), 1)
	hb := encodeBeat(TypeHeartbeat, a, bPub, 1, 1, [][]byte{rec})
	four := encodeBeat(TypeHeartbeat, a, bPub, 1, 1, [][]byte{rec, rec, rec, rec})

	mut := func(f func([]byte) []byte) []byte { return f(append([]byte(nil), hb...)) }
	cases := map[string]struct {
		b    []byte
		want error
	}{
		"empty":        {nil, ErrMalformed},
		"unknown type": {mut(func(b []byte) []byte { b[0] = 0x20; return b }), ErrMalformed},
		"version 2":    {mut(func(b []byte) []byte { b[1] = 2; return b }), ErrWireVersion},
		"truncated":    {hb[:len(hb)-1], ErrMalformed},
		"trailing":     {append(append([]byte(nil), hb...), 0), ErrMalformed},
		"count lies":   {mut(func(b []byte) []byte { b[50] = 2; return b }), ErrMalformed},
		"4 records":    {four, ErrMalformed},
		"port zero":    {mut(func(b []byte) []byte { b[51+48], b[51+49] = 0, 0; return b }), ErrMalformed},
		"no address":   {mut(func(b []byte) []byte { clear(b[51+32 : 51+48]); return b }), ErrMalformed},
	}
	for name, c := range cases {
		if _, err := decodePacket(c.b); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", name, err, c.want)
		}
	}
	if _, err := decodeRecord(rec[:121]); !errors.Is(err, ErrMalformed) {
		t.Errorf("short record: %v", err)
	}
}

func TestReplayWindow(t *testing.T) {
	var w replayWindow
	if w.check(1000) != seqUnsynced {
		t.Error("an empty window is not unsynced")
	}
	w.reset(1000)
	take := func(seq uint64) seqVerdict {
		v := w.check(seq)
		if v == seqFresh {
			w.accept(seq)
		}
		return v
	}
	if take(0) != seqSeen {
		t.Error("seq 0 not refused")
	}
	for _, c := range []struct {
		seq  uint64
		want seqVerdict
	}{
		{1000, seqSeen}, {1002, seqFresh}, {1001, seqFresh}, {1001, seqSeen},
		{1002 - 63, seqFresh}, {1002 - 64, seqUnsynced}, {1100, seqFresh}, {1099, seqFresh}, {1099, seqSeen}, {1002, seqUnsynced},
		{1100 + 200, seqFresh}, {1100, seqUnsynced}, {1300 - 1, seqFresh},
		{1300 + maxSeqJump, seqFresh}, {1300 + 2*maxSeqJump + 1, seqUnsynced}, {1, seqUnsynced},
	} {
		if got := take(c.seq); got != c.want {
			t.Errorf("seq %d: verdict %v, want %v", c.seq, got, c.want)
		}
	}
	// A number a little below the window is the same run, overtaken;
	// one far below or far above is another.
	w.reset(1 << 40)
	if !w.behind(1<<40-100) || w.behind(1<<40-2*maxSeqJump) || w.behind(1<<40+1) {
		t.Error("behind: a number just below the window is not the same run, or one far below is")
	}
	// An echo resyncs the window anywhere, backwards included.
	w.reset(5)
	if take(5) != seqSeen || take(6) != seqFresh || take(1300) != seqFresh {
		t.Error("a reset window does not take its new run")
	}
}

// Seeds shared by the fuzz targets.
func fuzzSeeds() [][]byte {
	a, b := testKey("a"), testKey("b")
	bPub := pubOf(b)
	rec := signRecord(a, netip.MustParseAddrPort("192.0.2.1:7117"), 1)
	hb := encodeBeat(TypeHeartbeat, a, bPub, 1, 2, [][]byte{rec})
	pk, _ := decodePacket(hb)
	return [][]byte{
		hb,
		encodeBeat(TypeAddrUpdate, a, bPub, 3, 4, [][]byte{rec, rec, rec}),
		encodeReply(b, pubOf(a), 5, pk, 6, 7, netip.MustParseAddrPort("[2001:db8::1]:9"), [][]byte{rec}),
		hb[:60],
		{TypeHeartbeat, WireVersion},
		{},
	}
}

func FuzzDecodeHeartbeat(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	me := pubOf(testKey("b"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pk, err := decodePacket(b)
		if err != nil {
			return
		}
		verifyPacket(pk, me)
		// What decodes re-encodes to the same bytes.
		if got := append(append([]byte(nil), pk.signed...), pk.sig...); !bytes.Equal(got, b) {
			t.Fatalf("decode lost bytes")
		}
		if len(b) > maxBeatSize+replyFixed-beatFixed {
			t.Fatalf("accepted %d bytes", len(b))
		}
		for _, r := range pk.records {
			if !validAddr(r.addr) || len(r.raw) != recordSize {
				t.Fatalf("bad record accepted: %+v", r)
			}
		}
	})
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(signRecord(testKey("a"), netip.MustParseAddrPort("192.0.2.1:7117"), 1))
	f.Add(signRecord(testKey("a"), netip.MustParseAddrPort("[2001:db8::1]:1"), 1<<63))
	f.Add(make([]byte, recordSize))
	f.Add([]byte("short"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord(b)
		if err != nil {
			return
		}
		verifyRecord(r)
		if !bytes.Equal(r.raw, b) || !validAddr(r.addr) {
			t.Fatalf("decoded %+v from %x", r, b)
		}
		var again [addrSize]byte
		putAddr(again[:], r.addr)
		if !bytes.Equal(again[:], b[keySize:keySize+addrSize]) {
			t.Fatalf("address %v does not re-encode to %x", r.addr, b[keySize:keySize+addrSize])
		}
	})
}

// The whole handler, STUN included, never panics on any datagram, even
// one from a sender it knows.
func FuzzHandleDatagram(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Add([]byte{0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
	book := oneBook{PeerInfo{Device: pubOf(testKey("a")), Own: true, Addr: netip.MustParseAddrPort("192.0.2.1:7117")}}
	p, err := New(Config{Key: testKey("b"), Book: book, Send: func([]byte, netip.AddrPort) error { return nil }})
	if err != nil {
		f.Fatal(err)
	}
	from := netip.MustParseAddrPort("192.0.2.1:7117")
	f.Fuzz(func(t *testing.T, b []byte) {
		p.HandleDatagram(b, from)
	})
}

// oneBook is a Book that knows one device and keeps no address it is
// given. (The tests outside the package use presencetest.Book.)
type oneBook struct{ pi PeerInfo }

func (b oneBook) Lookup(device seed.DevicePublic) (PeerInfo, bool) {
	return b.pi, device.Equal(b.pi.Device)
}

func (b oneBook) Peers() []PeerInfo { return []PeerInfo{b.pi} }

func (b oneBook) SetAddr(seed.DevicePublic, netip.AddrPort, uint64) error { return nil }
