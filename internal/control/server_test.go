package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

// serveT serves a fake backend on a socket in a fresh home until the test
// ends.
func serveT(t *testing.T) string {
	t.Helper()
	home, err := os.MkdirTemp("", "kc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	l, err := Listen(home)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, NewHandler(&fake{})) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return home
}

// A client that sends its headers and part of its body, then stalls, is
// cut off by the server's read timeout rather than held forever.
func TestStalledBodyTimesOut(t *testing.T) {
	old := requestReadTimeout
	requestReadTimeout = 200 * time.Millisecond
	t.Cleanup(func() { requestReadTimeout = old })
	home := serveT(t)

	c, err := net.Dial("unix", SocketPath(home))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "POST /v1/pair/show HTTP/1.1\r\nHost: kith\r\nContent-Length: 100\r\n\r\n{\"ttl\":"); err != nil {
		t.Fatal(err)
	}
	// Generous: the server's limit is 200 ms; this only stops a hung test.
	c.SetReadDeadline(time.Now().Add(60 * time.Second))
	rest, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the server still holds a request stalled in its body after 60 s")
	}
	if len(rest) > 0 && !strings.Contains(string(rest), " 400 ") {
		t.Fatalf("the server answered a truncated body with %q, want 400 or nothing", rest)
	}
}

// A body over MaxRequestBody is refused as bad input without being read
// to its end.
func TestLargeBodyRefused(t *testing.T) {
	h := NewHandler(&fake{})
	body := `{"code":"` + strings.Repeat("A", MaxRequestBody) + `"}`
	r := httptest.NewRequest(http.MethodPost, "/v1/pair/scan", strings.NewReader(body))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "larger than") {
		t.Fatalf("a body of %d bytes: %d %s", len(body), w.Code, w.Body)
	}
}

// decodeRoutes are the routes that take a request body.
var decodeRoutes = []string{"/v1/pair/show", "/v1/pair/scan", "/v1/friends/block", "/v1/friends/unblock", "/v1/friends/remove"}

// FuzzDecodeRequest sends arbitrary bodies to the routes that decode one:
// the answer is a success or bad input, never a failure or a panic, and
// what decodeRequest accepts is valid JSON (or empty).
func FuzzDecodeRequest(f *testing.F) {
	for i, body := range []string{
		"", " ", `{}`, `{"ttl":60000000000}`, `{"ttl":-1}`, `{"ttl":1e40}`, `{"ttl":"1m"}`,
		`{"code":"KITH1:ABC"}`, `{"user_id":"00"}`, `[]`, `null`, `{"code":1}`, `{} {}`, `{"code":"\ud800"}`,
	} {
		f.Add([]byte(body), uint8(i))
	}
	h := NewHandler(fuzzBackend{&fake{}})
	f.Fuzz(func(t *testing.T, body []byte, route uint8) {
		var in struct {
			TTL    time.Duration `json:"ttl"`
			Code   string        `json:"code"`
			UserID string        `json:"user_id"`
		}
		if err := decodeRequest(bytes.NewReader(body), &in); err == nil && len(bytes.TrimSpace(body)) > 0 && !jsonValid(body) {
			t.Fatalf("decodeRequest accepted %q, which is not JSON", body)
		}
		path := decodeRoutes[int(route)%len(decodeRoutes)]
		r := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		switch w.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusNotFound:
		default:
			t.Fatalf("POST %s %q: status %d: %s", path, body, w.Code, w.Body)
		}
		if _, err := bufio.NewReader(w.Body).Peek(1); err != nil {
			t.Fatalf("POST %s %q: empty answer", path, body)
		}
	})
}

func jsonValid(b []byte) bool { return json.Valid(b) }

// fuzzBackend is the fake whose scans never fail, so that any failure a
// fuzzed request meets comes from decoding.
type fuzzBackend struct{ *fake }

func (fuzzBackend) PairScan(context.Context, string) (ScanResult, error) { return ScanResult{}, nil }
