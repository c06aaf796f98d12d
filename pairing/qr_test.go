package pairing

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/makiuchi-d/gozxing"
	zxqr "github.com/makiuchi-d/gozxing/qrcode"
)

// typicalCode is the code of a fixed invite with typicalAddrs, so that
// the QR tests see the same image in every run.
func typicalCode(t testing.TB) string {
	t.Helper()
	i := Invite{Version: InviteVersion, UserTag: [UserTagSize]byte{1, 2, 3, 4}, Device: pub(key(2)), Addrs: typicalAddrs[:MaxAddrs], Expires: t0.Add(10 * time.Minute)}
	copy(i.Secret[:], "fixed secret 16B")
	if err := i.Verify(t0); err != nil {
		t.Fatal(err)
	}
	return i.Encode()
}

func pngOf(t testing.TB, code string, scale int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := WritePNG(&b, code, scale); err != nil {
		t.Fatalf("WritePNG: %v", err)
	}
	return b.Bytes()
}

func decodeBytes(t testing.TB, data []byte) string {
	t.Helper()
	got, err := DecodeImage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("DecodeImage: %v", err)
	}
	return got
}

// TestQRVersion measures the QR code of a typical invite, and checks that
// its data is in alphanumeric mode.
func TestQRVersion(t *testing.T) {
	code := typicalCode(t)
	q, err := newQR(code)
	if err != nil {
		t.Fatal(err)
	}
	modules := len(q.Bitmap())
	t.Logf("typical invite (3 IPv4): %d characters, QR version %d (%d×%d modules)", len(code), q.VersionNumber, modules, modules)
	if len(code) != 133 || q.VersionNumber != 5 || modules != 37 {
		t.Errorf("%d characters, version %d, %d modules; the package comment says 133, version 5, 37 modules", len(code), q.VersionNumber, modules)
	}
	one := Invite{Version: InviteVersion, Device: pub(key(2)), Addrs: typicalAddrs[:1], Expires: t0}
	if q1, err := newQR(one.Encode()); err != nil || len(one.Encode()) != 114 || q1.VersionNumber != 4 {
		t.Errorf("one IPv4 address: %d characters, version %d (%v); the package comment says 114, version 4", len(one.Encode()), q1.VersionNumber, err)
	}
	// The first four bits of the data stream give the mode: 0010 is
	// alphanumeric (0100 would be 8-bit bytes).
	img, err := png.Decode(bytes.NewReader(pngOf(t, code, 4)))
	if err != nil {
		t.Fatal(err)
	}
	bmp, _ := gozxing.NewBinaryBitmapFromImage(img)
	res, err := zxqr.NewQRCodeReader().Decode(bmp, map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_PURE_BARCODE: true})
	if err != nil {
		t.Fatal(err)
	}
	if mode := res.GetRawBytes()[0] >> 4; mode != 0b0010 {
		t.Errorf("data mode %04b, want 0010 (alphanumeric)", mode)
	}
	if lvl := res.GetResultMetadata()[gozxing.ResultMetadataType_ERROR_CORRECTION_LEVEL]; lvl != "L" {
		t.Errorf("error correction level %v, want L (the most robust that version 5 allows for it)", lvl)
	}
}

func TestPNGRoundTrip(t *testing.T) {
	code := typicalCode(t)
	for _, scale := range []int{2, 3, 8} {
		data := pngOf(t, code, scale)
		if got := decodeBytes(t, data); got != code {
			t.Errorf("scale %d: decoded %q, want the code", scale, got)
		}
		cfg, err := png.DecodeConfig(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if want := (37 + 8) * scale; cfg.Width != want || cfg.Height != want {
			t.Errorf("scale %d: %d×%d pixels, want %d", scale, cfg.Width, cfg.Height, want)
		}
	}
	if err := WritePNG(&bytes.Buffer{}, code, 0); err == nil {
		t.Error("scale 0 accepted")
	}
	if err := WritePNG(&bytes.Buffer{}, strings.ToLower(code), 4); err == nil {
		t.Error("lower-case text accepted: it would need byte mode")
	}
}

// TestPNGDetectorMisses decodes PNGs on which gozxing's finder pattern
// detector alone fails (about one invite in a hundred, found by search):
// DecodeImage must make up for it. A few random invites follow.
func TestPNGDetectorMisses(t *testing.T) {
	var codes []string
	for _, n := range []int{5, 54} {
		u := pub(key(1))
		i := Invite{Version: InviteVersion1, User: u, UserTag: [UserTagSize]byte(u[:UserTagSize]), Device: pub(key(2)), Addrs: typicalAddrs, Expires: t0.Add(10 * time.Minute)}
		copy(i.Secret[:], fmt.Sprintf("secret number %02d", n))
		i.sign(key(2))
		codes = append(codes, i.Encode())
	}
	for range 3 {
		i, err := NewInvite(pub(key(1)), key(2), typicalAddrs, time.Hour, t0)
		if err != nil {
			t.Fatal(err)
		}
		codes = append(codes, i.Encode())
	}
	for k, code := range codes {
		for _, scale := range []int{4, 8} {
			data := pngOf(t, code, scale)
			if k < 2 {
				img, _ := png.Decode(bytes.NewReader(data))
				bmp, _ := gozxing.NewBinaryBitmapFromImage(img)
				hints := map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_TRY_HARDER: true}
				if _, err := zxqr.NewQRCodeReader().Decode(bmp, hints); err == nil {
					t.Logf("code %d, scale %d: gozxing's detector no longer misses it", k, scale)
				}
			}
			if got := decodeBytes(t, data); got != code {
				t.Fatalf("code %d, scale %d: decoded %q", k, scale, got)
			}
		}
	}
}

func TestJPEGRoundTrip(t *testing.T) {
	code := typicalCode(t)
	img, err := png.Decode(bytes.NewReader(pngOf(t, code, 6)))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []int{90, 50} {
		var b bytes.Buffer
		if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: q}); err != nil {
			t.Fatal(err)
		}
		if got := decodeBytes(t, b.Bytes()); got != code {
			t.Errorf("JPEG quality %d: decoded %q", q, got)
		}
	}
}

// photo imitates a picture of a screen: the code turned by angle degrees,
// scaled to a non-integral module size, off centre on a grey background
// with uneven light, then saved as JPEG.
func photo(t testing.TB, src image.Image, angle, scale float64) []byte {
	t.Helper()
	const w, h = 900, 700
	dst := image.NewGray(image.Rect(0, 0, w, h))
	sb := src.Bounds()
	cx, cy := float64(sb.Dx())/2, float64(sb.Dy())/2
	sin, cos := math.Sincos(angle * math.Pi / 180)
	for y := range h {
		for x := range w {
			// Light falls off from the top left: 200 to 140.
			shade := 200 - 60*float64(x+y)/float64(w+h)
			// Map the destination pixel back into the source image.
			dx, dy := (float64(x)-w*0.55)/scale, (float64(y)-h*0.45)/scale
			sx, sy := cos*dx+sin*dy+cx, -sin*dx+cos*dy+cy
			v := shade
			if sx >= 0 && sy >= 0 && sx < float64(sb.Dx()) && sy < float64(sb.Dy()) {
				r, _, _, _ := src.At(sb.Min.X+int(sx), sb.Min.Y+int(sy)).RGBA()
				if r < 0x8000 {
					v = shade * 0.2 // a dark module
				} else {
					v = shade * 1.2
				}
			}
			dst.SetGray(x, y, color.Gray{Y: uint8(math.Min(v, 255))})
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, dst, &jpeg.Options{Quality: 75}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestDecodePhoto(t *testing.T) {
	code := typicalCode(t)
	img, err := png.Decode(bytes.NewReader(pngOf(t, code, 1)))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ angle, scale float64 }{{0, 5.5}, {12, 6.3}, {-30, 7}, {90, 5}, {180, 4.6}} {
		if got := decodeBytes(t, photo(t, img, tc.angle, tc.scale)); got != code {
			t.Errorf("photo turned %v° at %v px/module: decoded %q", tc.angle, tc.scale, got)
		}
	}
}

// screenshot draws the text of QRTerminal as a terminal would, each
// character a cell of w×2h pixels, its upper and lower half lit as the
// glyph says, in the black on white that its escapes ask for; bg is the
// terminal theme's background, around the code.
func screenshot(t testing.TB, text string, w, h int, bg uint8) []byte {
	t.Helper()
	const fg, cell = 0, 255
	if !strings.HasPrefix(text, ansiQR) {
		t.Fatalf("the terminal rendering does not start with its colours: %q", text[:10])
	}
	text = strings.NewReplacer(ansiQR, "", ansiReset, "").Replace(text)
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	cols := len([]rune(lines[0]))
	img := image.NewGray(image.Rect(0, 0, (cols+4)*w, (len(lines)+4)*2*h))
	for k := range img.Pix {
		img.Pix[k] = bg
	}
	for row, line := range lines {
		for col, r := range []rune(line) {
			top := r == '█' || r == '▀'
			bottom := r == '█' || r == '▄'
			if !top && !bottom && r != ' ' {
				t.Fatalf("unexpected rune %q in the terminal rendering", r)
			}
			for dy := range 2 * h {
				lit := (dy < h && top) || (dy >= h && bottom)
				for dx := range w {
					y := uint8(cell)
					if lit {
						y = fg
					}
					img.SetGray((col+2)*w+dx, (row+2)*2*h+dy, color.Gray{Y: y})
				}
			}
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestQRTerminal(t *testing.T) {
	code := typicalCode(t)
	text, err := QRTerminal(code)
	if err != nil {
		t.Fatal(err)
	}
	plain := strings.NewReplacer(ansiQR, "", ansiReset, "").Replace(text)
	lines := strings.Split(strings.TrimSuffix(plain, "\n"), "\n")
	// Three IPv4 addresses: version 5, 37 modules and a quiet zone of 2.
	if want := (37 + 4 + 1) / 2; len(lines) != want {
		t.Errorf("%d lines, want %d (41 rows of modules, two per line)", len(lines), want)
	}
	for k, l := range lines {
		if n := len([]rune(l)); n != 41 {
			t.Fatalf("line %d is %d characters wide, want 41", k, n)
		}
	}
	if n := strings.Count(text, ansiReset+"\n"); n != len(lines) {
		t.Errorf("%d of %d lines end by resetting the colours", n, len(lines))
	}
	// The code is black on white whatever the theme around it.
	if got := decodeBytes(t, screenshot(t, text, 4, 4, 20)); got != code {
		t.Errorf("screenshot of a dark terminal: decoded %q", got)
	}
	if got := decodeBytes(t, screenshot(t, text, 4, 4, 240)); got != code {
		t.Errorf("screenshot of a light terminal: decoded %q", got)
	}
	if _, err := QRTerminal("kith1:lower"); err == nil {
		t.Error("lower-case text accepted")
	}
}

func TestDecodeImageErrors(t *testing.T) {
	blank := image.NewRGBA(image.Rect(0, 0, 300, 200))
	for k := range blank.Pix {
		blank.Pix[k] = uint8(k * 7 % 251) // noise, no code
	}
	var noCode, gifData, tall bytes.Buffer
	if err := png.Encode(&noCode, blank); err != nil {
		t.Fatal(err)
	}
	if err := gif.Encode(&gifData, image.NewPaletted(image.Rect(0, 0, 10, 10), color.Palette{color.White}), nil); err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(&tall, image.NewGray(image.Rect(0, 0, 1, maxImageSide+1))); err != nil {
		t.Fatal(err)
	}
	valid := pngOf(t, typicalCode(t), 2)
	for name, tc := range map[string]struct {
		data []byte
		want error
	}{
		"no code":      {noCode.Bytes(), ErrNoQRCode},
		"text":         {[]byte("KITH1:ABCDEFG"), ErrImageFormat},
		"empty":        {nil, ErrImageFormat},
		"gif":          {gifData.Bytes(), ErrImageFormat},
		"too tall":     {tall.Bytes(), ErrImageFormat},
		"truncated":    {valid[:len(valid)/2], ErrImageFormat},
		"over 32 MiB":  {append(bytes.Clone(valid), make([]byte, maxImageBytes)...), ErrImageFormat},
		"header only":  {valid[:40], ErrImageFormat},
		"JPEG garbage": {[]byte("\xff\xd8\xff\xe0garbage"), ErrImageFormat},
	} {
		_, err := DecodeImage(bytes.NewReader(tc.data))
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
		if Reason(err) != "" {
			t.Errorf("%s: Reason %q, want none: a bad picture is not an invite reason", name, Reason(err))
		}
	}
	_, err := DecodeImage(bytes.NewReader(noCode.Bytes()))
	if err == nil || !strings.HasPrefix(err.Error(), "pairing: no QR code found in the image") {
		t.Errorf("no code: message %q", err)
	}
}

// TestZbarimgReadsOurPNG checks our PNG against a decoder nobody on the
// project wrote.
func TestZbarimgReadsOurPNG(t *testing.T) {
	zbar, err := exec.LookPath("zbarimg")
	if err != nil {
		t.Skip("zbarimg not on PATH (Debian: zbar-tools); .ci/run installs it")
	}
	code := typicalCode(t)
	file := filepath.Join(t.TempDir(), "invite.png")
	if err := os.WriteFile(file, pngOf(t, code, 4), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(zbar, "--quiet", "--raw", file).Output()
	if err != nil {
		t.Fatalf("zbarimg: %v", err)
	}
	if got := strings.TrimSpace(string(out)); got != code {
		t.Errorf("zbarimg read %q, want the code", got)
	}
	if _, err := ParseInvite(strings.TrimSpace(string(out)), t0); err != nil {
		t.Errorf("zbarimg's text does not parse: %v", err)
	}
}

// TestDecodeQrencodePNG reads a QR code made by a standard encoder.
func TestDecodeQrencodePNG(t *testing.T) {
	qrencode, err := exec.LookPath("qrencode")
	if err != nil {
		t.Skip("qrencode not on PATH (Debian: qrencode); .ci/run installs it")
	}
	code := typicalCode(t)
	for _, args := range [][]string{{}, {"-l", "L", "-s", "3"}, {"-l", "H", "-s", "5"}} {
		file := filepath.Join(t.TempDir(), "qrencode.png")
		cmd := exec.Command(qrencode, append(args, "-o", file, code)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("qrencode %v: %v: %s", args, err, out)
		}
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if got := decodeBytes(t, data); got != code {
			t.Errorf("qrencode %v: decoded %q", args, got)
		}
	}
}
