package web

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color/palette"
	"image/jpeg"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/kith-project/kith/internal/kithtest"
	"github.com/kith-project/kith/pairing"
)

// chromiumPath finds Debian's chromium, or skips the test.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("chromium is not installed (Debian package chromium): the browser tests need it")
	return ""
}

// person is one user: a device with an agent serving its console.
type person struct {
	name string
	// origin is the console's, known from the first login URL.
	origin string
	dev    *kithtest.Device
	agent  *kithtest.Agent
	id     struct {
		UserID   string `json:"user_id"`
		DeviceID string `json:"device_id"`
		Name     string `json:"name"`
	}
}

func newPerson(t *testing.T, name, host string) *person {
	t.Helper()
	p := &person{name: name, dev: kithtest.NewDevice(t)}
	p.dev.JSON(&p.id, "", "init", "--name", name)
	p.agent = p.dev.Start(kithtest.FreeAddr(t, host), "--heartbeat", "300ms", "--web", "127.0.0.1:0")
	return p
}

// loginURL asks the agent for a one-time login, as "kith web" does.
func (p *person) loginURL(t *testing.T) string {
	t.Helper()
	var res struct {
		URL string `json:"url"`
	}
	p.dev.JSON(&res, "", "web", "--no-open")
	if !strings.HasPrefix(res.URL, "http://127.0.0.1:") || !strings.Contains(res.URL, "/login?token=") {
		t.Fatalf("kith web gave %q", res.URL)
	}
	p.origin = res.URL[:strings.Index(res.URL, "/login")]
	return res.URL
}

// browser is one headless chromium, or one tab of it.
type browser struct {
	ctx context.Context
	t   *testing.T

	mu       sync.Mutex
	problems []string // guarded by mu: uncaught exceptions and CSP refusals
}

// watch collects, until cancel, what the pages of ctx throw without
// catching and what the Content Security Policy refuses; at the end of the
// test any of them fails it (a frame-ancestors refusal, which the refusal
// test provokes on purpose, excepted). It returns the browser.
func watch(t *testing.T, ctx context.Context, cancel func()) *browser {
	b := &browser{ctx: ctx, t: t}
	msgs := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range msgs {
			if err != nil {
				return
			}
			csp := strings.Contains(m.Text, "Content Security Policy") && !strings.Contains(m.Text, "frame-ancestors")
			if m.IsException() || csp {
				b.mu.Lock()
				b.problems = append(b.problems, m.URL+": "+m.Text)
				b.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	t.Cleanup(func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, p := range b.problems {
			t.Errorf("the page's console: %s", p)
		}
	})
	return b
}

// newBrowser starts chromium, with a fake camera that shows the image in
// camera (an MJPEG file; "" for the default test pattern), for the test's
// lifetime.
func newBrowser(t *testing.T, camera string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox,
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.WindowSize(1280, 900),
	)
	if camera != "" {
		opts = append(opts, chromedp.Flag("use-file-for-fake-video-capture", camera))
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		cancelA()
		t.Fatalf("starting chromium: %v", err)
	}
	return watch(t, ctx, func() { cancel(); cancelA() })
}

// tab opens another tab of the same chromium, for the test's lifetime.
// Consoles on different ports are different origins, each with its own
// cookie name and localStorage, so one browser can hold several people's
// sessions, and fewer chromium processes load the machine.
func (b *browser) tab() *browser {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		b.t.Fatalf("opening a tab: %v", err)
	}
	return watch(b.t, ctx, cancel)
}

// do runs steps with a generous deadline: with both CPUs busy a page
// takes its time.
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v\n%s", what, err, b.dump())
	}
}

// dump says where the page is and what it shows, for a failure's message.
func (b *browser) dump() string {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + "\n" + (document.body ? document.body.innerText : "(no body)")`))
	if err != nil {
		return "(the page could not be read: " + err.Error() + ")"
	}
	return "page: " + s
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](b *browser, js string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 90*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluating %s: %v", js, err)
	}
	return v
}

// text returns the text of the element sel, waiting for it to be visible.
func (b *browser) text(sel string) string {
	b.t.Helper()
	b.do("waiting for "+sel, chromedp.WaitVisible(chromedp.CSS(sel)))
	ctx, cancel := context.WithTimeout(b.ctx, 90*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("reading %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

// attr returns an attribute of the element sel.
func (b *browser) attr(sel, name string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 90*time.Second)
	defer cancel()
	r, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(sel), name))
	if err != nil {
		b.t.Fatalf("reading %s of %s: %v", name, sel, err)
	}
	return r.Value
}

// waitText waits until the element sel's text contains want.
func (b *browser) waitText(sel, want string) {
	b.t.Helper()
	js := fmt.Sprintf(`(function(){var e=document.querySelector(%q);return !!e && e.textContent.indexOf(%q)>=0;})()`, sel, want)
	ctx, cancel := context.WithTimeout(b.ctx, 90*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](js, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(0))); err != nil {
		var now string
		if s, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](fmt.Sprintf(`(function(){var e=document.querySelector(%q);return e?e.textContent:"(absent)";})()`, sel))); err == nil {
			now = s
		}
		b.t.Fatalf("waiting for %q in %s: %v; it reads %q\n%s", want, sel, err, now, b.dump())
	}
}

// checkLabels fails the test if a form field of the page has no label, or
// a button no text: what a screen reader and keyboard navigation need.
func (b *browser) checkLabels(page string) {
	b.t.Helper()
	bad := eval[[]string](b, `Array.prototype.concat(
		Array.from(document.querySelectorAll("input, select, textarea")).filter(function (e) {
			return !e.hidden && e.labels.length === 0 && !e.getAttribute("aria-label");
		}).map(function (e) { return e.tagName + "#" + e.id; }),
		Array.from(document.querySelectorAll("button, a[href]")).filter(function (e) {
			return !e.textContent.trim() && !e.getAttribute("aria-label");
		}).map(function (e) { return e.tagName + "#" + e.id; }))`)
	if len(bad) > 0 {
		b.t.Errorf("%s: fields or buttons without a label: %v", page, bad)
	}
}

// waitJS waits until a JavaScript expression is true in the page.
func (b *browser) waitJS(what, js string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 90*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](js, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(0))); err != nil {
		b.t.Fatalf("waiting until %s: %v\n%s", what, err, b.dump())
	}
}

// screenshot writes the page at desktop and phone widths to
// KITH_SCREENSHOTS (or a temporary folder) as NAME-desktop.png and
// NAME-phone.png.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	dir, keep := os.Getenv("KITH_SCREENSHOTS"), true
	if dir == "" {
		dir, keep = b.t.TempDir(), false
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	for _, v := range []struct {
		suffix string
		w, h   int64
		opts   []chromedp.EmulateViewportOption
	}{{"desktop", 1280, 800, nil}, {"phone", 390, 844, []chromedp.EmulateViewportOption{chromedp.EmulateMobile}}} {
		// One layout after the resize: nothing is waited on, a picture is taken.
		b.do("resizing for "+name, chromedp.EmulateViewport(v.w, v.h, v.opts...), chromedp.Sleep(300*time.Millisecond))
		ctx, cancel := context.WithTimeout(b.ctx, 90*time.Second)
		buf, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		cancel()
		if err != nil {
			b.t.Fatalf("screenshot %s: %v", name, err)
		}
		if keep {
			buf = smallPNG(b.t, buf)
		}
		if err := os.WriteFile(filepath.Join(dir, name+"-"+v.suffix+".png"), buf, 0o644); err != nil {
			b.t.Fatal(err)
		}
	}
	b.do("restoring the viewport", chromedp.ResetViewport())
}

// smallPNG re-encodes a screenshot kept for the docs with the 216 web-safe
// colours (the pages use few), at about a quarter of the size.
func smallPNG(t *testing.T, b []byte) []byte {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("decoding a screenshot: %v", err)
	}
	r := img.Bounds()
	pal := image.NewPaletted(r, palette.WebSafe)
	q := func(v uint32) uint8 { return uint8((v>>8 + 25) / 51) } // 0..5
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			cr, cg, cb, _ := img.At(x, y).RGBA()
			pal.SetColorIndex(x, y, 36*q(cr)+6*q(cg)+q(cb))
		}
	}
	var out bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(&out, pal); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// mjpegOf writes a one-frame MJPEG file showing code as a QR code: what
// the fake camera films.
func mjpegOf(t *testing.T, code, file string) {
	t.Helper()
	var pngBuf bytes.Buffer
	if err := pairing.WritePNG(&pngBuf, code, 8); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&pngBuf)
	if err != nil {
		t.Fatal(err)
	}
	var jb bytes.Buffer
	if err := jpeg.Encode(&jb, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, jb.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// agentOrigin is the console's origin, from a login URL.
func (p *person) agentOrigin(t *testing.T) string {
	t.Helper()
	if p.origin == "" {
		p.loginURL(t)
	}
	return p.origin
}
