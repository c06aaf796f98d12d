package presence_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/kith-project/kith/cluster/presence"
	"github.com/kith-project/kith/cluster/presence/presencetest"
)

// Probe waits for the reply that echoes its heartbeat: a peer at the
// address answers, with a round trip and what it saw; a probe to where
// the peer is not, or of an unknown device, fails. A peer probed at its
// real address while the book holds a stale one is moved there.
func TestProbe(t *testing.T) {
	ka, kb := testKey("probe a"), testKey("probe b")
	pa, pb := pubOf(ka), pubOf(kb)
	bookA, bookB := presencetest.NewBook(), presencetest.NewBook()
	a := newUDPNode(t, "127.0.0.1:0", ka, bookA, nil)
	b := newUDPNode(t, "127.0.0.1:0", kb, bookB, nil)
	stale := netip.MustParseAddrPort("127.0.0.1:9")
	bookA.Add(presence.PeerInfo{Device: pb, Own: true, Addr: stale})
	bookB.Add(presence.PeerInfo{Device: pa, Own: true, Addr: a.addr()})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := a.p.Probe(ctx, pb, b.addr())
	if err != nil {
		t.Fatal(err)
	}
	if res.From != b.addr() || res.Seen != a.addr() || res.RTT <= 0 {
		t.Fatalf("probe result %+v; b is at %s, a at %s", res, b.addr(), a.addr())
	}
	if got := bookA.Addr(pb); got != b.addr() {
		t.Fatalf("the answered probe left b at %s in a's book, want %s", got, b.addr())
	}

	short, cancelShort := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancelShort()
	if _, err := a.p.Probe(short, pb, stale); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a probe where nobody is: %v", err)
	}
	if _, err := a.p.Probe(ctx, pubOf(testKey("nobody")), b.addr()); !errors.Is(err, presence.ErrUnknownDevice) {
		t.Fatalf("a probe of an unknown device: %v", err)
	}
	if refl := a.p.Reflexives(); len(refl) != 1 || refl[0].Device != pb || refl[0].Addr != a.addr() {
		t.Fatalf("reflexives %+v", refl)
	}
}
