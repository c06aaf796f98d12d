package agent

import (
	"context"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/kith-project/kith/seed"
)

// A revoked device is told so on first contact: when it tries to connect,
// the device that refuses it, own or a friend's, sends it its revocation,
// which is signed by the user key and so needs no other authentication, as
// one datagram (0x14, typeRevokedNotice: the type byte, then
// seed.Revocation's binary form). The sending and the checking are in
// rosters.go (noticeRevoked, handleNotice); this file is what the rest of
// the agent calls.

// revokedNotices holds what the packet path needs before it may send a
// notice.
type revokedNotices struct {
	// ready is set by Run: the transport, which the packet path reaches
	// tellRevoked through before New has stored it, is there.
	ready atomic.Bool
}

// tellRevoked sends device d at remote its revocation, if the roster holds
// it (rate-limited per address and overall). It runs on the packet path
// (dropSource) and in the handshake (authorize).
func (a *Agent) tellRevoked(d seed.DevicePublic, remote netip.AddrPort) {
	if !a.notices.ready.Load() {
		return
	}
	a.rosters.noticeRevoked(d, remote)
}

// revokedNotice handles a revocation notice: believed only if it verifies,
// is our user's, and names this device.
func (a *Agent) revokedNotice(pkt []byte) { a.rosters.handleNotice(pkt) }

// revokedSelf reports whether this device was told it is revoked.
func (a *Agent) revokedSelf() bool { return a.rosters.revokedSelf() != "" }

// errRevokedSelf is what a command that failed says when this device has
// been told it is revoked.
const errRevokedSelf = "this device was revoked with the seed phrase, and your other devices refuse it: restore a device with a new index (kith restore --device N)"

// waitRevokedSelf reports whether this device is revoked, waiting a moment
// for a notice still on its way: the refusal of a handshake and the notice
// that explains it arrive separately.
func (a *Agent) waitRevokedSelf(ctx context.Context) bool {
	deadline := time.Now().Add(time.Second)
	for !a.revokedSelf() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}
