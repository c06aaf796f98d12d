package agent

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/kith-project/kith/seed"
)

func randomKey(t testing.TB) (seed.DevicePublic, []byte) {
	t.Helper()
	var d seed.DevicePublic
	w := make([]byte, 32)
	rand.Read(d[:])
	rand.Read(w)
	return d, w
}

// A beacon is recognised by whoever holds its user's window secret and
// knows the device, and by nobody else: not with another user's secret,
// not for another device of the same user.
func TestBeaconRecognisedOnlyWithTheSecret(t *testing.T) {
	now := time.Now()
	dev, win := randomKey(t)
	other, otherWin := randomKey(t)
	pkt := newBeacon(win, dev, now)
	bc, err := decodeBeacon(pkt)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := bc.recognise([]beaconKey{{other, win}, {dev, win}}, now); !ok || !got.Equal(dev) {
		t.Fatalf("a holder of the secret does not recognise the beacon: %v %v", got, ok)
	}
	stranger := []beaconKey{{dev, otherWin}, {other, otherWin}, {other, win}}
	if _, ok := bc.recognise(stranger, now); ok {
		t.Fatal("the beacon was recognised with a stranger's key set")
	}
	// Made a few slots ago (a replay from another network, later): old.
	old, _ := decodeBeacon(newBeacon(win, dev, now.Add(-3*beaconSlot)))
	if _, ok := old.recognise([]beaconKey{{dev, win}}, now); ok {
		t.Fatal("a beacon three slots old was recognised")
	}
	// A clock a slot off still counts.
	skewed, _ := decodeBeacon(newBeacon(win, dev, now.Add(beaconSlot)))
	if _, ok := skewed.recognise([]beaconKey{{dev, win}}, now); !ok {
		t.Fatal("a beacon from a clock one slot ahead was not recognised")
	}
}

// Beacons from one device never repeat and have nothing in common that a
// stranger could link: no two of 2,000 share their nonce or their tag, or
// any run of four bytes past the type byte. (Single bytes agree by chance:
// about one pair in eight shares one at some position.)
func TestBeaconsShareNothing(t *testing.T) {
	dev, win := randomKey(t)
	now := time.Now()
	const n = 2000
	seen := map[string]bool{}
	runs := map[[4]byte]int{}
	for i := range n {
		pkt := newBeacon(win, dev, now)
		if len(pkt) != beaconSize || pkt[0] != typeBeacon {
			t.Fatalf("beacon %d: % x", i, pkt)
		}
		for _, part := range [][]byte{pkt[1 : 1+beaconNonce], pkt[1+beaconNonce:]} {
			if seen[string(part)] {
				t.Fatalf("beacon %d repeats a nonce or tag", i)
			}
			seen[string(part)] = true
		}
		for j := 1; j+4 <= len(pkt); j++ {
			runs[[4]byte(pkt[j:j+4])]++
		}
	}
	// 2,000·29 runs among 2^32 values: a collision is expected about 0.4
	// times; more than 3 would mean structure.
	dup := 0
	for _, c := range runs {
		dup += c - 1
	}
	if dup > 3 {
		t.Fatalf("%d repeated four-byte runs among %d beacons", dup, n)
	}
}

func TestDecodeBeaconRejects(t *testing.T) {
	dev, win := randomKey(t)
	good := newBeacon(win, dev, time.Now())
	for name, b := range map[string][]byte{
		"empty":     nil,
		"short":     good[:beaconSize-1],
		"long":      append(append([]byte(nil), good...), 0),
		"wrongtype": append([]byte{0x21}, good[1:]...),
	} {
		if _, err := decodeBeacon(b); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

func TestBroadcastOf(t *testing.T) {
	for in, want := range map[string]string{
		"192.168.1.7/24": "192.168.1.255", "10.0.0.0/8": "10.255.255.255", "172.16.5.1/30": "172.16.5.3", "127.0.0.1/8": "127.255.255.255",
	} {
		p := mustPrefix(t, in)
		if got := broadcastOf(p); got.String() != want {
			t.Errorf("broadcastOf(%s) = %s, want %s", in, got, want)
		}
	}
}

// FuzzDecodeBeacon feeds the beacon decoder and recogniser anything: no
// panic, and what decodes is exactly one beacon's size.
func FuzzDecodeBeacon(f *testing.F) {
	var dev seed.DevicePublic
	win := bytes.Repeat([]byte{7}, 32)
	now := time.Unix(1_800_000_000, 0)
	f.Add(newBeacon(win, dev, now))
	f.Add([]byte{typeBeacon})
	f.Add(make([]byte, beaconSize))
	f.Add(append([]byte{0x10}, make([]byte, 40)...))
	keys := []beaconKey{{dev, win}, {seed.DevicePublic{1}, nil}}
	f.Fuzz(func(t *testing.T, b []byte) {
		bc, err := decodeBeacon(b)
		if err != nil {
			return
		}
		if len(b) != beaconSize {
			t.Fatalf("decoded %d bytes", len(b))
		}
		bc.recognise(keys, now)
	})
}

func mustPrefix(t testing.TB, s string) netip.Prefix {
	t.Helper()
	p, err := netip.ParsePrefix(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// BenchmarkRecogniseBeacon is what a beacon nobody knows costs a receiver
// that knows 1, 10 or 100 devices: every tag computed, none matching.
func BenchmarkRecogniseBeacon(b *testing.B) {
	now := time.Now()
	dev, win := randomKey(b)
	bc, _ := decodeBeacon(newBeacon(win, dev, now))
	for _, n := range []int{1, 10, 100} {
		keys := make([]beaconKey, n)
		for i := range keys {
			d, w := randomKey(b)
			keys[i] = beaconKey{d, w}
		}
		b.Run(fmt.Sprintf("devices=%d", n), func(b *testing.B) {
			for b.Loop() {
				if _, ok := bc.recognise(keys, now); ok {
					b.Fatal("recognised")
				}
			}
		})
	}
}
