package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kith-project/kith/internal/kithtest"
	"github.com/kith-project/kith/pairing"
)

// theme is a terminal's default colours.
type theme struct {
	name   string
	fg, bg color.RGBA
}

var (
	darkTheme  = theme{"dark", color.RGBA{0xd0, 0xd0, 0xd0, 0xff}, color.RGBA{0x12, 0x12, 0x12, 0xff}}
	lightTheme = theme{"light", color.RGBA{0x20, 0x20, 0x20, 0xff}, color.RGBA{0xfa, 0xfa, 0xf0, 0xff}}
)

// The QR code of "kith pair show", tested as a camera would see it: the
// command runs in a real 80×24 terminal (tmux), the screen is captured with
// its colours, drawn to an image in a dark and in a light theme, and the
// stock zbarimg decodes it. Nothing may scroll off the top.
func TestPairShowQRInTerminal(t *testing.T) {
	tmux, terr := exec.LookPath("tmux")
	zbar, zerr := exec.LookPath("zbarimg")
	if terr != nil || zerr != nil {
		t.Skip("tmux or zbarimg is not installed (apt-get install tmux zbar-tools); skipping the terminal QR test")
	}
	alice := newPerson(t, "alice", "127.0.0.2")
	var id identity
	alice.JSON(&id, "", "id")

	sock := "kith-qr-" + randomHex(t)
	dir := t.TempDir()
	status := filepath.Join(dir, "status")
	tm := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, tmux, append([]string{"-L", sock, "-f", "/dev/null"}, args...)...)
		cmd.Env = append(filteredEnv(), "TERM=xterm-256color")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return string(out), fmt.Errorf("tmux %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return string(out), nil
	}
	script := fmt.Sprintf("%s --home %s pair show; echo $? > %s; %s -L %s wait-for -S shown; sleep 600",
		shellQuote(kithtest.Binary(t)), shellQuote(alice.Home), shellQuote(status), shellQuote(tmux), sock)
	if _, err := tm("new-session", "-d", "-x", "80", "-y", "24", "-s", "qr", script); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tm("kill-server") })
	if _, err := tm("wait-for", "shown"); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(status); err != nil || strings.TrimSpace(string(b)) != "0" {
		t.Fatalf("kith pair show in the terminal: exit status %q (%v)", b, err)
	}
	screen, err := tm("capture-pane", "-p", "-e", "-t", "qr")
	if err != nil {
		t.Fatal(err)
	}
	if h, err := tm("display-message", "-p", "-t", "qr", "#{history_size}"); err != nil || strings.TrimSpace(h) != "0" {
		t.Fatalf("%s lines scrolled off the 24-line screen (%v):\n%s", strings.TrimSpace(h), err, screen)
	}
	cells := parseScreen(t, screen, 80, 24)
	if top := rowText(cells[0]); !strings.HasPrefix(top, "Let the other person scan this code") {
		t.Fatalf("the screen's top line is %q: the start of the output scrolled off\n%s", top, screen)
	}
	t.Logf("the screen:\n%s", plainScreen(cells))

	for _, th := range []theme{darkTheme, lightTheme} {
		t.Run(th.name, func(t *testing.T) {
			file := filepath.Join(dir, th.name+".png")
			var buf bytes.Buffer
			if err := png.Encode(&buf, renderScreen(cells, th, 8, 16)); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(file, buf.Bytes(), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(zbar, "--quiet", "--raw", file).Output()
			if err != nil {
				t.Fatalf("zbarimg could not read the %s-theme screen (%v); the image is %s", th.name, err, file)
			}
			code := strings.TrimSpace(string(out))
			inv, err := pairing.ParseInvite(code, time.Now())
			if err != nil {
				t.Fatalf("zbarimg read %q, which is no valid invite: %v", code, err)
			}
			if !strings.HasPrefix(code, pairing.CodePrefix) || hex.EncodeToString(inv.Device[:]) != id.DeviceID {
				t.Fatalf("zbarimg read the invite %v, want one of alice's device %s", inv, id.DeviceID)
			}
		})
	}
}

func randomHex(t *testing.T) string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func filteredEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KITH_") && !strings.HasPrefix(kv, "XDG_DATA_HOME=") && !strings.HasPrefix(kv, "TMUX") && !strings.HasPrefix(kv, "TERM=") {
			env = append(env, kv)
		}
	}
	return env
}

// cell is one character cell of a captured screen; a nil colour is the
// theme's default.
type cell struct {
	r      rune
	fg, bg *color.RGBA
}

// parseScreen reads capture-pane -e output: text with SGR escapes, one line
// per row, into rows × cols cells.
func parseScreen(t *testing.T, screen string, cols, rows int) [][]cell {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(screen, "\n"), "\n")
	if len(lines) > rows {
		t.Fatalf("the capture has %d lines, more than the %d of the screen", len(lines), rows)
	}
	out := make([][]cell, rows)
	for y := range out {
		out[y] = make([]cell, cols)
		for x := range out[y] {
			out[y][x].r = ' '
		}
	}
	var fg, bg *color.RGBA
	reverse := false
	for y, line := range lines {
		x := 0
		rs := []rune(line)
		for k := 0; k < len(rs); k++ {
			if rs[k] == 0x1b && k+1 < len(rs) && rs[k+1] == '[' {
				end := k + 2
				for end < len(rs) && (rs[end] < 0x40 || rs[end] > 0x7e) {
					end++
				}
				if end < len(rs) && rs[end] == 'm' {
					fg, bg, reverse = applySGR(string(rs[k+2:end]), fg, bg, reverse)
				}
				k = end
				continue
			}
			if x >= cols {
				t.Fatalf("row %d is wider than %d columns: %q", y, cols, line)
			}
			c := cell{r: rs[k], fg: fg, bg: bg}
			if reverse {
				c.fg, c.bg = bg, fg
				if c.fg == nil {
					c.fg = &color.RGBA{} // marks "the theme's background"
				}
			}
			out[y][x] = c
			x++
		}
	}
	return out
}

// applySGR applies the parameters of one "ESC [ … m".
func applySGR(params string, fg, bg *color.RGBA, reverse bool) (*color.RGBA, *color.RGBA, bool) {
	ps := strings.Split(params, ";")
	if params == "" {
		ps = []string{"0"}
	}
	num := func(k int) int {
		if k >= len(ps) {
			return 0
		}
		n, _ := strconv.Atoi(ps[k])
		return n
	}
	for k := 0; k < len(ps); k++ {
		switch n := num(k); {
		case n == 0:
			fg, bg, reverse = nil, nil, false
		case n == 7:
			reverse = true
		case n == 27:
			reverse = false
		case n >= 30 && n <= 37:
			c := xterm256(n - 30)
			fg = &c
		case n >= 90 && n <= 97:
			c := xterm256(n - 90 + 8)
			fg = &c
		case n >= 40 && n <= 47:
			c := xterm256(n - 40)
			bg = &c
		case n >= 100 && n <= 107:
			c := xterm256(n - 100 + 8)
			bg = &c
		case n == 39:
			fg = nil
		case n == 49:
			bg = nil
		case n == 38 || n == 48:
			var c color.RGBA
			switch num(k + 1) {
			case 5:
				c = xterm256(num(k + 2))
				k += 2
			case 2:
				c = color.RGBA{uint8(num(k + 2)), uint8(num(k + 3)), uint8(num(k + 4)), 0xff}
				k += 4
			}
			if n == 38 {
				fg = &c
			} else {
				bg = &c
			}
		}
	}
	return fg, bg, reverse
}

// xterm256 is xterm's default 256-colour palette.
func xterm256(n int) color.RGBA {
	basic := []color.RGBA{
		{0, 0, 0, 255}, {205, 0, 0, 255}, {0, 205, 0, 255}, {205, 205, 0, 255},
		{0, 0, 238, 255}, {205, 0, 205, 255}, {0, 205, 205, 255}, {229, 229, 229, 255},
		{127, 127, 127, 255}, {255, 0, 0, 255}, {0, 255, 0, 255}, {255, 255, 0, 255},
		{92, 92, 255, 255}, {255, 0, 255, 255}, {0, 255, 255, 255}, {255, 255, 255, 255},
	}
	switch {
	case n < 16:
		return basic[n]
	case n < 232:
		level := []uint8{0, 95, 135, 175, 215, 255}
		n -= 16
		return color.RGBA{level[n/36], level[n/6%6], level[n%6], 255}
	default:
		g := uint8(8 + 10*(n-232))
		return color.RGBA{g, g, g, 255}
	}
}

// renderScreen draws the cells as a terminal in theme th would, each cell
// w×h pixels: half blocks split the cell, other characters are drawn as a
// blot of ink.
func renderScreen(cells [][]cell, th theme, w, h int) image.Image {
	img := image.NewRGBA(image.Rect(0, 0, len(cells[0])*w, len(cells)*h))
	for y, row := range cells {
		for x, c := range row {
			fg, bg := th.fg, th.bg
			if c.fg != nil {
				fg = *c.fg
				if fg == (color.RGBA{}) {
					fg = th.bg
				}
			}
			if c.bg != nil {
				bg = *c.bg
			}
			for dy := range h {
				for dx := range w {
					ink := false
					switch c.r {
					case '█':
						ink = true
					case '▀':
						ink = dy < h/2
					case '▄':
						ink = dy >= h/2
					case ' ':
					default:
						ink = dx >= w/4 && dx < w-w/4 && dy >= h/4 && dy < h-h/4
					}
					col := bg
					if ink {
						col = fg
					}
					img.SetRGBA(x*w+dx, y*h+dy, col)
				}
			}
		}
	}
	return img
}

// rowText is a row's characters, without trailing spaces.
func rowText(row []cell) string {
	var b strings.Builder
	for _, c := range row {
		b.WriteRune(c.r)
	}
	return strings.TrimRight(b.String(), " ")
}

func plainScreen(cells [][]cell) string {
	var b strings.Builder
	for _, row := range cells {
		b.WriteString(rowText(row))
		b.WriteByte('\n')
	}
	return b.String()
}
