package agent

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"

	"github.com/kith-project/kith/archive"
	"github.com/kith-project/kith/internal/transport"
)

func arSamples() []arFrame {
	var n archive.BlobName
	n[0] = 7
	var r archive.Root
	r[1] = 9
	return []arFrame{
		{Type: arPut, Name: n, Size: 100},
		{Type: arGet, Name: n},
		{Type: arHas, Name: n},
		{Type: arRoot},
		{Type: arBuckets, Bits: 4},
		{Type: arNames, Bits: 2, Buckets: []int{0, 3}},
		{Type: arPeel, Size: 5},
		{Type: arOpen, Size: 5},
		{Type: arPlace},
		{Type: arOK},
		{Type: arData, Size: 1},
		{Type: arRefused, Code: arCodeQuota, Reason: "archive quota full"},
		{Type: arRootIs, Root: r},
		{Type: arRoots, Bits: 1, Roots: []archive.Root{r, r}},
		{Type: arNameIs, Names: []archive.BlobName{n}},
		{Type: arHasIs, Has: true},
	}
}

// TestArFrameRoundTrip: every frame decodes to what was encoded.
func TestArFrameRoundTrip(t *testing.T) {
	for _, f := range arSamples() {
		b, err := encodeArFrame(f)
		if err != nil {
			t.Fatalf("%#02x: %v", f.Type, err)
		}
		g, err := decodeArFrame(b)
		if err != nil {
			t.Fatalf("%#02x: %v", f.Type, err)
		}
		if !reflect.DeepEqual(f, g) {
			t.Fatalf("%#02x: got %+v, want %+v", f.Type, g, f)
		}
	}
}

// TestArFrameRefused: malformed frames are refused with errArFrame.
func TestArFrameRefused(t *testing.T) {
	huge := binary.BigEndian.AppendUint64([]byte{arPeel}, archive.MaxBlobSize+1)
	for name, b := range map[string][]byte{
		"empty":          {},
		"unknown":        {0x42},
		"short get":      {arGet, 1, 2},
		"zero payload":   binary.BigEndian.AppendUint64([]byte{arOpen}, 0),
		"huge payload":   huge,
		"bits 0":         {arBuckets, 0},
		"bits 17":        {arBuckets, 17},
		"bucket too big": {arNames, 1, 0, 0, 0, 2},
		"has 2":          {arHasIs, 2},
		"root junk":      {arRoot, 1},
	} {
		if _, err := decodeArFrame(b); !errors.Is(err, errArFrame) {
			t.Errorf("%s: %v, want errArFrame", name, err)
		}
	}
}

// TestReadArFramePayload: a frame's payload is read whole, and a stream
// that ends early is an error.
func TestReadArFramePayload(t *testing.T) {
	var buf bytes.Buffer
	if err := writeArFrame(&buf, arFrame{Type: arData, Size: 3}, []byte("abc")); err != nil {
		t.Fatal(err)
	}
	seen := 0
	f, p, err := readArFrame(bytes.NewReader(buf.Bytes()), func(n int) { seen += n })
	if err != nil || f.Type != arData || string(p) != "abc" || seen != 3 {
		t.Fatalf("got %+v %q %v (progress %d)", f, p, err, seen)
	}
	if _, _, err := readArFrame(bytes.NewReader(buf.Bytes()[:buf.Len()-1]), nil); err == nil {
		t.Fatal("a truncated payload was accepted")
	}
	if err := writeArFrame(&buf, arFrame{Type: arData, Size: 4}, []byte("abc")); err == nil {
		t.Fatal("a payload of the wrong size was written")
	}
}

// FuzzArFrame: the frame decoder takes any bytes without panicking, and
// what it accepts encodes back to a frame that decodes the same.
func FuzzArFrame(f *testing.F) {
	for _, s := range arSamples() {
		b, _ := encodeArFrame(s)
		f.Add(b)
	}
	f.Add([]byte{arNames, 16})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > transport.MaxFrameSize {
			return
		}
		fr, err := decodeArFrame(b)
		if err != nil {
			return
		}
		again, err := encodeArFrame(fr)
		if err != nil {
			t.Fatalf("an accepted frame does not encode: %v", err)
		}
		fr2, err := decodeArFrame(again)
		if err != nil || !reflect.DeepEqual(fr, fr2) {
			t.Fatalf("re-decoded %+v, %v; want %+v", fr2, err, fr)
		}
	})
}

// TestArchivePlaceApply: placement is idempotent, a newer index replaces
// the old one with its holdings, drops remove holders.
func TestArchivePlaceApply(t *testing.T) {
	s := newArchiveState()
	var a, b archive.BlobName
	a[0], b[0] = 1, 2
	var dev1, dev2 [32]byte
	dev1[0], dev2[0] = 1, 2
	id := archive.NewArchiveID()
	cid := "0000000000000000000000000000000000000000000000000000000000000001"
	e := archive.Entry{ID: id, Conversations: []string{cid}, Blobs: []archive.BlobRef{{Name: a, Size: 10}}}
	p := archivePlace{Archive: &e, Index: &indexRef{Name: b, Size: 5, Generation: 1},
		Hold: []holding{{Blob: a, Device: dev1}, {Blob: b, Device: dev1}}}
	if ch, conv := s.apply(p); !ch || len(conv) != 1 {
		t.Fatalf("first apply: %v %v", ch, conv)
	}
	if ch, _ := s.apply(p); ch {
		t.Fatal("the same placement changed the state twice")
	}
	var c archive.BlobName
	c[0] = 3
	s.apply(archivePlace{Index: &indexRef{Name: c, Size: 6, Generation: 2}, Hold: []holding{{Blob: c, Device: dev2}}})
	s.apply(archivePlace{Index: &indexRef{Name: b, Size: 5, Generation: 1}}) // replayed: ignored
	pl := s.placements()
	if len(pl) != 2 || pl[0].Name != a || pl[1].Name != c {
		t.Fatalf("placements %+v", pl)
	}
	s.apply(archivePlace{Drop: []holding{{Blob: a, Device: dev1}}})
	if h := s.holdersOf(a); len(h) != 0 {
		t.Fatalf("holders after a drop: %v", h)
	}
	doc := s.doc()
	s2 := newArchiveState()
	s2.load(doc)
	if !reflect.DeepEqual(s2.doc(), doc) {
		t.Fatalf("a loaded document differs:\n%+v\n%+v", s2.doc(), doc)
	}
}
