package pairing

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"strings"
	"testing"
	"time"
)

// FuzzParseInvite checks that no text makes ParseInvite panic, and that
// whatever it accepts, and whatever passes its structural decoding, comes
// back unchanged from Encode: the code is canonical.
//
//	go test ./pairing -run '^$' -fuzz FuzzParseInvite -fuzztime 1m
func FuzzParseInvite(f *testing.F) {
	g := goldenInvite()
	f.Add(g.Encode())
	f.Add(strings.ToLower(g.Encode()))
	f.Add(" " + g.Encode()[:100] + "\n" + g.Encode()[100:] + "==")
	f.Add(g.Encode()[:len(g.Encode())-3])
	f.Add(typicalCode(f))
	f.Add(goldenCodeV2)
	f.Add(goldenCodeV2[:len(goldenCodeV2)-7])
	f.Add(CodePrefixV1 + goldenCodeV2[len(CodePrefix):])
	f.Add(CodePrefix)
	f.Add(CodePrefix + "AE")
	f.Add("KITH2:" + g.Encode()[6:])
	f.Add("")
	f.Add("\x00\xff")
	now := time.Unix(1_700_000_000, 0) // before every seed's expiry
	f.Fuzz(func(t *testing.T, code string) {
		if i, err := decodeInvite(code); err == nil {
			if got := i.Encode(); got != normalize(code) {
				t.Fatalf("decoded, but the code is not canonical:\n in  %q\n out %q", normalize(code), got)
			}
			j, err := decodeInvite(i.Encode())
			if err != nil || !j.Equal(i) {
				t.Fatalf("re-encoding does not decode to the same invite: %v", err)
			}
		} else if r := Reason(err); r != "malformed" && r != "tampered" {
			// Decoding checks a version 2 invite's checksum.
			t.Fatalf("decoding error %v is neither malformed nor tampered", err)
		}
		i, err := ParseInvite(code, now)
		if err != nil {
			if Reason(err) == "" {
				t.Fatalf("error without a reason: %v", err)
			}
			return
		}
		j, err := ParseInvite(i.Encode(), now)
		if err != nil {
			t.Fatalf("parsed, re-encoded, does not parse: %v", err)
		}
		if !j.Equal(i) || j.Secret != i.Secret || !j.Expires.Equal(i.Expires) {
			t.Fatal("parse, encode, parse changed the invite")
		}
	})
}

// FuzzDecodeImage checks that no input makes DecodeImage panic or return
// an error outside its two sentinels.
//
//	go test ./pairing -run '^$' -fuzz FuzzDecodeImage -fuzztime 1m
func FuzzDecodeImage(f *testing.F) {
	var small bytes.Buffer
	if err := WritePNG(&small, "KITH1:AE", 1); err != nil {
		f.Fatal(err)
	}
	f.Add(small.Bytes())
	img := image.NewGray(image.Rect(0, 0, 8, 8))
	for k := range img.Pix {
		img.Pix[k] = uint8(k * 37)
	}
	var p, j bytes.Buffer
	_ = png.Encode(&p, img)
	_ = jpeg.Encode(&j, img, nil)
	f.Add(p.Bytes())
	f.Add(j.Bytes())
	pal := image.NewPaletted(image.Rect(0, 0, 4, 4), color.Palette{color.Black, color.White})
	p.Reset()
	_ = png.Encode(&p, pal)
	f.Add(p.Bytes())
	f.Add([]byte("\x89PNG\r\n\x1a\n"))
	f.Add([]byte("\xff\xd8\xff"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64<<10 {
			return
		}
		_, err := DecodeImage(bytes.NewReader(data))
		if err != nil && Reason(err) != "" {
			t.Fatalf("image error with an invite reason: %v", err)
		}
	})
}
