package agent

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

// A device that moves keeps its old address among its other ones, first,
// and the list stays bounded.
func TestKeepAddr(t *testing.T) {
	got := keepAddr([]string{"a", "b", "now"}, "old", "now")
	if want := []string{"old", "a", "b"}; !slices.Equal(got, want) {
		t.Fatalf("keepAddr = %v, want %v", got, want)
	}
	var many []string
	for i := range 2 * maxKeptAddrs {
		many = append(many, string(rune('a'+i)))
	}
	if got := keepAddr(many, "old", "x"); len(got) != maxKeptAddrs || got[0] != "old" {
		t.Fatalf("keepAddr of %d kept %v, want %d with old first", len(many), got, maxKeptAddrs)
	}
	if got := keepAddr([]string{"a"}, "", "b"); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("keepAddr with no old address = %v", got)
	}
}

// Two paired devices that each hold the other at a dead address (both
// moved while apart, say) find each other again through the addresses
// their books still hold: once the peer is offline, presence heartbeats
// its other stored addresses too, and the first that answers moves it.
func TestOfflinePeerReachedAtStoredAddr(t *testing.T) {
	a := startAgent(t, newPhrase(t), 0, "a", "127.0.0.1")
	b := startAgent(t, newPhrase(t), 0, "b", "127.0.0.1")
	pairAgents(t, a, b)
	da, db := a.dev.Cert.Device, b.dev.Cert.Device
	waitFor(t, "both online", func() bool { return a.onlineSet()[db] && b.onlineSet()[da] })

	dead := netip.MustParseAddrPort("127.0.0.1:9") // nothing listens there
	a.book.setAddr(db, dead, 0, time.Now())
	b.book.setAddr(da, dead, 0, time.Now())
	if p, _ := a.book.peerFor(db); p.Addr != dead.String() || !slices.Contains(p.Addrs, b.Addr().String()) {
		t.Fatalf("after the move a holds b as %+v, want at %s with %s among its other addresses", p, dead, b.Addr())
	}
	waitFor(t, "each back at the other's live address", func() bool {
		pa, _ := a.book.peerFor(db)
		pb, _ := b.book.peerFor(da)
		return pa.Addr == b.Addr().String() && pb.Addr == a.Addr().String()
	})
}
