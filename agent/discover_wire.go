package agent

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/kith-project/kith/seed"
)

// A LAN beacon (datagram type 0x20) tells the own devices and friends on
// the same network segment that a device is here, and nobody else:
//
//	[0x20][nonce, 16 random bytes][tag, 16 bytes]
//
//	tag = HMAC-SHA256(W, "kith beacon v1" || slot || device key || nonce)[:16]
//
// W is the window secret of the sender's user (seed.Device.Window, the
// same on all of a user's devices and given to friends at pairing), slot
// the number of the beaconSlot-long span of Unix time the beacon was made
// in (8 bytes, big-endian, not sent), and the device key the sender's
// ed25519 public key (not sent). A stranger sees 33 random bytes that
// differ every time, in one run or across restarts; only a holder of W
// who also knows the device's key can tell whose it is, by computing the
// tag. The slot bounds how long a captured beacon can be replayed (to
// beaconSlots slots around the receiver's clock); a beacon already taken
// is not taken again (see beaconNonces).
const (
	typeBeacon    byte = 0x20
	beaconNonce        = 16
	beaconTagLen       = 16
	beaconSize         = 1 + beaconNonce + beaconTagLen
	beaconLabel        = "kith beacon v1"
	beaconSlot         = time.Minute
	beaconSkewMax      = 1 // slots either side of ours a beacon may come from
)

// errBeacon: bytes that are not a LAN beacon.
var errBeacon = errors.New("not a LAN beacon")

// beacon is a decoded beacon: its nonce and tag, not yet recognised.
type beacon struct {
	nonce [beaconNonce]byte
	tag   [beaconTagLen]byte
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
	copy(bc.tag[:], b[1+beaconNonce:])
	return bc, nil
}

// slotOf numbers the beaconSlot-long span t lies in.
func beaconSlotOf(t time.Time) int64 { return t.Unix() / int64(beaconSlot/time.Second) }

// beaconTag computes the tag of a beacon from device, whose user's window
// secret is window, made in slot with nonce.
func beaconTag(window []byte, slot int64, device seed.DevicePublic, nonce [beaconNonce]byte) [beaconTagLen]byte {
	m := hmac.New(sha256.New, window)
	m.Write([]byte(beaconLabel))
	var s [8]byte
	binary.BigEndian.PutUint64(s[:], uint64(slot))
	m.Write(s[:])
	m.Write(device[:])
	m.Write(nonce[:])
	var tag [beaconTagLen]byte
	copy(tag[:], m.Sum(nil))
	return tag
}

// newBeacon makes a fresh beacon from device, of the user whose window
// secret is window, at now.
func newBeacon(window []byte, device seed.DevicePublic, now time.Time) []byte {
	var nonce [beaconNonce]byte
	rand.Read(nonce[:]) // never fails (crypto/rand since Go 1.24)
	tag := beaconTag(window, beaconSlotOf(now), device, nonce)
	b := make([]byte, 0, beaconSize)
	b = append(b, typeBeacon)
	b = append(b, nonce[:]...)
	return append(b, tag[:]...)
}

// beaconKey is one device a beacon may come from, with its user's window
// secret.
type beaconKey struct {
	device seed.DevicePublic
	window []byte
}

// recognise returns the device among keys whose beacon bc is, made in a
// slot within beaconSkewMax of now's. It computes at most
// (2·beaconSkewMax+1)·len(keys) tags, and compares each in constant time.
func (bc beacon) recognise(keys []beaconKey, now time.Time) (seed.DevicePublic, bool) {
	slot := beaconSlotOf(now)
	for _, k := range keys {
		if len(k.window) == 0 {
			continue
		}
		for s := slot - beaconSkewMax; s <= slot+beaconSkewMax; s++ {
			tag := beaconTag(k.window, s, k.device, bc.nonce)
			if hmac.Equal(tag[:], bc.tag[:]) {
				return k.device, true
			}
		}
	}
	return seed.DevicePublic{}, false
}
