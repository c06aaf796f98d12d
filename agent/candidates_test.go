package agent

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kith-project/kith/internal/memnet"
	"github.com/kith-project/kith/seed"
)

func TestCandidateSetsForgedOrReplayedAreRefused(t *testing.T) {
	_, _, da := newDevice(t, newPhrase(t), 0, "a")
	_, _, db := newDevice(t, newPhrase(t), 0, "b")
	_, _, dc := newDevice(t, newPhrase(t), 0, "c")
	now := time.Now()
	addrs := []netip.AddrPort{netip.MustParseAddrPort("198.51.100.1:7117"), netip.MustParseAddrPort("[2001:db8::1]:7117")}
	keyA, pa, pb, pc := da.Device.Ed25519(), da.Cert.Device, db.Cert.Device, dc.Cert.Device
	set := signCandidates(keyA, pb, now, addrs)
	var g candidateGuard
	c, err := g.accept(set, pa, pb, now)
	if err != nil || !slices.Equal(c.Addrs, addrs) {
		t.Fatalf("a good set: %+v %v", c, err)
	}
	if _, err := g.accept(set, pa, pb, now); err == nil || !strings.Contains(err.Error(), "replayed") {
		t.Errorf("the same set again: %v", err)
	}
	// An older set never taken is no replay: two introductions may cross.
	older := signCandidates(keyA, pb, now.Add(-time.Second), addrs)
	if _, err := g.accept(older, pa, pb, now); err != nil {
		t.Errorf("an older set not taken before: %v", err)
	}
	if _, err := g.accept(older, pa, pb, now); err == nil {
		t.Error("the older set was taken twice")
	}
	forged := slices.Clone(signCandidates(keyA, pb, now.Add(time.Second), addrs))
	forged[candHeader] ^= 1 // another address
	if _, err := g.accept(forged, pa, pb, now); err == nil || !strings.Contains(err.Error(), "signature") {
		t.Errorf("a changed address: %v", err)
	}
	if _, err := g.accept(signCandidates(keyA, pc, now.Add(2*time.Second), addrs), pa, pb, now); err == nil {
		t.Error("a set made for another device was taken")
	}
	if _, err := g.accept(signCandidates(keyA, pb, now.Add(3*time.Second), addrs), pc, pb, now); err == nil {
		t.Error("a set signed by another device than the one introduced was taken")
	}
	if _, err := g.accept(signCandidates(keyA, pb, now.Add(-time.Hour), addrs), pa, pb, now); err == nil {
		t.Error("an hour-old set was taken")
	}
	if _, err := g.accept(signCandidates(keyA, pb, now.Add(4*time.Second), addrs), pa, pb, now); err != nil {
		t.Errorf("a newer good set: %v", err)
	}
}

func FuzzCandidates(f *testing.F) {
	key := seed.DevicePublic{}
	_, _, d := newDevice(f, newPhrase(f), 0, "f")
	f.Add(signCandidates(d.Device.Ed25519(), key, time.Unix(1e9, 0), []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:1")}))
	f.Add([]byte{1})
	f.Add(make([]byte, candHeader+candAddrLen+candSigLen))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeCandidates(b)
		if err != nil {
			return
		}
		if len(c.Addrs) == 0 || len(c.Addrs) > maxCandidates {
			t.Fatalf("decoded %d addresses", len(c.Addrs))
		}
		c.verify()
	})
}

func FuzzIntroFrame(f *testing.F) {
	f.Add([]byte(`{"op":"request","peer":"` + strings.Repeat("ab", 32) + `","cands":"AQI="}`))
	f.Add([]byte(`{"op":"reply","cands":"AQI=","seen":"198.51.100.1:7117","at":1}`))
	f.Add([]byte(`{"op":"answer","code":"policy","error":"no"}`))
	f.Add([]byte(`{"op":"offer"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := decodeIntroFrame(b)
		if err != nil {
			return
		}
		if len(fr.Error) > maxIntroError {
			t.Fatal("long error accepted")
		}
		if fr.Op == "offer" {
			if _, err := netip.ParseAddrPort(fr.Seen); err != nil {
				t.Fatal("offer without an address accepted")
			}
		}
	})
}

// The NAT type from what two public friends report: none on a public
// address, easy behind a port-preserving NAT, hard behind one that
// maps per destination; and the reported address is a candidate.
func TestNATTypeFromTwoFriends(t *testing.T) {
	for _, c := range []struct {
		name    string
		mapping memnet.Mapping
		behind  bool
		want    string
	}{
		{"public", 0, false, NATNone},
		{"port-preserving", memnet.EndpointIndependent, true, NATEasy},
		{"symmetric", memnet.EndpointDependent, true, NATHard},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := memnet.New(memnet.Options{})
			t.Cleanup(func() { n.Close() })
			if _, err := n.AddNAT(memnet.NATConfig{Public: labPubA, Inside: labHomeA, Mapping: c.mapping}); err != nil {
				t.Fatal(err)
			}
			f1, _ := labAgent(t, n, netip.MustParseAddrPort("203.0.113.10:7117"), "f1", "")
			f2, _ := labAgent(t, n, netip.MustParseAddrPort("203.0.113.11:7117"), "f2", "")
			h, pc := labAgent(t, n, netip.MustParseAddrPort("203.0.113.1:7117"), "h", "")
			pairAgents(t, h, f1)
			pairAgents(t, h, f2)
			if c.behind {
				if err := pc.Rebind(labInA); err != nil {
					t.Fatal(err)
				}
			}
			waitLong(t, "NAT type "+c.want, 30*time.Second, func() bool {
				return h.natType() == c.want && (c.want == NATNone || len(h.presence.Reported()) == 2)
			})
			if c.behind != h.behindNAT() {
				t.Errorf("behindNAT %v, want %v", h.behindNAT(), c.behind)
			}
			if c.behind {
				cands := h.candidates()
				found := false
				for _, ap := range cands {
					found = found || ap.Addr() == labPubA
				}
				if !found || len(cands) > maxCandidates {
					t.Errorf("candidates %v: want the NAT's address %s among at most %d", cands, labPubA, maxCandidates)
				}
			}
		})
	}
}
