package web

import (
	"bytes"
	"image"
	"image/color"
	"image/draw"
	"image/jpeg"
	"image/png"
	"testing"

	"github.com/kith-project/kith/pairing"
)

// cameraFrame is a 640×480 JPEG with an invite-sized QR code in the middle
// on a grey background: what the page posts from a camera.
func cameraFrame(tb testing.TB) []byte {
	tb.Helper()
	var q bytes.Buffer
	code := "KITH2:AEBAGBAFAYDQQCIKBMGA2DQPCAIREEYUCULBOGAZDINRYHI6D4QCAIBAEAQCAIBAEAQCAIBAEAQCAIBAEAQCAIBAEAQCAIBAEAQ"
	if err := pairing.WritePNG(&q, code, 4); err != nil {
		tb.Fatal(err)
	}
	qr, err := png.Decode(&q)
	if err != nil {
		tb.Fatal(err)
	}
	frame := image.NewRGBA(image.Rect(0, 0, 640, 480))
	draw.Draw(frame, frame.Bounds(), &image.Uniform{color.Gray{0x70}}, image.Point{}, draw.Src)
	off := image.Pt((640-qr.Bounds().Dx())/2, (480-qr.Bounds().Dy())/2)
	draw.Draw(frame, qr.Bounds().Add(off), qr, qr.Bounds().Min, draw.Src)
	var j bytes.Buffer
	if err := jpeg.Encode(&j, frame, &jpeg.Options{Quality: 90}); err != nil {
		tb.Fatal(err)
	}
	return j.Bytes()
}

// BenchmarkDecodeFrame is the agent's work per camera frame that holds a
// code; go test -bench DecodeFrame ./internal/web.
func BenchmarkDecodeFrame(b *testing.B) {
	frame := cameraFrame(b)
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if _, err := pairing.DecodeImage(bytes.NewReader(frame)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeEmptyFrame is a frame with no code in it, what most
// frames are until the camera points at the other screen.
func BenchmarkDecodeEmptyFrame(b *testing.B) {
	frame := image.NewRGBA(image.Rect(0, 0, 640, 480))
	for i := range frame.Pix {
		frame.Pix[i] = byte(i * 7 % 251)
	}
	var j bytes.Buffer
	if err := jpeg.Encode(&j, frame, &jpeg.Options{Quality: 90}); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := pairing.DecodeImage(bytes.NewReader(j.Bytes())); err == nil {
			b.Fatal("a code in noise")
		}
	}
}
