package archive

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestSegmentsSlice(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 200 {
		var segs [][]byte
		var whole []byte
		for range r.IntN(8) {
			s := make([]byte, r.IntN(20))
			for i := range s {
				s[i] = byte(r.IntN(256))
			}
			segs = append(segs, s)
			whole = append(whole, s...)
		}
		sg := newSegments(segs)
		for range 20 {
			off := r.IntN(len(whole) + 1)
			end := off + r.IntN(len(whole)-off+1)
			if got := bytes.Join(sg.slice(off, end), nil); !bytes.Equal(got, whole[off:end]) {
				t.Fatalf("slice(%d, %d) of %d segments: %x, want %x", off, end, len(segs), got, whole[off:end])
			}
		}
	}
}

// TestPackGolden pins the pack format byte by byte.
func TestPackGolden(t *testing.T) {
	b, err := Pack([]Record{{Conversation: "c1", Data: []byte("hi")}, {Conversation: "é", Data: nil}})
	if err != nil {
		t.Fatal(err)
	}
	want := "6b6974687061636b" + "01" + "00000002" +
		"0002" + "6331" + "0000000000000002" + "6869" +
		"0002" + "c3a9" + "0000000000000000"
	if got := hex.EncodeToString(b); got != want {
		t.Fatalf("pack\n got %s\nwant %s", got, want)
	}
	recs, err := Unpack(b)
	if err != nil || len(recs) != 2 || recs[1].Conversation != "é" || string(recs[0].Data) != "hi" {
		t.Fatalf("unpack: %v %+v", err, recs)
	}
}

// TestPartGolden pins the part header byte by byte.
func TestPartGolden(t *testing.T) {
	id := ArchiveID{0xaa, 0xbb}
	b, err := encodePart(id, 1, 3, []byte("xyz"), CompressNone)
	if err != nil {
		t.Fatal(err)
	}
	want := "6b697468626c6f62" + "01" + "00" + "aabb0000000000000000000000000000" +
		"00000001" + "00000003" + "00000003" + "78797a"
	if got := hex.EncodeToString(b); got != want {
		t.Fatalf("part\n got %s\nwant %s", got, want)
	}
	p, err := ParsePart(b)
	if err != nil || p.Index != 1 || p.Count != 3 || p.Archive != id || string(p.Data) != "xyz" {
		t.Fatalf("parse: %v %+v", err, p)
	}
}

func TestPackRefuses(t *testing.T) {
	for _, recs := range [][]Record{
		{{Conversation: ""}},
		{{Conversation: strings.Repeat("x", MaxIDLen+1)}},
		{{Conversation: "a\x1b[31m"}},
		{{Conversation: "\xff"}},
		{{Conversation: "a"}, {Conversation: "a"}},
	} {
		if _, err := Pack(recs); err == nil {
			t.Errorf("Pack(%q) succeeded", recs[0].Conversation)
		}
	}
	good, _ := Pack([]Record{{Conversation: "a", Data: []byte("b")}})
	for name, b := range map[string][]byte{
		"empty":    nil,
		"magic":    append([]byte("kithpacc"), good[8:]...),
		"version":  append(append([]byte(nil), good[:8]...), append([]byte{2}, good[9:]...)...),
		"short":    good[:len(good)-1],
		"trailing": append(append([]byte(nil), good...), 0),
		"count":    append(append([]byte(nil), good[:9]...), append([]byte{0xff, 0xff, 0xff, 0xff}, good[13:]...)...),
	} {
		if _, err := Unpack(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
}

func TestParsePartRefuses(t *testing.T) {
	id := ArchiveID{1}
	good, err := encodePart(id, 0, 1, bytes.Repeat([]byte("abc"), 10000), CompressFast)
	if err != nil || good[9] != methodDeflate {
		t.Fatal("setup", err)
	}
	set := func(off int, v ...byte) []byte { b := bytes.Clone(good); copy(b[off:], v); return b }
	for name, b := range map[string][]byte{
		"magic":         set(0, 'K'),
		"version":       set(8, 2),
		"method":        set(9, 7),
		"index ≥ count": set(26, 0, 0, 0, 1),
		"count 0":       set(30, 0, 0, 0, 0),
		"raw too large": set(34, 0x01, 0, 0, 1),
		"raw claims a bomb": func() []byte {
			b := set(34, 0x00, 0xff, 0, 0)
			return b[:partHeader+5]
		}(),
		"raw too small": set(34, 0, 0, 0, 1),
		"cut":           good[:len(good)-3],
		"short":         good[:20],
	} {
		if _, err := ParsePart(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
	stored, _ := encodePart(id, 0, 1, []byte("xyz"), CompressNone)
	if _, err := ParsePart(stored[:len(stored)-1]); !errors.Is(err, ErrCorrupt) {
		t.Errorf("stored part cut short: %v", err)
	}
}
