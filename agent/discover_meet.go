package agent

import (
	"context"
	"net/netip"
	"time"

	"github.com/kith-project/kith/roster"
	"github.com/kith-project/kith/seed"
	"golang.org/x/time/rate"
)

// Meetings on the LAN: a beacon sealed under our own user's window secret by a
// device the book does not know (a device restored from the phrase, which
// knows none of ours) is answered with a dial to the beacon's source
// address, expecting the device key the beacon carries. The beacon proves
// nothing by itself (friends hold our window secret too); the handshake
// does: the transport checks that the peer holds that key, and each side's
// TLS certificate carries its device certificate, signed by the user key,
// which Agent.authorizeOwn checks and then adds the other to the book as
// an own device. The dial opens a pairing stream and closes it at once: the
// stream carries nothing (the pairing handler reads end-of-stream where a
// Hello would be and returns); the handshake is the point. Then the device
// is probed as any device found by beacon is.
//
// A dial costs a QUIC handshake, so dials are bounded apart from the
// beacon rate limits: at most one per device and one per source address
// every meetGap, meetRate in all, maxMeets at once, each at most
// meetTimeout. A replayed beacon is dropped before (discoverer.nonces); a
// beacon sealed with a captured or a friend's window secret for some key
// leads at worst to a bounded number of failed dials to an address on our
// own network.

// Meetings' bounds.
const (
	meetGap     = 10 * time.Second // at most one dial per device, and per source address, in this time
	meetRate    = rate.Limit(1)    // dials per second in all
	meetBurst   = 4                //
	maxMeets    = 4                // dials in flight at once
	meetTimeout = 5 * time.Second  // a dial's bound
	maxMeetKeys = 1024             // devices, and sources, remembered
)

// meetings is the bookkeeping of meetings on the LAN; the discoverer's mu
// guards it.
type meetings struct {
	global   *rate.Limiter
	inflight int
	byDevice map[seed.DevicePublic]time.Time
	bySource map[netip.Addr]time.Time
}

func newMeetings() meetings {
	return meetings{
		global:   rate.NewLimiter(meetRate, meetBurst),
		byDevice: map[seed.DevicePublic]time.Time{},
		bySource: map[netip.Addr]time.Time{},
	}
}

// allowLocked reports whether dev may be dialed at src now, and if so
// takes a slot for the dial (released by done).
func (in *meetings) allowLocked(dev seed.DevicePublic, src netip.Addr, now time.Time) bool {
	if in.inflight >= maxMeets || recently(in.byDevice[dev], now) || recently(in.bySource[src], now) {
		return false
	}
	if !roomLocked(in.byDevice, now) || !roomLocked(in.bySource, now) || !in.global.Allow() {
		return false
	}
	in.byDevice[dev], in.bySource[src] = now, now
	in.inflight++
	return true
}

// recently reports whether t lies within meetGap before now (or after
// it: a clock that went back counts as recent).
func recently(t time.Time, now time.Time) bool {
	return !t.IsZero() && (now.Sub(t) < meetGap || now.Before(t))
}

// roomLocked makes room in m for one more entry by dropping those older
// than meetGap, and reports whether there is.
func roomLocked[K comparable](m map[K]time.Time, now time.Time) bool {
	if len(m) < maxMeetKeys {
		return true
	}
	for k, t := range m {
		if !recently(t, now) {
			delete(m, k)
		}
	}
	return len(m) < maxMeetKeys
}

// meetOnLAN dials the unknown own device dev at addr, which the book then
// holds if its certificate was good, and probes it. The agent's Run waits
// for it (run's probes); ctx is run's.
func (d *discoverer) meetOnLAN(ctx context.Context, dev seed.DevicePublic, addr netip.AddrPort) {
	defer func() {
		d.mu.Lock()
		d.meet.inflight--
		d.mu.Unlock()
	}()
	dctx, cancel := context.WithTimeout(ctx, meetTimeout)
	s, err := d.a.tr.OpenStream(dctx, addr, dev.Ed25519(), protoPairing)
	cancel()
	if err != nil {
		d.a.log.Debug("discover: dialing an unknown own device", "device", dev.Short(), "addr", addr.String(), "err", err)
		return
	}
	s.Close()
	if p, ok := d.a.book.peerFor(dev); !ok || p.Kind != roster.KindOwn {
		// Known already as someone else's device: authorize let it in,
		// not authorizeOwn. Nothing to meet.
		return
	}
	d.mu.Lock()
	d.stats.Met++
	d.mu.Unlock()
	d.a.log.Info("own device met on the LAN", "device", dev.Short(), "addr", addr.String())
	d.probe(ctx, dev, addr)
}
