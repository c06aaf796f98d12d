package pairing

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // DecodeImage reads JPEG photos
	"image/png"    // PNG screenshots, and WritePNG
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

// qrLevels are the error correction levels a QR code made here may use,
// the most robust first: H restores about 30% of damaged modules, Q 25%,
// M 15%, L 7%.
var qrLevels = []qrcode.RecoveryLevel{qrcode.Highest, qrcode.High, qrcode.Medium, qrcode.Low}

// Quiet zones, in modules: the standard's four around a PNG, two around a
// terminal code, whose explicit white background is the quiet zone a
// scanner needs and which must fit in 24 lines.
const (
	pngQuiet      = 4
	terminalQuiet = 2
)

// newQR encodes code as a QR code of the smallest version that holds it,
// at the most robust error correction level that this version allows.
// Upper-case letters, digits and " $%*+-./:" make up the alphanumeric set,
// which packs 11 bits per two characters instead of 16; go-qrcode picks
// that mode for such text by itself.
//
// A version 2 invite with one IPv4 address is 114 characters: version 4
// (33×33 modules) at level L; with two or three, version 5 (37×37).
func newQR(code string) (*qrcode.QRCode, error) {
	if code == "" {
		return nil, fmt.Errorf("pairing: making a QR code: the text is empty")
	}
	for _, r := range code {
		if !strings.ContainsRune("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:", r) {
			return nil, fmt.Errorf("pairing: making a QR code: the text has characters outside the QR alphanumeric set: pass an invite code from Encode")
		}
	}
	var best *qrcode.QRCode
	var last error
	for _, lvl := range qrLevels {
		q, err := qrcode.New(code, lvl)
		if err != nil {
			last = err
			continue
		}
		if best == nil || q.VersionNumber < best.VersionNumber {
			best = q
		}
	}
	if best == nil {
		return nil, fmt.Errorf("pairing: making a QR code: %w", last)
	}
	best.DisableBorder = true
	return best, nil
}

// modules returns q's modules, true for dark, inside a quiet zone of quiet
// light modules.
func modules(q *qrcode.QRCode, quiet int) [][]bool {
	core := q.Bitmap() // without a border: DisableBorder is set
	n := len(core) + 2*quiet
	out := make([][]bool, n)
	for y := range out {
		out[y] = make([]bool, n)
		if y >= quiet && y < n-quiet {
			copy(out[y][quiet:], core[y-quiet])
		}
	}
	return out
}

// ANSI escapes of QRTerminal: 256-colour black on white, chosen from the
// colour cube (16 and 231), which terminal themes leave alone, rather than
// the eight basic colours, which themes redefine.
const (
	ansiQR    = "\x1b[38;5;16;48;5;231m"
	ansiReset = "\x1b[0m"
)

// QRTerminal renders code as a QR code for a terminal: two rows of modules
// per line of text with the half blocks ▀ ▄ █ and spaces, so that modules
// are square in the usual 1:2 character cell, inside a quiet zone of two
// modules.
//
// It draws in explicit colours, dark modules black on a white background
// (ANSI 256-colour escapes, reset at the end of every line), so that the
// code reads the same on dark and light terminal themes. A version 4 code
// takes 37 columns and 19 lines; version 5, 41 and 21.
func QRTerminal(code string) (string, error) {
	q, err := newQR(code)
	if err != nil {
		return "", err
	}
	bits := modules(q, terminalQuiet)
	dark := func(y, x int) bool { return y < len(bits) && bits[y][x] }
	var b strings.Builder
	for y := 0; y < len(bits); y += 2 {
		b.WriteString(ansiQR)
		for x := range bits[y] {
			switch top, bottom := dark(y, x), dark(y+1, x); {
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
		b.WriteString(ansiReset)
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
	bits := modules(q, pngQuiet)
	n := len(bits) * scale
	img := image.NewPaletted(image.Rect(0, 0, n, n), color.Palette{color.White, color.Black})
	for y, row := range bits {
		for x, d := range row {
			if !d {
				continue
			}
			for dy := range scale {
				off := (y*scale+dy)*img.Stride + x*scale
				for dx := range scale {
					img.Pix[off+dx] = 1
				}
			}
		}
	}
	if err := png.Encode(w, img); err != nil {
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
	if errors.Is(err, image.ErrFormat) {
		return "", fmt.Errorf("%w: it is %s, not a PNG or JPEG image", ErrImageFormat, describeImage(data))
	}
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

// describeImage names what data looks like, for an image this package does
// not read.
func describeImage(data []byte) string {
	switch {
	case bytes.HasPrefix(data, []byte("GIF8")):
		return "a GIF image"
	case bytes.HasPrefix(data, []byte("RIFF")) && len(data) >= 12 && string(data[8:12]) == "WEBP":
		return "a WebP image"
	case len(data) >= 12 && string(data[4:8]) == "ftyp":
		return "a HEIC or other ISO media image"
	case bytes.HasPrefix(data, []byte("BM")):
		return "a BMP image"
	default:
		return "in a format this does not read"
	}
}
