package presence

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/kith-project/kith/seed"
)

// ProbeResult is the answer to a Probe: the signed reply that echoed its
// heartbeat.
type ProbeResult struct {
	RTT  time.Duration  // from sending the heartbeat to its reply
	From netip.AddrPort // where the reply came from
	Seen netip.AddrPort // the address the peer saw our heartbeat come from
}

// ErrUnknownDevice: a probe of a device the book does not know.
var ErrUnknownDevice = fmt.Errorf("presence: unknown device")

// Probe sends a heartbeat to the known device at the address to (its
// book address if to is not valid) and waits, until ctx ends, for the
// signed reply that echoes it. The reply is handled as any reply is: it
// measures the round trip and, since it authenticates, moves the device to
// where it came from. A heartbeat to an address the device is not at goes
// unanswered, and ctx's error is returned.
func (p *Presence) Probe(ctx context.Context, device seed.DevicePublic, to netip.AddrPort) (ProbeResult, error) {
	info, ok := p.cfg.Book.Lookup(device)
	if !ok || !info.Device.Equal(device) || device.Equal(p.pub) {
		return ProbeResult{}, ErrUnknownDevice
	}
	if !to.IsValid() {
		to = info.Addr
	}
	if !validAddr(normAddr(to)) {
		return ProbeResult{}, fmt.Errorf("presence: no address to probe %s at", device.Short())
	}
	ch := make(chan ProbeResult, 1)
	p.sendProbeTo(TypeHeartbeat, info, normAddr(to), ch)
	select {
	case r := <-ch:
		return r, nil
	case <-ctx.Done():
		return ProbeResult{}, fmt.Errorf("presence: no reply from %s at %s: %w", device.Short(), to, ctx.Err())
	}
}

// answered hands r to a waiting probe without blocking: each probe's
// channel has room for its one reply.
func answered(probe chan<- ProbeResult, r ProbeResult) {
	select {
	case probe <- r:
	default:
	}
}
