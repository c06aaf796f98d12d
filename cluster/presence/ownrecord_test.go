package presence_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"net/netip"
	"testing"
	"time"

	"github.com/kith-project/kith/cluster/presence"
	"github.com/kith-project/kith/cluster/presence/presencetest"
)

// A device listening on every interface that is left with loopback only
// (between "ip addr del" and "ip addr add") keeps advertising its routable
// address; a device that only ever had loopback advertises loopback.
func TestLoopbackNeverReplacesARoutableRecord(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	locals := []netip.AddrPort{netip.MustParseAddrPort("198.18.0.1:7117"), netip.MustParseAddrPort("127.0.0.1:7117")}
	now := time.Unix(1_800_000_000, 0)
	p, err := presence.New(presence.Config{Key: key, Book: presencetest.NewBook(), Send: func([]byte, netip.AddrPort) error { return nil },
		Now: func() time.Time { return now }, LocalAddrs: func() []netip.AddrPort { return locals }})
	if err != nil {
		t.Fatal(err)
	}
	poll := func() {
		p.PollLocals(now)
		now = now.Add(time.Second)
	}
	poll()
	if a, _ := p.OwnRecord(); a != locals[0] {
		t.Fatalf("advertised %v, want %v", a, locals[0])
	}
	locals = locals[1:] // the routable address is gone
	poll()
	if a, _ := p.OwnRecord(); a.String() != "198.18.0.1:7117" {
		t.Fatalf("with loopback only left, advertised %v", a)
	}
	locals = []netip.AddrPort{netip.MustParseAddrPort("198.18.0.11:7117"), netip.MustParseAddrPort("127.0.0.1:7117")}
	poll()
	if a, _ := p.OwnRecord(); a.String() != "198.18.0.11:7117" {
		t.Fatalf("after the new address came, advertised %v", a)
	}

	// Loopback-only from the start: loopback it is.
	q, _ := presence.New(presence.Config{Key: key, Book: presencetest.NewBook(), Send: func([]byte, netip.AddrPort) error { return nil },
		Now: func() time.Time { return now }, LocalAddrs: func() []netip.AddrPort { return []netip.AddrPort{netip.MustParseAddrPort("127.0.0.2:7117")} }})
	q.PollLocals(now)
	if a, _ := q.OwnRecord(); a.String() != "127.0.0.2:7117" {
		t.Fatalf("a loopback-only device advertised %v", a)
	}
}
