package agent

import (
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kith-project/kith/seed"
)

// A revoked device is told so on first contact: when it tries to connect,
// the own device that refuses it sends it the revocation, which is signed
// by the user key and so needs no other authentication, as one datagram:
//
//	0x14  revocation notice: the type byte, then seed.Revocation's binary
//	      form
//
// The revoked device checks that the revocation is its own user's and
// names itself, and from then on says, in its log and as the cluster state
// "revoked" in kith status, that it was revoked and that a device must be
// restored with a new index.
const typeRevokedNotice byte = 0x14

// noticeGap is how often one revoked device is told, at most.
const noticeGap = 5 * time.Second

// revokedNotices rate-limits the notices sent, and keeps the one received.
type revokedNotices struct {
	mu   sync.Mutex
	sent map[seed.DevicePublic]time.Time // guarded by mu
	self *seed.Revocation                // guarded by mu: this device's own revocation, once told
	// ready is set by Run: the transport, which the packet path reaches
	// tellRevoked through before New has stored it, is there.
	ready atomic.Bool
}

// tellRevoked sends device d at remote its revocation, if the roster holds
// it and d was not told in the last noticeGap. It runs on the packet path
// (dropSource) and in the handshake (authorize).
func (a *Agent) tellRevoked(d seed.DevicePublic, remote netip.AddrPort) {
	if !remote.IsValid() || !a.notices.ready.Load() {
		return
	}
	now := a.cfg.Now()
	n := &a.notices
	n.mu.Lock()
	if n.sent == nil {
		n.sent = map[seed.DevicePublic]time.Time{}
	}
	if last, ok := n.sent[d]; ok && now.Sub(last) < noticeGap {
		n.mu.Unlock()
		return
	}
	if len(n.sent) > 1024 {
		clear(n.sent)
	}
	n.sent[d] = now
	n.mu.Unlock()
	var rev seed.Revocation
	found := false
	for _, r := range a.book.rosterNow().Revocations() {
		if r.Device.Equal(d) {
			rev, found = r, true
			break
		}
	}
	if !found {
		return
	}
	pkt := append([]byte{typeRevokedNotice}, rev.Marshal()...)
	if err := a.tr.WriteDatagram(pkt, remote); err != nil {
		a.log.Debug("telling a revoked device", "err", err)
	}
}

// revokedNotice handles a revocation notice: believed only if it verifies,
// is our user's, and names this device.
func (a *Agent) revokedNotice(pkt []byte) {
	rev, err := seed.ParseRevocation(pkt[1:])
	if err != nil || !rev.User.Equal(a.dev.Cert.User) || !rev.Device.Equal(a.dev.Cert.Device) {
		return
	}
	n := &a.notices
	n.mu.Lock()
	first := n.self == nil
	n.self = &rev
	n.mu.Unlock()
	if first {
		a.log.Error("this device was revoked: your other devices refuse it. Restore a device with a new index (kith restore --device N) to use it again", "index", rev.Index, "revoked_at", rev.Revoked)
	}
}

// revokedSelf reports whether this device was told it is revoked.
func (a *Agent) revokedSelf() bool {
	a.notices.mu.Lock()
	defer a.notices.mu.Unlock()
	return a.notices.self != nil
}

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
