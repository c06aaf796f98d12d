package transport

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// testKey derives a fixed device key from a name, so that failures reproduce.
func testKey(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("kith transport test key: " + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

func pubOf(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// anyKey authorizes every peer.
func anyKey(ed25519.PublicKey, netip.AddrPort, Direction) error { return nil }

var errUnknownPeer = errors.New("unknown peer (test allowlist)")

// allowlist is an Authorize function over a set of keys that records every
// call.
type allowlist struct {
	mu    sync.Mutex
	keys  map[string]bool
	calls []authCall
}

type authCall struct {
	peer   string
	remote netip.AddrPort
	dir    Direction
}

func newAllowlist(keys ...ed25519.PrivateKey) *allowlist {
	a := &allowlist{keys: make(map[string]bool)}
	for _, k := range keys {
		a.keys[hex.EncodeToString(pubOf(k))] = true
	}
	return a
}

func (a *allowlist) authorize(peer ed25519.PublicKey, remote netip.AddrPort, dir Direction) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	h := hex.EncodeToString(peer)
	a.calls = append(a.calls, authCall{h, remote, dir})
	if !a.keys[h] {
		return errUnknownPeer
	}
	return nil
}

func (a *allowlist) callsFor(k ed25519.PrivateKey, dir Direction) []authCall {
	a.mu.Lock()
	defer a.mu.Unlock()
	h := hex.EncodeToString(pubOf(k))
	var out []authCall
	for _, c := range a.calls {
		if c.peer == h && c.dir == dir {
			out = append(out, c)
		}
	}
	return out
}

// datagramSink collects what Config.Datagram receives.
type datagramSink struct {
	ch chan datagram
}

type datagram struct {
	pkt  []byte
	from netip.AddrPort
}

func newSink() *datagramSink { return &datagramSink{ch: make(chan datagram, 1024)} }

func (s *datagramSink) receive(pkt []byte, from netip.AddrPort) {
	s.ch <- datagram{append([]byte(nil), pkt...), from}
}

// next waits for the next datagram.
func (s *datagramSink) next(t *testing.T) datagram {
	t.Helper()
	select {
	case d := <-s.ch:
		return d
	case <-time.After(5 * time.Second):
		t.Fatal("no datagram within 5s")
		return datagram{}
	}
}

// listenT starts a transport for a test and closes it at the end.
func listenT(t testing.TB, cfg Config) *Transport {
	t.Helper()
	tr, err := Listen(cfg)
	if err != nil {
		t.Fatalf("Listen(%q): %v", cfg.Listen, err)
	}
	t.Cleanup(func() {
		if err := tr.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return tr
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
