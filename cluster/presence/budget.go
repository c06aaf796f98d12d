package presence

import (
	"net/netip"
	"time"

	"github.com/kith-project/kith/seed"
)

// Signature budgets. A datagram that names a known device as its sender
// costs an Ed25519 verification, which anyone can forge the sender field
// of; so verifications are paid from token buckets, and a verification
// that succeeds is refunded: real traffic never drains a bucket, only
// forgeries do, and when one is empty its packets are dropped unverified.
//
// Each known device has two buckets, one for datagrams from the address
// the book holds for it and one for every other address; the second is
// also capped by one bucket shared by all devices. A flood that claims a
// friend's key from anywhere but the friend's current address (which is
// all an attacker can do without spoofing that address) then costs at most
// otherBurst + otherRate per second verifications per device, and
// globalBurst + globalRate per second in all, while the friend's own
// packets keep their bucket and keep flowing. Records inside an
// authenticated datagram are paid by that datagram.
const (
	knownBurst  = 16
	knownRate   = 8 // refilled per second
	otherBurst  = 8
	otherRate   = 4
	globalBurst = 64
	globalRate  = 64
)

// bucket is a token bucket. Guarded by Presence.mu.
type bucket struct {
	tokens float64
	at     time.Time // of the last refill; zero: full
}

// take spends a token if there is one, refilling at rate per second up
// to burst since the last call.
func (b *bucket) take(now time.Time, rate, burst float64) bool {
	switch d := now.Sub(b.at); {
	case b.at.IsZero():
		b.tokens = burst
	case d > 0:
		b.tokens = min(burst, b.tokens+d.Seconds()*rate)
	}
	b.at = now // a clock that went back refills from here
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// refund gives back a token take spent.
func (b *bucket) refund(burst float64) { b.tokens = min(burst, b.tokens+1) }

// spend reports whether a datagram from from, claiming the known device
// whose book address is known, may cost a verification now; if it does,
// the token is spent until refund. The result says which buckets to
// refund.
func (p *Presence) spend(device seed.DevicePublic, from, known netip.AddrPort, now time.Time) (ok, fromKnown bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ps := p.peer(device)
	if from == known {
		return ps.knownBudget.take(now, knownRate, knownBurst), true
	}
	if !ps.otherBudget.take(now, otherRate, otherBurst) {
		return false, false
	}
	if !p.globalBudget.take(now, globalRate, globalBurst) {
		ps.otherBudget.refund(otherBurst)
		return false, false
	}
	return true, false
}

// refundSpent gives back what spend took, after the signature verified.
func (p *Presence) refundSpent(device seed.DevicePublic, fromKnown bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ps := p.peer(device)
	if fromKnown {
		ps.knownBudget.refund(knownBurst)
		return
	}
	ps.otherBudget.refund(otherBurst)
	p.globalBudget.refund(globalBurst)
}
