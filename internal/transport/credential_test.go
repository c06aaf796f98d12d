package transport

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"
)

func TestCredentialAdmitsUnknownKey(t *testing.T) {
	ka, kb, kc := testKey("a"), testKey("b"), testKey("c")
	cred := []byte("signed by our user")
	var (
		mu   sync.Mutex
		seen []byte
	)
	saw := func() []byte {
		mu.Lock()
		defer mu.Unlock()
		return seen
	}
	vouch := func(peer ed25519.PublicKey, c []byte, _ netip.AddrPort, dir Direction) error {
		mu.Lock()
		seen = append([]byte(nil), c...)
		mu.Unlock()
		if bytes.Equal(c, cred) && sameKey(peer, pubOf(kb)) && dir == Inbound {
			return nil
		}
		return errors.New("not ours")
	}
	refuseAll := func(ed25519.PublicKey, netip.AddrPort, Direction) error { return errors.New("unknown") }
	a := listenT(t, Config{Key: ka, Listen: "127.0.0.2:0", Authorize: refuseAll, AuthorizeCredential: vouch})
	b := listenT(t, Config{Key: kb, Listen: "127.0.0.3:0", Authorize: anyKey, Credential: cred})
	c := listenT(t, Config{Key: kc, Listen: "127.0.0.4:0", Authorize: anyKey, Credential: []byte("forged")})
	d := listenT(t, Config{Key: testKey("d"), Listen: "127.0.0.5:0", Authorize: anyKey})
	acceptAll(t, a)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if _, err := b.connect(ctx, a.LocalAddr(), pubOf(ka)); err != nil {
		t.Fatalf("a device with a good credential was refused: %v", err)
	}
	if !bytes.Equal(saw(), cred) {
		t.Fatalf("AuthorizeCredential saw %q, want %q", saw(), cred)
	}
	if _, err := c.connect(ctx, a.LocalAddr(), pubOf(ka)); !errors.Is(err, ErrRefused) {
		t.Fatalf("a device with a bad credential: %v, want ErrRefused", err)
	}
	mu.Lock()
	seen = nil
	mu.Unlock()
	if _, err := d.connect(ctx, a.LocalAddr(), pubOf(ka)); !errors.Is(err, ErrRefused) {
		t.Fatalf("a device without a credential: %v, want ErrRefused", err)
	}
	if saw() != nil {
		t.Fatal("AuthorizeCredential was asked about a certificate without a credential")
	}
}
