package pairing

import (
	"bytes"
	"crypto/ed25519"
	"net/netip"
	"testing"
	"time"
)

// t0 is the fake clock's start: 2026-11-18 11:06:40 UTC.
var t0 = time.Unix(1_795_000_000, 0).UTC()

// key returns a deterministic ed25519 key, distinct for each b.
func key(b byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, ed25519.SeedSize))
}

func pub(k ed25519.PrivateKey) [32]byte {
	return [32]byte(k.Public().(ed25519.PublicKey))
}

// typicalAddrs is what an agent on a home network offers: two LAN
// addresses, a public IPv4 learned through STUN and a public IPv6 address.
var typicalAddrs = []netip.AddrPort{
	netip.MustParseAddrPort("192.168.1.23:41641"),
	netip.MustParseAddrPort("10.0.0.7:41641"),
	netip.MustParseAddrPort("203.0.113.9:50211"),
	netip.MustParseAddrPort("[2001:db8:1234:5678:9abc:def0:1234:5678]:41641"),
}

// party is one device taking part in a pairing in the tests.
type party struct {
	user, dev ed25519.PrivateKey
	inv       Invite
	m         *Machine
}

func newParty(t testing.TB, userSeed, devSeed byte, ttl time.Duration) *party {
	t.Helper()
	p := &party{user: key(userSeed), dev: key(devSeed)}
	inv, err := NewInvite(pub(p.user), p.dev, typicalAddrs, ttl, t0)
	if err != nil {
		t.Fatalf("NewInvite: %v", err)
	}
	p.inv = inv
	p.m = NewMachine(inv, p.dev)
	return p
}

// devPub is the key the transport would authenticate for p.
func (p *party) devPub() ed25519.PublicKey { return p.dev.Public().(ed25519.PublicKey) }

// scanned is what p's user gets by scanning other's screen: the code
// travels as text, as it does through a QR code.
func (p *party) scan(t testing.TB, other *party, now time.Time) (Hello, error) {
	t.Helper()
	inv, err := ParseInvite(other.inv.Encode(), now)
	if err != nil {
		t.Fatalf("ParseInvite of the other side's code: %v", err)
	}
	return p.m.Scanned(inv, now)
}
