package pairing

import (
	"bytes"
	"fmt"
	"image"
	_ "image/jpeg" // DecodeImage reads JPEG photos
	_ "image/png"  // and PNG screenshots
	"io"
	"strings"

	"github.com/makiuchi-d/gozxing"
	zxqr "github.com/makiuchi-d/gozxing/qrcode"
	qrcode "github.com/skip2/go-qrcode"
)

// Limits on what DecodeImage reads.
const (
	maxImageBytes  = 32 << 20 // a large phone photo is under 20 MiB
	maxImagePixels = 50 << 20 // 50 megapixels
	maxImageSide   = 1 << 14
	maxPNGScale    = 64
)

// qrLevel is the error correction level of every QR code made here: M
// restores about 15% of damaged modules, the usual choice for screens and
// photos.
const qrLevel = qrcode.Medium

// newQR encodes code as a QR code. Upper-case letters, digits and " $%*+-./:"
// make up the alphanumeric set, which packs 11 bits per two characters
// instead of 16; go-qrcode picks that mode for such text by itself.
func newQR(code string) (*qrcode.QRCode, error) {
	if code == "" {
		return nil, fmt.Errorf("pairing: making a QR code: the text is empty")
	}
	for _, r := range code {
		if !strings.ContainsRune("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:", r) {
			return nil, fmt.Errorf("pairing: making a QR code: the text has characters outside the QR alphanumeric set: pass an invite code from Encode")
		}
	}
	q, err := qrcode.New(code, qrLevel)
	if err != nil {
		return nil, fmt.Errorf("pairing: making a QR code: %w", err)
	}
	return q, nil
}

// QRTerminal renders code as a QR code for a terminal, two rows of modules
// per line of text with the half blocks ▀ ▄ █ and spaces, inside the
// standard quiet zone of four modules.
//
// It assumes light text on a dark background, as qrencode's UTF8 output
// does: a light module is drawn and a dark one left blank, so that the code
// appears dark on light, as scanners expect. Phone scanners also read the
// inverse, should the terminal be light.
func QRTerminal(code string) (string, error) {
	q, err := newQR(code)
	if err != nil {
		return "", err
	}
	bits := q.Bitmap() // true is a dark module; the quiet zone is included
	light := func(y, x int) bool { return y < len(bits) && !bits[y][x] }
	var b strings.Builder
	for y := 0; y < len(bits); y += 2 {
		for x := range bits[y] {
			switch top, bottom := light(y, x), light(y+1, x); {
			case top && bottom:
				b.WriteRune('█')
			case top:
				b.WriteRune('▀')
			case bottom:
				b.WriteRune('▄')
			default:
				b.WriteByte(' ')
			}
		}
		b.WriteByte('\n')
	}
	return b.String(), nil
}

// WritePNG writes code as a black-on-white QR code in PNG format to w, scale
// pixels per module (1 to 64; 8 makes a typical invite about 600 pixels
// wide), with a quiet zone of four modules.
func WritePNG(w io.Writer, code string, scale int) error {
	if scale < 1 || scale > maxPNGScale {
		return fmt.Errorf("pairing: writing a QR code: scale %d is outside 1 to %d pixels per module", scale, maxPNGScale)
	}
	q, err := newQR(code)
	if err != nil {
		return err
	}
	if err := q.Write(-scale, w); err != nil {
		return fmt.Errorf("pairing: writing a QR code: %w", err)
	}
	return nil
}

// DecodeImage reads a PNG or JPEG image, such as a screenshot or a photo of
// a screen, and returns the text of the QR code in it. Its errors wrap
// ErrImageFormat (not a PNG or JPEG, or too large) or ErrNoQRCode.
func DecodeImage(r io.Reader) (string, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxImageBytes+1))
	if err != nil {
		return "", fmt.Errorf("pairing: reading the image: %w", err)
	}
	if len(data) > maxImageBytes {
		return "", fmt.Errorf("%w: it is larger than %d MiB: crop or shrink it", ErrImageFormat, maxImageBytes>>20)
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrImageFormat, err)
	}
	if format != "png" && format != "jpeg" {
		return "", fmt.Errorf("%w: it is a %s image: save it as PNG or JPEG", ErrImageFormat, format)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width > maxImageSide || cfg.Height > maxImageSide ||
		cfg.Width*cfg.Height > maxImagePixels {
		return "", fmt.Errorf("%w: it is %d×%d pixels, more than this reads: crop or shrink it", ErrImageFormat, cfg.Width, cfg.Height)
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrImageFormat, err)
	}
	return decodeQR(img)
}

// decodeQR finds a QR code in img. gozxing's finder pattern detector misses
// a few percent of perfectly clean codes at some module sizes, and photos
// vary, so it tries, in turn: the binarizer that suits photos with uneven
// light; the direct reading of an upright, clean code (a screenshot or our
// own PNG); the image at half size; the binarizer for small, evenly lit
// images; and the inverted image (a light-on-dark terminal screenshot).
func decodeQR(img image.Image) (text string, err error) {
	// gozxing is a port from Java that may index out of range on images it
	// does not expect; what it cannot read is "no QR code", not a crash.
	defer func() {
		if p := recover(); p != nil {
			text, err = "", fmt.Errorf("%w: the QR decoder failed on this image", ErrNoQRCode)
		}
	}()
	src := gozxing.NewLuminanceSourceFromImage(img)
	inv := src.Invert()
	hybrid, global := gozxing.NewHybridBinarizer, gozxing.NewGlobalHistgramBinarizer
	attempts := []struct {
		bin  gozxing.Binarizer
		pure bool
	}{
		{hybrid(src), false},
		{hybrid(src), true},
		{hybrid(halve(src)), false},
		{global(src), false},
		{hybrid(inv), false},
		{hybrid(inv), true},
		{hybrid(halve(inv)), false},
	}
	reader := zxqr.NewQRCodeReader()
	var last error
	for _, a := range attempts {
		hints := map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_TRY_HARDER: true}
		if a.pure {
			hints = map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_PURE_BARCODE: true}
		}
		bmp, err := gozxing.NewBinaryBitmap(a.bin)
		if err != nil {
			last = err
			continue
		}
		res, err := reader.Decode(bmp, hints)
		if err != nil {
			last = err
			continue
		}
		return res.GetText(), nil
	}
	if _, ok := last.(gozxing.NotFoundException); ok || last == nil {
		return "", fmt.Errorf("%w: take a sharper, straighter picture with the whole code in it", ErrNoQRCode)
	}
	return "", fmt.Errorf("%w: a code was seen but could not be read (%v): take a sharper, straighter picture", ErrNoQRCode, last)
}

// halve returns src at half its width and height, each pixel the mean of
// four.
func halve(src gozxing.LuminanceSource) gozxing.LuminanceSource {
	w, h := src.GetWidth()/2, src.GetHeight()/2
	if w < 21 || h < 21 { // smaller than a version 1 code
		return src
	}
	m, stride := src.GetMatrix(), src.GetWidth()
	dst := image.NewGray(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			i := 2*y*stride + 2*x
			sum := int(m[i]) + int(m[i+1]) + int(m[i+stride]) + int(m[i+stride+1])
			dst.Pix[y*dst.Stride+x] = uint8(sum / 4)
		}
	}
	return gozxing.NewLuminanceSourceFromImage(dst)
}
