package presence

import (
	"net/netip"

	"github.com/kith-project/kith/seed"
)

// PeerInfo is a known device as the address book holds it.
type PeerInfo struct {
	// Device is the peer device's public key, its ID.
	Device seed.DevicePublic
	// Own: the device is another device of this user; else a friend's.
	Own bool
	// Addr is the last known address; the zero value if none.
	Addr netip.AddrPort
	// Others are further addresses the book holds for the device (where
	// it was before, its invite's), best first. While the peer is offline,
	// every heartbeat to Addr also goes to the first MaxOthers of them at
	// once, and the first that answers moves the peer there, as any
	// authenticated packet from a new address does.
	Others []netip.AddrPort
	// Version is the version of the newest address record applied for this
	// device, as last passed to Book.SetAddr (0 if none). It keeps a
	// restarted agent from taking an older record again.
	Version uint64
	// Window is the peer user's 32-byte window secret (for quiet mode); nil
	// if unknown. For own devices it is our own user's.
	Window []byte
}

// Book is the agent's address book, as presence sees it. The agent
// implements it. Its methods must be cheap and safe for concurrent use, and
// must not call back into the Presence.
type Book interface {
	// Lookup returns the device with key device if it is known and not
	// blocked.
	Lookup(device seed.DevicePublic) (PeerInfo, bool)
	// Peers returns every known device that is not blocked.
	Peers() []PeerInfo
	// SetAddr persists a new address for device, and version as the
	// version of the record it came from (unchanged when the address comes
	// from an authenticated packet rather than a record).
	SetAddr(device seed.DevicePublic, addr netip.AddrPort, version uint64) error
}

// VersionBook is a Book that also keeps the version of this device's own
// newest address record across restarts. A Book should implement it:
// without it a restarted device numbers its records from its clock, and
// if that clock went back, peers ignore its records (though not its
// packets) until the clock has caught up.
type VersionBook interface {
	Book
	// OwnVersion returns the version last passed to SetOwnVersion, 0 if
	// none.
	OwnVersion() uint64
	// SetOwnVersion persists the version of a record this device just
	// signed. Presence calls it before it sends the record; it must be
	// cheap, as SetAddr.
	SetOwnVersion(version uint64) error
}
