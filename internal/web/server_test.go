package web

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"image"
	pngenc "image/png"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/pairing"
)

// fakeBackend answers the control API with fixed facts and records friend
// actions.
type fakeBackend struct {
	mu      sync.Mutex
	actions []string
}

var errNotHere = errors.New("not in this fake")

func (f *fakeBackend) ID(context.Context) (control.IDResult, error) {
	return control.IDResult{Name: "alice"}, nil
}
func (f *fakeBackend) Status(context.Context) (control.Status, error) {
	return control.Status{Name: "alice", Listen: "127.0.0.1:1"}, nil
}
func (f *fakeBackend) PairShow(context.Context, time.Duration) (control.ShowResult, error) {
	return control.ShowResult{Code: "KITH2:ABC", ExpiresAt: time.Now().Add(time.Minute)}, nil
}
func (f *fakeBackend) PairScan(context.Context, string) (control.ScanResult, error) {
	return control.ScanResult{}, errNotHere
}
func (f *fakeBackend) PairWait(context.Context, string) (control.ScanResult, error) {
	return control.ScanResult{}, errNotHere
}
func (f *fakeBackend) Friends(context.Context) ([]control.FriendView, error) {
	return []control.FriendView{{Name: "bob"}}, nil
}
func (f *fakeBackend) FriendAction(_ context.Context, a control.FriendAction, user string) (control.FriendStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.actions = append(f.actions, string(a)+" "+user)
	return control.FriendStatus{Status: string(a)}, nil
}
func (f *fakeBackend) Relay(context.Context, control.RelayRequest) (control.RelayResult, error) {
	return control.RelayResult{}, errNotHere
}
func (f *fakeBackend) Devices(context.Context) ([]control.OwnDevice, error) {
	return []control.OwnDevice{{Name: "laptop", Self: true}}, nil
}
func (f *fakeBackend) DevicesRevoke(context.Context, control.RevokeRequest) (control.RevokeResult, error) {
	return control.RevokeResult{}, errNotHere
}

func (f *fakeBackend) friendActions() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.actions...)
}

// console serves a console over a fake backend on a loopback port for the
// test's lifetime.
func console(t *testing.T) (*Server, *fakeBackend) {
	t.Helper()
	fb := &fakeBackend{}
	return consoleWith(t, fb), fb
}

// consoleWith serves a console over backend b for the test's lifetime.
func consoleWith(t *testing.T, b control.Backend) *Server {
	t.Helper()
	l, err := Listen("127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{Backend: b}, l)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s
}

var keyMeta = regexp.MustCompile(`name="kith-key" content="([A-Za-z0-9_-]+)"`)

// login spends a fresh login URL with a cookie jar, and returns the
// client and the page key.
func login(t *testing.T, s *Server) (*http.Client, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.Get(s.LoginURL())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login: %s\n%s", resp.Status, body)
	}
	m := keyMeta.FindSubmatch(body)
	if m == nil {
		t.Fatalf("login page has no key:\n%s", body)
	}
	return c, string(m[1])
}

type req struct {
	method, path, body string
	header             map[string]string
	host               string
}

func do(t *testing.T, c *http.Client, s *Server, r req) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	hr, err := http.NewRequest(r.method, s.Origin()+r.path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	if r.host != "" {
		hr.Host = r.host
	}
	resp, err := c.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func TestLoginCookieAndOneTimeToken(t *testing.T) {
	s, _ := console(t)
	u := s.LoginURL()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("first login: %s", resp.Status)
	}
	var sc *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == s.cookieName() {
			sc = ck
		}
	}
	if sc == nil || !sc.HttpOnly || sc.SameSite != http.SameSiteStrictMode || sc.Path != "/" {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, Path=/", sc)
	}
	// The token works once.
	resp, err = http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || len(resp.Cookies()) != 0 {
		t.Fatalf("second use of a login token: %s with %d cookies, want 403 and none", resp.Status, len(resp.Cookies()))
	}
	// A made-up token does nothing.
	resp, err = http.Get(s.Origin() + "/login?token=" + url.QueryEscape(strings.Repeat("A", 43)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("forged token: %s, want 403", resp.Status)
	}
}

func TestLoginTokenExpires(t *testing.T) {
	now := time.Now()
	var mu sync.Mutex
	a := newAuth(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	tok := a.newLogin()
	mu.Lock()
	now = now.Add(LoginTTL)
	mu.Unlock()
	if _, _, ok := a.login(tok); ok {
		t.Fatal("a login token was accepted at its expiry")
	}
	tok = a.newLogin()
	cookie, _, ok := a.login(tok)
	if !ok {
		t.Fatal("a fresh token was refused")
	}
	mu.Lock()
	now = now.Add(SessionTTL)
	mu.Unlock()
	if _, ok := a.session(cookie); ok {
		t.Fatal("a session outlived SessionTTL")
	}
}

func TestRefusals(t *testing.T) {
	s, fb := console(t)
	c, key := login(t, s)
	withKey := map[string]string{"X-Kith-Key": key}
	anon := &http.Client{}

	// A logged-in request with its key gets through: the baseline.
	if resp, body := do(t, c, s, req{method: "GET", path: "/api/status", header: withKey}); resp.StatusCode != 200 || !strings.Contains(body, `"alice"`) {
		t.Fatalf("logged in: %s %s", resp.Status, body)
	}
	for _, tc := range []struct {
		name   string
		client *http.Client
		r      req
		want   int
	}{
		{"no cookie, API", anon, req{method: "GET", path: "/api/status", header: withKey}, 401},
		{"no cookie, page", anon, req{method: "GET", path: "/"}, 401},
		{"no cookie, script", anon, req{method: "GET", path: "/app.js"}, 401},
		{"no cookie, events", anon, req{method: "GET", path: "/api/events"}, 401},
		{"no cookie, change", anon, req{method: "POST", path: "/api/friends/remove", body: `{"user_id":"x"}`, header: withKey}, 401},
		{"no key, read", c, req{method: "GET", path: "/api/friends"}, 403},
		{"wrong key, read", c, req{method: "GET", path: "/api/friends", header: map[string]string{"X-Kith-Key": key + "x"}}, 403},
		{"no key (CSRF), change", c, req{method: "POST", path: "/api/friends/remove", body: `{"user_id":"x"}`}, 403},
		{"wrong key (CSRF), change", c, req{method: "POST", path: "/api/friends/block", body: `{"user_id":"x"}`, header: map[string]string{"X-Kith-Key": "nope"}}, 403},
		{"rebound host name", c, req{method: "GET", path: "/api/status", header: withKey, host: "evil.example:" + s.port}, 421},
		{"wrong port", c, req{method: "GET", path: "/api/status", header: withKey, host: "127.0.0.1:1"}, 421},
		{"login with a rebound host", anon, req{method: "GET", path: "/login?token=x", host: "evil.example:" + s.port}, 421},
		{"cross-site change with the key", c, req{method: "POST", path: "/api/friends/block", body: `{"user_id":"x"}`,
			header: map[string]string{"X-Kith-Key": key, "Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"}}, 403},
		{"same-site other port change", c, req{method: "POST", path: "/api/friends/block", body: `{"user_id":"x"}`,
			header: map[string]string{"X-Kith-Key": key, "Sec-Fetch-Site": "same-site", "Origin": "http://127.0.0.1:9"}}, 403},
		{"foreign Origin change", c, req{method: "POST", path: "/api/friends/block", body: `{"user_id":"x"}`,
			header: map[string]string{"X-Kith-Key": key, "Origin": "http://127.0.0.1:9"}}, 403},
	} {
		resp, body := do(t, tc.client, s, tc.r)
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %s, want %d\n%s", tc.name, resp.Status, tc.want, body)
		}
		if resp.Header.Get("Access-Control-Allow-Origin") != "" || resp.Header.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("%s: a CORS header: %v", tc.name, resp.Header)
		}
		if strings.Contains(body, "alice") || strings.Contains(body, "bob") {
			t.Errorf("%s: the refusal leaks data: %s", tc.name, body)
		}
	}
	if a := fb.friendActions(); len(a) != 0 {
		t.Fatalf("refused requests changed something: %v", a)
	}
	// The same change, properly made, goes through.
	resp, body := do(t, c, s, req{method: "POST", path: "/api/friends/block", body: `{"user_id":"u1"}`,
		header: map[string]string{"X-Kith-Key": key, "Sec-Fetch-Site": "same-origin", "Origin": s.Origin()}})
	if resp.StatusCode != 200 || !strings.Contains(body, "block") {
		t.Fatalf("a proper change: %s %s", resp.Status, body)
	}
	if a := fb.friendActions(); len(a) != 1 || a[0] != "block u1" {
		t.Fatalf("friend actions: %v", a)
	}
	// A preflight is never granted.
	resp, _ = do(t, c, s, req{method: "OPTIONS", path: "/api/friends/block", header: map[string]string{
		"Origin": "http://evil.example", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-kith-key"}})
	if resp.Header.Get("Access-Control-Allow-Origin") != "" || resp.Header.Get("Access-Control-Allow-Headers") != "" {
		t.Fatalf("a preflight was answered with CORS headers: %v", resp.Header)
	}
}

func TestSecurityHeaders(t *testing.T) {
	s, _ := console(t)
	c, key := login(t, s)
	for _, path := range []string{"/", "/app.js", "/api/status", "/nope"} {
		resp, _ := do(t, c, s, req{method: "GET", path: path, header: map[string]string{"X-Kith-Key": key}})
		csp := resp.Header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'self'", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("%s: CSP allows inline script: %q", path, csp)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s: headers %v", path, resp.Header)
		}
	}
}

func TestHostAllowed(t *testing.T) {
	s, _ := console(t)
	p := s.port
	for host, want := range map[string]bool{
		"127.0.0.1:" + p: true, "localhost:" + p: true, "LOCALHOST:" + p: true, "[::1]:" + p: true,
		"127.0.0.1": false, "127.0.0.1:1": false, "evil.example:" + p: false, "localhost.evil.example:" + p: false,
		"[fe80::1%eth0]:" + p: false, "": false,
	} {
		if got := s.hostAllowed(host); got != want {
			t.Errorf("hostAllowed(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestEventsStream(t *testing.T) {
	s, _ := console(t)
	c, _ := login(t, s)
	hr, _ := http.NewRequest("GET", s.Origin()+"/api/events", nil)
	resp, err := c.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("events: %s %q", resp.Status, ct)
	}
	r := bufio.NewReader(resp.Body)
	next := func() string {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("reading events: %v", err)
			}
			if strings.HasPrefix(line, "event: ") {
				return strings.TrimSpace(strings.TrimPrefix(line, "event: "))
			}
		}
	}
	if e := next(); e != "hello" {
		t.Fatalf("first event %q, want hello", e)
	}
	s.Notify(TopicFriends)
	if e := next(); e != TopicFriends {
		t.Fatalf("event %q, want friends", e)
	}
}

func TestParseAddr(t *testing.T) {
	for in, want := range map[string]struct {
		addr    string
		exposed bool
		bad     bool
	}{
		"off":            {"", false, false},
		"127.0.0.1:7118": {"127.0.0.1:7118", false, false},
		"localhost:0":    {"127.0.0.1:0", false, false},
		"[::1]:80":       {"[::1]:80", false, false},
		"0.0.0.0:7118":   {"0.0.0.0:7118", true, false},
		"192.0.2.1:7118": {"192.0.2.1:7118", true, false},
		"example.org:80": {bad: true},
		"7118":           {bad: true},
		"":               {bad: true},
	} {
		addr, exposed, err := ParseAddr(in)
		if (err != nil) != want.bad || addr != want.addr || exposed != want.exposed {
			t.Errorf("ParseAddr(%q) = %q, %v, %v; want %q, %v, bad %v", in, addr, exposed, err, want.addr, want.exposed, want.bad)
		}
	}
}

func TestListenFallsBack(t *testing.T) {
	l1, err := Listen("127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	defer l1.Close()
	if _, err := Listen(l1.Addr().String(), false); err == nil {
		t.Fatal("a port in use was bound twice")
	}
	l2, err := Listen(l1.Addr().String(), true)
	if err != nil {
		t.Fatalf("fallback: %v", err)
	}
	defer l2.Close()
	if l2.Addr().(*net.TCPAddr).Port == l1.Addr().(*net.TCPAddr).Port {
		t.Fatal("fallback gave the same port")
	}
}

// A photo of a code is decoded by the agent; a frame without one is "not
// found", and something that is no image is refused as bad input.
func TestFrameDecode(t *testing.T) {
	s, _ := console(t)
	c, key := login(t, s)
	var png bytes.Buffer
	if err := pairing.WritePNG(&png, "KITH2:ABCDEF", 4); err != nil {
		t.Fatal(err)
	}
	hdr := map[string]string{"X-Kith-Key": key, "Content-Type": "image/png"}
	if resp, body := do(t, c, s, req{method: "POST", path: "/api/pair/frame?photo=1", body: png.String(), header: hdr}); resp.StatusCode != 200 || !strings.Contains(body, `"code":"KITH2:ABCDEF"`) {
		t.Fatalf("a photo of a code: %s %s", resp.Status, body)
	}
	blank := image.NewGray(image.Rect(0, 0, 64, 64))
	var bb bytes.Buffer
	if err := pngenc.Encode(&bb, blank); err != nil {
		t.Fatal(err)
	}
	if resp, body := do(t, c, s, req{method: "POST", path: "/api/pair/frame", body: bb.String(), header: hdr}); resp.StatusCode != 200 || !strings.Contains(body, `"found":false`) {
		t.Fatalf("a frame without a code: %s %s", resp.Status, body)
	}
	if resp, _ := do(t, c, s, req{method: "POST", path: "/api/pair/frame?photo=1", body: "not an image", header: hdr}); resp.StatusCode != 400 {
		t.Fatalf("not an image: %s", resp.Status)
	}
	// The QR image of the invite shown: a PNG, after a show.
	do(t, c, s, req{method: "POST", path: "/api/pair/show", header: map[string]string{"X-Kith-Key": key}})
	resp, body := do(t, c, s, req{method: "GET", path: "/api/pair/qr.png", header: map[string]string{"X-Kith-Key": key}})
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/png" {
		t.Fatalf("qr.png: %s %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	if code, err := pairing.DecodeImage(strings.NewReader(body)); err != nil || code != "KITH2:ABC" {
		t.Fatalf("qr.png decodes to %q, %v", code, err)
	}
}
