package agent

import (
	"context"
	"sync/atomic"
	"time"
)

// Keepalives hold NAT mappings open. A NAT forgets a UDP mapping that
// sent nothing for its timeout (30 s unreplied for Linux conntrack, often
// 30 to 60 s elsewhere, and some routers count only packets out), and
// heartbeats go to one random peer per interval, so with several peers a
// path may wait far longer than that for one. Every keepaliveEvery, this
// side on its own sends one keepalive datagram, the single byte 0x13, on
// every path that needs one:
//
//   - a punched path to an online peer (paths.go), always;
//   - when this device is behind a NAT (a peer reports seeing us at an
//     address that is not one of our interfaces'), every other online
//     peer that is not on one of our networks: those are the devices that
//     may have to introduce us, or reach us, and they can only while our
//     mapping toward them lives.
//
// None goes to an offline peer, and none at all when we are not behind a
// NAT and have no punched path. A keepalive is ignored on arrival: it
// is not authenticated and believed in nothing.

// typeKeepalive is the keepalive datagram's first (and only) byte.
const typeKeepalive byte = 0x13

// keepaliveEvery is below the shortest common NAT timeout, 30 s.
const keepaliveEvery = 20 * time.Second

// keepaliveCounters counts keepalives sent.
type keepaliveCounters struct{ sent atomic.Uint64 }

// keepalive is the service: every interval (keepaliveEvery unless a test
// set a.keepEvery), refresh each path that needs it.
func (a *Agent) keepalive(ctx context.Context) error {
	every := a.keepEvery
	if every <= 0 {
		every = keepaliveEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			a.sendKeepalives()
		}
	}
}

// sendKeepalives sends one keepalive on every path that needs one.
func (a *Agent) sendKeepalives() {
	natted := a.behindNAT()
	lans := a.lanPrefixes()
	for _, ps := range a.presence.Status() {
		if !ps.Online || !ps.Addr.IsValid() {
			continue
		}
		kind, _ := a.paths.of(ps.Device, ps.Addr, lans)
		if kind != PathPunched && !(natted && kind == PathDirect) {
			continue
		}
		if err := a.tr.WriteDatagram([]byte{typeKeepalive}, ps.Addr); err == nil {
			a.keep.sent.Add(1)
		}
	}
}
