package pairing

import (
	"crypto/ed25519"
	"crypto/rand"
	"net/netip"
	"testing"
	"time"
)

func TestRoutingHelpers(t *testing.T) {
	now := time.Now()
	newDev := func() (ed25519.PrivateKey, Invite) {
		_, k, _ := ed25519.GenerateKey(rand.Reader)
		var user [32]byte
		rand.Read(user[:])
		inv, err := NewInvite(user, k, []netip.AddrPort{netip.MustParseAddrPort("127.0.0.2:7117")}, time.Minute, now)
		if err != nil {
			t.Fatal(err)
		}
		return k, inv
	}
	ka, ia := newDev()
	kb, ib := newDev()
	_, ia2 := func() (ed25519.PrivateKey, Invite) {
		inv, _ := NewInvite(ia.User, ka, ia.Addrs, time.Minute, now)
		return ka, inv
	}()
	ma, ma2, mb := NewMachine(ia, ka), NewMachine(ia2, ka), NewMachine(ib, kb)
	if !ma.Ours().Equal(ia) || ma.HasScanned() {
		t.Fatal("a fresh machine")
	}
	hb, err := mb.Scanned(ia, now) // b scanned a's first invite
	if err != nil {
		t.Fatal(err)
	}
	if !ma.Proves(hb) || ma2.Proves(hb) {
		t.Fatalf("Proves: first invite %v (want true), second %v (want false)", ma.Proves(hb), ma2.Proves(hb))
	}
	if ma.Awaits(ib) {
		t.Fatal("Awaits before the Hello arrived")
	}
	if _, err := ma.HandleHello(hb, kb.Public().(ed25519.PublicKey), now); err != nil {
		t.Fatal(err)
	}
	if !ma.Awaits(ib) || ma2.Awaits(ib) {
		t.Fatal("Awaits after the Hello: want only the first machine")
	}
	if _, err := ma.Scanned(ib, now); err != nil || !ma.Done() || !ma.HasScanned() {
		t.Fatalf("scanning completes: %v done=%v", err, ma.Done())
	}
}
