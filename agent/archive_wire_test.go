package agent

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"slices"
	"testing"

	"github.com/kith-project/kith/archive"
	"github.com/kith-project/kith/internal/transport"
	"github.com/kith-project/kith/seed"
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
		{Type: arPeelN, Name: n},
		{Type: arDelete, Owner: seed.UserPublic{3}, Names: []archive.BlobName{n, {8}}},
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
		"delete no name": append([]byte{arDelete}, make([]byte, 32)...),
		"delete short":   append([]byte{arDelete}, make([]byte, 63)...),
		"delete many":    append([]byte{arDelete}, make([]byte, 32*(maxArDelete+2))...),
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
	f.Add(append([]byte{arDelete}, make([]byte, 32*(maxArDelete+1))...))
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

// FuzzArchivePlace: an archive.place body (from the cluster's log, or an
// own device's placement answer) is decoded and applied without panicking,
// and the state stays within its bounds.
func FuzzArchivePlace(f *testing.F) {
	f.Add([]byte(`{"archive":{"ID":"00000000000000000000000000000000","Conversations":["0000000000000000000000000000000000000000000000000000000000000001"],"Blobs":[{"Name":"0100000000000000000000000000000000000000000000000000000000000000","Size":3}]},"hold":[{"blob":"0100000000000000000000000000000000000000000000000000000000000000","device":"0200000000000000000000000000000000000000000000000000000000000000"}]}`))
	f.Add([]byte(`{"index":{"name":"0100000000000000000000000000000000000000000000000000000000000000","size":1,"generation":1}}`))
	f.Add([]byte(`{"drop":[{}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decodePlace(b)
		if err != nil {
			return
		}
		s := newArchiveState()
		s.apply(p)
		s.apply(p)
		d := s.doc()
		if len(d.Archives) > 1 || len(d.Holders) > len(p.Hold) {
			t.Fatalf("one command made %d archives and %d holdings", len(d.Archives), len(d.Holders))
		}
	})
}

// TestArDeleteBounds: a delete carries between 1 and maxArDelete names,
// and the encoder refuses to make one outside that.
func TestArDeleteBounds(t *testing.T) {
	full := arFrame{Type: arDelete, Names: make([]archive.BlobName, maxArDelete)}
	b, err := encodeArFrame(full)
	if err != nil {
		t.Fatal(err)
	}
	if g, err := decodeArFrame(b); err != nil || len(g.Names) != maxArDelete {
		t.Fatalf("a delete of %d names: %d, %v", maxArDelete, len(g.Names), err)
	}
	for _, n := range []int{0, maxArDelete + 1} {
		if _, err := encodeArFrame(arFrame{Type: arDelete, Names: make([]archive.BlobName, n)}); !errors.Is(err, errArFrame) {
			t.Errorf("a delete of %d names encoded: %v", n, err)
		}
	}
}

// TestArchivePrunable: superseded indexes are kept with their holders;
// only those older than the newest two are prunable, never the current
// index, the one before it, or an archive's blob; a replayed older index
// changes nothing; Pruned removes holders, and an old index no device
// holds is forgotten; the list survives the document.
func TestArchivePrunable(t *testing.T) {
	s := newArchiveState()
	var dev, relay seed.DevicePublic
	dev[0], relay[0] = 1, 2
	ixName := func(g int) archive.BlobName { return archive.BlobName{0xee, byte(g)} }
	blob := archive.BlobName{0xaa}
	e := archive.Entry{ID: archive.NewArchiveID(), Blobs: []archive.BlobRef{{Name: blob, Size: 10}}}
	s.apply(archivePlace{Archive: &e, Hold: []holding{{Blob: blob, Device: dev}}})
	index := func(g int) {
		s.apply(archivePlace{Index: &indexRef{Name: ixName(g), Size: 5, Generation: uint64(g)},
			Hold: []holding{{Blob: ixName(g), Device: dev}, {Blob: ixName(g), Device: relay}}})
	}
	names := func() []archive.BlobName {
		var out []archive.BlobName
		for _, o := range s.prunable() {
			out = append(out, o.Name)
		}
		return out
	}
	index(1)
	index(2)
	if p := names(); len(p) != 0 {
		t.Fatalf("with two generations, prunable %v", p)
	}
	index(3)
	index(4)
	p := s.prunable()
	if len(p) != 2 || p[0].Name != ixName(1) || p[1].Name != ixName(2) || !reflect.DeepEqual(p[0].Holders, []seed.DevicePublic{dev, relay}) {
		t.Fatalf("prunable %+v", p)
	}
	// A stale placement of an older index, or of generation 2 again,
	// changes nothing: generation 4 stays current, 3 stays kept.
	if ch, _ := s.apply(archivePlace{Index: &indexRef{Name: ixName(2), Size: 5, Generation: 2}}); ch {
		t.Fatal("a replayed older index changed the state")
	}
	if _, cur := s.entries(); cur == nil || cur.Generation != 4 {
		t.Fatalf("current index %+v", cur)
	}
	if !slices.Equal(names(), []archive.BlobName{ixName(1), ixName(2)}) {
		t.Fatalf("after a replay, prunable %v", names())
	}
	// An index named like an archive's blob is never kept to delete.
	s.apply(archivePlace{Index: &indexRef{Name: blob, Size: 10, Generation: 5}})
	s.apply(archivePlace{Index: &indexRef{Name: ixName(6), Size: 5, Generation: 6}})
	s.apply(archivePlace{Index: &indexRef{Name: ixName(7), Size: 5, Generation: 7}})
	for _, n := range names() {
		if n == blob || n == ixName(6) || n == ixName(7) {
			t.Fatalf("prunable %v includes %x", names(), n[:2])
		}
	}
	if len(s.holdersOf(blob)) != 1 {
		t.Fatal("an index named like an archive's blob took its holders away")
	}
	s.apply(archivePlace{Pruned: []holding{{Blob: ixName(1), Device: dev}, {Blob: ixName(1), Device: relay}, {Blob: ixName(2), Device: relay}}})
	p = s.prunable()
	// Generation 1 has no holder left but stays followed (a copy recorded
	// late still gets deleted); generation 2 keeps its other holder.
	if len(p) < 2 || p[0].Name != ixName(1) || len(p[0].Holders) != 0 || p[1].Name != ixName(2) || !slices.Equal(p[1].Holders, []seed.DevicePublic{dev}) {
		t.Fatalf("after pruning, prunable %+v", p)
	}
	// A copy of generation 1 recorded after it was superseded is followed.
	s.apply(archivePlace{Hold: []holding{{Blob: ixName(1), Size: 5, Device: relay}}})
	if p := s.prunable(); !slices.Equal(p[0].Holders, []seed.DevicePublic{relay}) {
		t.Fatalf("a late copy of a superseded index: prunable %+v", p)
	}
	s2 := newArchiveState()
	s2.load(s.doc())
	if !reflect.DeepEqual(s2.doc(), s.doc()) || !reflect.DeepEqual(s2.prunable(), s.prunable()) {
		t.Fatalf("a loaded document differs:\n%+v\n%+v", s2.doc(), s.doc())
	}
}
