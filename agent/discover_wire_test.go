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

func randomUser(t testing.TB) seed.UserPublic {
	t.Helper()
	var u seed.UserPublic
	rand.Read(u[:])
	return u
}

func mustBeacon(t testing.TB, window []byte, dev seed.DevicePublic, now time.Time) []byte {
	t.Helper()
	pkt, err := newBeacon(window, dev, now)
	if err != nil {
		t.Fatal(err)
	}
	return pkt
}

func mustDecode(t testing.TB, pkt []byte) beacon {
	t.Helper()
	bc, err := decodeBeacon(pkt)
	if err != nil {
		t.Fatal(err)
	}
	return bc
}

// A beacon is recognised by whoever holds its user's window secret, who
// learns the user and the device key from it, also of a device it never
// heard of; and by nobody else.
func TestBeaconRecognisedOnlyWithTheSecret(t *testing.T) {
	now := time.Now()
	dev, win := randomKey(t)
	_, otherWin := randomKey(t)
	alice, bob := randomUser(t), randomUser(t)
	bc := mustDecode(t, mustBeacon(t, win, dev, now))
	// Bob, a friend of alice's, holds her secret besides his own.
	user, got, ok := bc.recognise([]beaconUser{{bob, otherWin}, {alice, win}}, now, nil)
	if !ok || user != alice || got != dev {
		t.Fatalf("a holder of the secret: %v %v %v, want alice and the device", user, got, ok)
	}
	stranger := []beaconUser{{bob, otherWin}, {alice, nil}, {alice, win[:31]}}
	if _, _, ok := bc.recognise(stranger, now, nil); ok {
		t.Fatal("the beacon was recognised with a stranger's secrets")
	}
	// Made a few slots ago (a replay from another network, later): old.
	old := mustDecode(t, mustBeacon(t, win, dev, now.Add(-3*beaconSlot)))
	if _, _, ok := old.recognise([]beaconUser{{alice, win}}, now, nil); ok {
		t.Fatal("a beacon three slots old was recognised")
	}
	// A clock a slot off either way still counts.
	for _, skew := range []time.Duration{-beaconSlot, beaconSlot} {
		skewed := mustDecode(t, mustBeacon(t, win, dev, now.Add(skew)))
		if _, got, ok := skewed.recognise([]beaconUser{{alice, win}}, now, nil); !ok || got != dev {
			t.Fatalf("a beacon from a clock %v off was not recognised", skew)
		}
	}
}

// The tag covers every byte: a beacon with any one bit flipped, in its
// nonce, its sealed key or its tag, is recognised by nobody. And the
// sealed key is not the device key.
func TestBeaconTamperedNotRecognised(t *testing.T) {
	now := time.Now()
	dev, win := randomKey(t)
	alice := randomUser(t)
	users := []beaconUser{{alice, win}}
	good := mustBeacon(t, win, dev, now)
	if bytes.Contains(good, dev[:4]) {
		t.Fatalf("the beacon holds the device key's first bytes: % x", good)
	}
	for i := 1; i < len(good); i++ {
		for bit := range 8 {
			b := append([]byte(nil), good...)
			b[i] ^= 1 << bit
			if _, _, ok := mustDecode(t, b).recognise(users, now, nil); ok {
				t.Fatalf("recognised with bit %d of byte %d flipped", bit, i)
			}
		}
	}
	if _, got, ok := mustDecode(t, good).recognise(users, now, nil); !ok || got != dev {
		t.Fatal("the untouched beacon was not recognised")
	}
}

// Beacons from one device never repeat and have nothing in common that a
// stranger could link: no two of 1,000 share their nonce, their sealed key
// or their tag, or more runs of four bytes past the type byte than chance
// gives. (Single bytes agree by chance all the time.)
func TestBeaconsShareNothing(t *testing.T) {
	dev, win := randomKey(t)
	now := time.Now()
	const n = 1000
	seen := map[string]bool{}
	runs := map[[4]byte]int{}
	for i := range n {
		pkt := mustBeacon(t, win, dev, now)
		if len(pkt) != beaconSize || pkt[0] != typeBeacon {
			t.Fatalf("beacon %d: % x", i, pkt)
		}
		k := 1 + beaconNonce
		for _, part := range [][]byte{pkt[1:k], pkt[k : k+beaconKeyLen], pkt[k+beaconKeyLen:]} {
			if seen[string(part)] {
				t.Fatalf("beacon %d repeats a nonce, a sealed key or a tag", i)
			}
			seen[string(part)] = true
		}
		for j := 1; j+4 <= len(pkt); j++ {
			runs[[4]byte(pkt[j:j+4])]++
		}
	}
	// 1,000·69 runs among 2^32 values: about 0.55 collisions expected
	// (Poisson); more than 6 happens by chance once in 500,000 runs of the
	// test, and would mean structure (an unsealed key repeats 1,000 times).
	dup := 0
	for _, c := range runs {
		dup += c - 1
	}
	if dup > 6 {
		t.Fatalf("%d repeated four-byte runs among %d beacons", dup, n)
	}
}

// The cache of ciphers recognises what derivation anew does, slot after
// slot, and keeps only the slots around the newest asked for.
func TestBeaconCiphersCache(t *testing.T) {
	dev, win := randomKey(t)
	_, otherWin := randomKey(t)
	alice, bob := randomUser(t), randomUser(t)
	users := []beaconUser{{bob, otherWin}, {alice, win}}
	c := newBeaconCiphers()
	start := time.Unix(1_800_000_000, 0)
	for i := range 20 {
		now := start.Add(time.Duration(i) * beaconSlot)
		for _, made := range []time.Time{now, now.Add(-beaconSlot), now.Add(beaconSlot), now.Add(-2 * beaconSlot)} {
			bc := mustDecode(t, mustBeacon(t, win, dev, made))
			u1, d1, ok1 := bc.recognise(users, now, nil)
			u2, d2, ok2 := bc.recognise(users, now, c)
			if u1 != u2 || d1 != d2 || ok1 != ok2 || ok1 != (made.Sub(now).Abs() <= beaconSlot) {
				t.Fatalf("slot %d, made %v off: anew %v %v, cached %v %v", i, made.Sub(now), u1, ok1, u2, ok2)
			}
		}
		c.mu.Lock()
		n := len(c.m)
		c.mu.Unlock()
		if n > len(users)*cipherSlots {
			t.Fatalf("%d ciphers cached for %d users", n, len(users))
		}
	}
	// A clock gone back an hour is served too.
	bc := mustDecode(t, mustBeacon(t, win, dev, start))
	if _, got, ok := bc.recognise(users, start, c); !ok || got != dev {
		t.Fatal("not recognised after the clock went back")
	}
}

func TestDecodeBeaconRejects(t *testing.T) {
	dev, win := randomKey(t)
	good := mustBeacon(t, win, dev, time.Now())
	for name, b := range map[string][]byte{
		"empty":     nil,
		"short":     good[:beaconSize-1],
		"long":      append(append([]byte(nil), good...), 0),
		"wrongtype": append([]byte{0x21}, good[1:]...),
		"v1":        good[:33],
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
// panic, what decodes is exactly one beacon's size, and what is recognised
// is recognised as the one user whose secret the recogniser holds.
func FuzzDecodeBeacon(f *testing.F) {
	dev := seed.DevicePublic{9, 9, 9}
	win := bytes.Repeat([]byte{7}, 32)
	alice, bob := seed.UserPublic{1}, seed.UserPublic{2}
	now := time.Unix(1_800_000_000, 0)
	good := mustBeacon(f, win, dev, now)
	f.Add(good)
	f.Add(mustBeacon(f, win, dev, now.Add(-beaconSlot)))
	f.Add(mustBeacon(f, win, dev, now.Add(-5*beaconSlot)))
	f.Add(mustBeacon(f, bytes.Repeat([]byte{8}, 32), dev, now))
	f.Add(append(append([]byte(nil), good[:40]...), make([]byte, beaconSize-40)...))
	f.Add([]byte{typeBeacon})
	f.Add(make([]byte, beaconSize))
	f.Add(append([]byte{typeBeacon}, make([]byte, 32)...)) // a v1 beacon's size
	f.Add(append([]byte{0x10}, make([]byte, 72)...))
	users := []beaconUser{{alice, win}, {bob, nil}}
	f.Fuzz(func(t *testing.T, b []byte) {
		bc, err := decodeBeacon(b)
		if err != nil {
			return
		}
		if len(b) != beaconSize {
			t.Fatalf("decoded %d bytes", len(b))
		}
		if user, _, ok := bc.recognise(users, now, nil); ok && user != alice {
			t.Fatalf("recognised as %v, whose secret is empty", user)
		}
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
// that knows 1, 10 or 100 users (its own and friends): every key tried,
// none matching, with each key derived anew (cold) or taken from the
// agent's cache (warm, as in every beacon but the first of a minute). The
// number of devices does not matter.
func BenchmarkRecogniseBeacon(b *testing.B) {
	now := time.Now()
	dev, win := randomKey(b)
	bc := mustDecode(b, mustBeacon(b, win, dev, now))
	for _, n := range []int{1, 10, 100} {
		users := make([]beaconUser, n)
		for i := range users {
			_, w := randomKey(b)
			users[i] = beaconUser{randomUser(b), w}
		}
		for _, warm := range []bool{false, true} {
			var c *beaconCiphers
			name := fmt.Sprintf("users=%d/cold", n)
			if warm {
				c, name = newBeaconCiphers(), fmt.Sprintf("users=%d/warm", n)
				bc.recognise(users, now, c)
			}
			b.Run(name, func(b *testing.B) {
				for b.Loop() {
					if _, _, ok := bc.recognise(users, now, c); ok {
						b.Fatal("recognised")
					}
				}
			})
		}
	}
}
