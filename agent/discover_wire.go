package agent

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kith-project/kith/seed"
	"golang.org/x/crypto/chacha20poly1305"
)

// A LAN beacon (datagram type 0x20) tells the own devices and friends on
// the same network segment that a device is here, and which one, and
// nobody else:
//
//	[0x20][nonce, 24 random bytes][sealed device key, 32 bytes][tag, 16 bytes]
//
//	K              = HKDF-Expand-SHA256(W, "kith beacon v2" || slot, 32)
//	sealed || tag  = XChaCha20-Poly1305-Seal(K, nonce, device key, ad = 0x20)
//
// W is the window secret of the sender's user (seed.Device.Window, the
// same on all of a user's devices and given to friends at pairing), slot
// the number of the beaconSlot-long span of Unix time the beacon was made
// in (8 bytes, big-endian, not sent), and the device key the sender's
// ed25519 public key.
//
// Why this construction: XChaCha20-Poly1305 (golang.org/x/crypto, already
// used by internal/keystore) is a standard AEAD, encrypt-then-MAC by
// construction; its 24-byte nonce may be drawn at random with no fear of
// a repeat; Open checks the tag, in constant time, before it decrypts
// anything. The tag covers the nonce, the sealed key and the type byte,
// and the slot through the key. W is itself uniformly random (the output
// of HKDF, seed.DeriveWindowSecret), so HKDF-Expand may use it as its
// pseudorandom key directly; the label keeps K apart from every other use
// of W (presence's quiet windows hash "quiet" with it).
//
// A receiver tries K for every user it knows (its own and each friend's)
// in the slots around its clock: O(users), not O(devices). A match tells
// it the sender's user, and the device key, even of a device it never met
// (a phone just restored from the phrase). A stranger sees 72 random bytes
// that differ every time, in one run or across restarts. The slot bounds
// how long a captured beacon can be replayed (beaconSkewMax slots around
// the receiver's clock); a beacon already taken is not taken again (see
// discoverer.nonces).
//
// Recognising a beacon under the own user's W proves only that its sender
// holds W, which friends do too (they were given it at pairing). So it is
// never taken as proof of ownership: an unknown device is admitted as an
// own device only by the TLS handshake that follows, with the device
// certificate signed by the user key (Agent.authorizeOwn).
const (
	typeBeacon    byte = 0x20
	beaconNonce        = chacha20poly1305.NonceSizeX // 24
	beaconKeyLen       = len(seed.DevicePublic{})    // 32
	beaconTagLen       = chacha20poly1305.Overhead   // 16
	beaconSize         = 1 + beaconNonce + beaconKeyLen + beaconTagLen
	beaconLabel        = "kith beacon v2"
	beaconSlot         = time.Minute
	beaconSkewMax      = 1 // slots either side of ours a beacon may come from
	beaconTries        = 2*beaconSkewMax + 1
)

// errBeacon: bytes that are not a LAN beacon.
var errBeacon = errors.New("not a LAN beacon")

// beacon is a decoded beacon, not yet recognised.
type beacon struct {
	nonce  [beaconNonce]byte
	sealed [beaconKeyLen + beaconTagLen]byte // sealed device key, then tag
}

// decodeBeacon parses b, which must be exactly one beacon.
func decodeBeacon(b []byte) (beacon, error) {
	if len(b) != beaconSize {
		return beacon{}, fmt.Errorf("%w: %d bytes, want %d", errBeacon, len(b), beaconSize)
	}
	if b[0] != typeBeacon {
		return beacon{}, fmt.Errorf("%w: type %#02x", errBeacon, b[0])
	}
	var bc beacon
	copy(bc.nonce[:], b[1:])
	copy(bc.sealed[:], b[1+beaconNonce:])
	return bc, nil
}

// beaconSlotOf numbers the beaconSlot-long span t lies in (floor
// division, so that times before 1970 work too).
func beaconSlotOf(t time.Time) int64 {
	s, n := t.Unix(), int64(beaconSlot/time.Second)
	if s < 0 && s%n != 0 {
		return s/n - 1
	}
	return s / n
}

// beaconAEAD returns the cipher of the beacons of the user whose window
// secret is window, made in slot.
func beaconAEAD(window []byte, slot int64) (beaconCipher, error) {
	var info [len(beaconLabel) + 8]byte
	copy(info[:], beaconLabel)
	binary.BigEndian.PutUint64(info[len(beaconLabel):], uint64(slot))
	k, err := hkdf.Expand(sha256.New, window, string(info[:]), chacha20poly1305.KeySize)
	if err != nil {
		return nil, fmt.Errorf("deriving the beacon key: %w", err)
	}
	defer clear(k)
	return chacha20poly1305.NewX(k)
}

// beaconCipher is the AEAD of one user's beacons in one slot.
type beaconCipher interface {
	Seal(dst, nonce, plaintext, ad []byte) []byte
	Open(dst, nonce, ciphertext, ad []byte) ([]byte, error)
}

// beaconAD is the AEAD's additional data: the type byte.
var beaconAD = []byte{typeBeacon}

// newBeacon makes a fresh beacon from device, of the user whose window
// secret is window, at now.
func newBeacon(window []byte, device seed.DevicePublic, now time.Time) ([]byte, error) {
	aead, err := beaconAEAD(window, beaconSlotOf(now))
	if err != nil {
		return nil, err
	}
	b := make([]byte, 1+beaconNonce, beaconSize)
	b[0] = typeBeacon
	rand.Read(b[1:]) // never fails (crypto/rand since Go 1.24)
	return aead.Seal(b, b[1:], device[:], beaconAD), nil
}

// beaconUser is one user whose beacons we recognise, with their window
// secret.
type beaconUser struct {
	user   seed.UserPublic
	window []byte
}

// recognise returns the user among users whose beacon bc is, made in a
// slot within beaconSkewMax of now's, and the device key it carries. It
// tries at most beaconTries·len(users) keys, derived anew or taken from
// ciphers (which may be nil); each AEAD Open compares its tag in constant
// time and decrypts nothing unless the tag matches.
func (bc beacon) recognise(users []beaconUser, now time.Time, ciphers *beaconCiphers) (seed.UserPublic, seed.DevicePublic, bool) {
	slot := beaconSlotOf(now)
	var dev seed.DevicePublic
	for _, u := range users {
		if len(u.window) == 0 {
			continue
		}
		for s := slot - beaconSkewMax; s <= slot+beaconSkewMax; s++ {
			aead, err := ciphers.get(u.window, s)
			if err != nil {
				continue
			}
			if out, err := aead.Open(dev[:0], bc.nonce[:], bc.sealed[:], beaconAD); err == nil && len(out) == len(dev) {
				return u.user, dev, true
			}
		}
	}
	return seed.UserPublic{}, seed.DevicePublic{}, false
}

// beaconCiphers caches the cipher of each window secret and slot around
// now: deriving the key is two thirds of what a try costs, and depends
// only on the user and the slot, not on the beacon. It holds the ciphers
// of at most cipherSlots consecutive slots, and at most maxCiphers in all.
// Its methods are safe for concurrent use (an AEAD keeps no state), and a
// nil cache derives every key anew.
type beaconCiphers struct {
	mu     sync.Mutex
	m      map[cipherKey]beaconCipher // guarded by mu
	newest int64                      // guarded by mu: the newest slot asked for
}

type cipherKey struct {
	window string
	slot   int64
}

// Bounds of beaconCiphers.
const (
	cipherSlots = beaconTries + 2 // the slots tried now, and one either side for a clock at a slot's edge
	maxCiphers  = 8192
)

func newBeaconCiphers() *beaconCiphers { return &beaconCiphers{m: map[cipherKey]beaconCipher{}} }

// get returns the cipher of window's beacons in slot.
func (c *beaconCiphers) get(window []byte, slot int64) (beaconCipher, error) {
	if c == nil {
		return beaconAEAD(window, slot)
	}
	k := cipherKey{string(window), slot}
	c.mu.Lock()
	aead, ok := c.m[k]
	c.mu.Unlock()
	if ok {
		return aead, nil
	}
	aead, err := beaconAEAD(window, slot)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case slot > c.newest:
		c.newest = slot
		for k := range c.m {
			if k.slot <= slot-cipherSlots {
				delete(c.m, k)
			}
		}
	case slot <= c.newest-cipherSlots: // the clock went back: start over
		clear(c.m)
		c.newest = slot
	}
	if len(c.m) >= maxCiphers {
		clear(c.m)
	}
	c.m[k] = aead
	return aead, nil
}
