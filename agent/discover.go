package agent

import (
	"bytes"
	"context"
	mrand "math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/kith-project/kith/roster"
	"github.com/kith-project/kith/seed"
	"golang.org/x/time/rate"
)

// LAN discovery: every few minutes, at start and whenever this machine's
// networks change, the agent broadcasts a LAN beacon (discover_wire.go) on
// each of its IPv4 networks, to its own port and to DefaultPort (or
// Config.BeaconPorts). A beacon names its sender's device, sealed under a
// key of its user's window secret, so that a device that holds that secret
// (its own user's, or a friend's it was given at pairing) learns from it
// the sender's user and device key. Then:
//
//   - a device in the book, of that user: the receiver answers with a
//     beacon of its own, sent to where the beacon came from (at most once
//     per answerGap per device, so two answers never start a ping-pong),
//     so that the sender learns of it too; and sends a signed heartbeat to
//     the beacon's source address (presence.Probe). The reply
//     authenticates the device there, which moves it in the book as any
//     authenticated packet does, and the path is recorded as PathLAN.
//   - an unknown device of our own user (a device restored from the
//     phrase, which has met none of ours): the receiver answers likewise
//     and dials it at the source address, expecting its device key
//     (meetOnLAN). The TLS handshake carries each side's device
//     certificate, signed by the user key, and Agent.authorizeOwn, on
//     both sides, adds the other to the book as an own device; then the
//     probe as above. A revoked device is never dialed (and authorizeOwn
//     refuses it anyway). Dials are rate-limited per device, per source
//     address and in all (meetGap, meetRate, maxMeets).
//   - an unknown device of a friend: nothing. Its certificate, signed by
//     the friend's user key, would prove it is the friend's, but not that
//     the friend has not revoked it: that only the friend's roster tells
//     (DESIGN §6, "friends see the roster"), and the device reaches us once
//     our friend's roster names it.
//
// What a beacon costs a receiver is bounded before any key is tried: a
// beacon must come from an address on one of this device's networks, pass
// a rate limit per source address and a global one, and not be one already
// taken (or one of ours coming back). Recognising it then costs at most
// beaconTries·(known users) AEAD openings. A replayed beacon is dropped at
// the nonce check and answered with nothing; one replayed on another
// network after its nonce was forgotten is too old (beaconSkewMax) to be
// recognised.
//
// Constraint (Linux): a UDP socket bound to a specific address, such as
// 127.0.0.2:7117 or 192.168.1.5:7117, does not receive datagrams sent to a
// broadcast address; only one bound to 0.0.0.0 (the default listen
// address) does. An agent bound to one address still sends beacons and
// answers the beacons sent to it directly, but hears no broadcasts.

// DefaultPort is the port of DefaultListen, to which beacons also go.
const DefaultPort uint16 = 7117

// Discovery's timings and bounds.
const (
	beaconEvery  = 3 * time.Minute                    // background rounds, jittered ±1/4
	lanPollEvery = 10 * time.Second                   // how often the networks are checked for a change
	answerGap    = 2 * time.Second                    // at most one answer per device in this time
	probeGap     = time.Second                        // at most one probe per device in this time
	probeTimeout = 2 * time.Second                    // a probe's wait for its reply
	discoverWait = 2 * time.Second                    // how long "kith discover" listens
	maxProbes    = 32                                 // probes in flight at once
	maxNonces    = 4096                               // beacons remembered as taken
	maxSources   = 1024                               // per-source rate limiters kept
	sourceRate   = rate.Limit(5)                      // beacons per second from one address
	sourceBurst  = 10                                 //
	globalRate   = rate.Limit(50)                     // beacons per second from anywhere
	globalBurst  = 100                                //
	nonceLife    = (2*beaconSkewMax + 2) * beaconSlot // how long a taken beacon could still be recognised
)

// discoverer is the agent's LAN discovery. Its methods are safe for
// concurrent use; run is its service.
type discoverer struct {
	a      *Agent
	global *rate.Limiter
	wake   chan struct{} // asks run for a round now; buffered, one
	mu     sync.Mutex
	// ports, if set, replaces the ports beacons go to (tests on real UDP,
	// where two agents cannot share one port). Guarded by mu.
	ports    []uint16
	running  bool                             // guarded by mu: probes and meetings may start
	ctx      context.Context                  // guarded by mu: run's, while running; ends probes and dials
	probes   sync.WaitGroup                   // probes and meetings in flight; Add under mu while running
	inflight int                              // guarded by mu: probes in flight
	meet     meetings                         // guarded by mu: meetings of unknown own devices (discover_meet.go)
	ciphers  *beaconCiphers                   // its own lock
	nonces   map[[beaconNonce]byte]time.Time  // guarded by mu: taken beacons and ours, until they expire
	sources  map[netip.Addr]*rate.Limiter     // guarded by mu
	answered map[seed.DevicePublic]time.Time  // guarded by mu: our last answer to each device
	probed   map[seed.DevicePublic]time.Time  // guarded by mu: our last probe of each device
	found    map[seed.DevicePublic]foundOnLAN // guarded by mu: devices confirmed on the LAN
	stats    DiscoverStats                    // guarded by mu
	lastLANs []netip.Prefix                   // guarded by mu: the networks of the last round
}

// foundOnLAN is a device whose heartbeat round trip, after its beacon,
// confirmed it at addr.
type foundOnLAN struct {
	addr netip.AddrPort
	at   time.Time
}

// DiscoverStats counts what discovery did since the agent started.
type DiscoverStats struct {
	Sent       uint64 // beacons sent (one per destination)
	Received   uint64 // datagrams of type 0x20
	Idle       uint64 // before discovery runs, or after it stopped
	Malformed  uint64
	OffLAN     uint64 // from an address on none of our networks
	Throttled  uint64 // over the per-source or global rate
	Replayed   uint64 // a beacon already taken, or our own
	Unknown    uint64 // recognised as nobody's we know, or sealed by another user than the device's
	Recognised uint64 // beacons of a known user (counted once, whatever is done next)
	Foreign    uint64 // of a friend's device not in the book: ignored
	Revoked    uint64 // of a revoked own device: ignored
	Dials      uint64 // unknown own devices dialed (meetings begun)
	Met        uint64 // unknown own devices dialed and added to the book
	Confirmed  uint64 // probes answered
	Tries      uint64 // keys tried (AEAD openings) to recognise beacons
}

func newDiscoverer(a *Agent) *discoverer {
	return &discoverer{
		a:        a,
		global:   rate.NewLimiter(globalRate, globalBurst),
		wake:     make(chan struct{}, 1),
		nonces:   map[[beaconNonce]byte]time.Time{},
		sources:  map[netip.Addr]*rate.Limiter{},
		answered: map[seed.DevicePublic]time.Time{},
		probed:   map[seed.DevicePublic]time.Time{},
		found:    map[seed.DevicePublic]foundOnLAN{},
		meet:     newMeetings(),
		ciphers:  newBeaconCiphers(),
	}
}

// run sends beacon rounds until ctx ends, then waits for the probes in
// flight.
func (d *discoverer) run(ctx context.Context) error {
	d.mu.Lock()
	d.running, d.ctx = true, ctx
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.running, d.ctx = false, nil
		d.mu.Unlock()
		d.probes.Wait()
	}()
	d.round()
	next := time.Now().Add(jitter(beaconEvery))
	poll := time.NewTicker(lanPollEvery)
	defer poll.Stop()
	t := time.NewTimer(time.Until(next))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-d.wake:
			d.round()
		case <-poll.C:
			d.mu.Lock()
			last := d.lastLANs
			d.mu.Unlock()
			if !slices.Equal(last, d.a.lan()) {
				d.round()
			}
		case <-t.C:
			d.round()
			t.Reset(jitter(beaconEvery))
		}
	}
}

// jitter returns d ± d/4.
func jitter(d time.Duration) time.Duration {
	return d - d/4 + time.Duration(mrand.Int64N(int64(d/2)))
}

// destinations are where a round's beacon goes: the broadcast address of
// every IPv4 network among lans (all of them for a socket bound to
// 0.0.0.0, else the one holding its address), at each port.
func destinations(lans []netip.Prefix, bound netip.Addr, ports []uint16) []netip.AddrPort {
	var out []netip.AddrPort
	for _, p := range lans {
		if !p.Addr().Is4() || p.Bits() >= 31 {
			continue
		}
		if !bound.IsUnspecified() && !p.Contains(bound) {
			continue
		}
		b := broadcastOf(p)
		for _, port := range ports {
			out = append(out, netip.AddrPortFrom(b, port))
		}
	}
	slices.SortFunc(out, netip.AddrPort.Compare)
	return slices.Compact(out)
}

// broadcastOf is the last address of the IPv4 network p.
func broadcastOf(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	for i := range 4 {
		a[i] |= byte(host >> (8 * (3 - i)))
	}
	return netip.AddrFrom4(a)
}

// round broadcasts a fresh beacon to each destination.
func (d *discoverer) round() {
	lans := d.a.lan()
	d.mu.Lock()
	ports := d.ports
	d.mu.Unlock()
	if ports == nil {
		ports = append([]uint16{d.a.Addr().Port()}, d.a.cfg.BeaconPorts...)
		if d.a.cfg.BeaconPorts == nil {
			ports = append(ports, DefaultPort)
		}
	}
	dests := destinations(lans, d.a.Addr().Addr().Unmap(), ports)
	d.mu.Lock()
	d.lastLANs = lans
	d.mu.Unlock()
	if len(dests) == 0 {
		return
	}
	for _, to := range dests {
		d.sendBeacon(to) // a fresh one each: no two datagrams alike
	}
}

// beacon makes a fresh beacon and remembers its nonce, so that our own
// broadcast coming back costs nothing.
func (d *discoverer) beacon() ([]byte, error) {
	now := d.a.cfg.Now()
	pkt, err := newBeacon(d.a.dev.Window[:], d.a.dev.Cert.Device, now)
	if err != nil {
		return nil, err
	}
	var n [beaconNonce]byte
	copy(n[:], pkt[1:])
	d.mu.Lock()
	d.rememberLocked(n, now)
	d.mu.Unlock()
	return pkt, nil
}

// sendBeacon sends a fresh beacon to to.
func (d *discoverer) sendBeacon(to netip.AddrPort) {
	pkt, err := d.beacon()
	if err != nil {
		d.a.log.Warn("discover: making a beacon", "err", err)
		return
	}
	if err := d.a.tr.WriteDatagram(pkt, to); err != nil {
		d.a.log.Debug("discover: sending a beacon", "to", to.String(), "err", err)
		return
	}
	d.mu.Lock()
	d.stats.Sent++
	d.mu.Unlock()
}

// rememberLocked records a taken nonce, forgetting expired ones when the
// table is full. It reports false if the table is full of live ones.
func (d *discoverer) rememberLocked(n [beaconNonce]byte, now time.Time) bool {
	if len(d.nonces) >= maxNonces {
		for k, t := range d.nonces {
			if now.Sub(t) > nonceLife || now.Before(t) {
				delete(d.nonces, k)
			}
		}
		if len(d.nonces) >= maxNonces {
			return false
		}
	}
	d.nonces[n] = now
	return true
}

// handle takes a datagram of type 0x20 from from.
func (d *discoverer) handle(pkt []byte, from netip.AddrPort) {
	now := d.a.cfg.Now()
	from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	d.mu.Lock()
	d.stats.Received++
	if !d.running {
		// Before Run (the transport may deliver datagrams while New
		// still sets the agent up) or after it: nothing may be sent.
		d.stats.Idle++
		d.mu.Unlock()
		return
	}
	bc, err := decodeBeacon(pkt)
	if err != nil {
		d.stats.Malformed++
		d.mu.Unlock()
		return
	}
	if !d.allowLocked(from.Addr()) {
		d.stats.Throttled++
		d.mu.Unlock()
		return
	}
	if t, ok := d.nonces[bc.nonce]; ok && now.Sub(t) <= nonceLife {
		d.stats.Replayed++
		d.mu.Unlock()
		return
	}
	d.mu.Unlock()
	if !onLAN(d.a.lan(), from.Addr()) {
		d.mu.Lock()
		d.stats.OffLAN++
		d.mu.Unlock()
		return
	}
	users := d.a.beaconUsers()
	user, dev, ok := bc.recognise(users, now, d.ciphers)
	act := actNone
	if ok && !dev.Equal(d.a.dev.Cert.Device) {
		act = d.a.beaconAction(user, dev)
	}
	d.mu.Lock()
	d.stats.Tries += uint64(len(users) * beaconTries)
	if !ok || act == actNone {
		d.stats.Unknown++
		d.mu.Unlock()
		return
	}
	if _, taken := d.nonces[bc.nonce]; taken || !d.rememberLocked(bc.nonce, now) {
		d.stats.Replayed++
		d.mu.Unlock()
		return
	}
	d.stats.Recognised++
	switch act {
	case actForeign:
		d.stats.Foreign++
		d.mu.Unlock()
		return
	case actRevoked:
		d.stats.Revoked++
		d.mu.Unlock()
		d.a.log.Debug("discover: beacon of a revoked device", "device", dev.Short(), "from", from.String())
		return
	}
	answer := now.Sub(d.answered[dev]) >= answerGap || now.Before(d.answered[dev])
	if answer {
		d.answered[dev] = now
	}
	var probe, meet bool
	var ctx context.Context
	if act == actProbe {
		probe = d.running && d.inflight < maxProbes && (now.Sub(d.probed[dev]) >= probeGap || now.Before(d.probed[dev]))
		if probe {
			d.probed[dev] = now
			d.inflight++
			d.probes.Add(1)
		}
	} else {
		meet = d.running && d.meet.allowLocked(dev, from.Addr(), now)
		if meet {
			d.stats.Dials++
			d.probes.Add(1)
		}
	}
	ctx = d.ctx
	d.mu.Unlock()
	d.a.log.Debug("discover: beacon recognised", "device", dev.Short(), "from", from.String(), "known", act == actProbe)
	if answer {
		d.sendBeacon(from)
	}
	switch {
	case probe:
		go func() {
			defer func() {
				d.mu.Lock()
				d.inflight--
				d.mu.Unlock()
				d.probes.Done()
			}()
			d.probe(ctx, dev, from)
		}()
	case meet:
		go func() {
			defer d.probes.Done()
			d.meetOnLAN(ctx, dev, from)
		}()
	}
}

// What a recognised beacon leads to.
type beaconAct int

const (
	actNone    beaconAct = iota // nothing: not a device of the user that sealed it
	actProbe                    // a device in the book: answer and probe
	actMeet                     // an unknown own device: answer, dial, probe
	actForeign                  // an unknown device of a friend: nothing
	actRevoked                  // a revoked own device: nothing
)

// beaconAction decides what a beacon of user's device dev leads to. A
// device in the book must be user's: a friend, who holds our window
// secret, could seal another user's device key, and we would probe that
// device at the friend's address.
func (a *Agent) beaconAction(user seed.UserPublic, dev seed.DevicePublic) beaconAct {
	if p, ok := a.book.peerFor(dev); ok {
		if !p.UserID.Equal(user) {
			return actNone
		}
		return actProbe
	}
	switch {
	case !user.Equal(a.dev.Cert.User):
		return actForeign
	case a.book.revoked(dev):
		return actRevoked
	}
	return actMeet
}

// allowLocked applies the per-source and global rate limits.
func (d *discoverer) allowLocked(src netip.Addr) bool {
	lim, ok := d.sources[src]
	if !ok {
		if len(d.sources) >= maxSources {
			clear(d.sources) // the global limit still holds
		}
		lim = rate.NewLimiter(sourceRate, sourceBurst)
		d.sources[src] = lim
	}
	return lim.Allow() && d.global.Allow()
}

// probe sends dev a heartbeat at addr and, when its reply comes, records
// the LAN path. The agent's Run waits for it (run's probes).
func (d *discoverer) probe(ctx context.Context, dev seed.DevicePublic, addr netip.AddrPort) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	res, err := d.a.presence.Probe(ctx, dev, addr)
	if err != nil {
		d.a.log.Debug("discover: probe unanswered", "device", dev.Short(), "addr", addr.String(), "err", err)
		return
	}
	now := d.a.cfg.Now()
	d.a.paths.set(dev, res.From, PathLAN, "", now)
	d.mu.Lock()
	d.found[dev] = foundOnLAN{addr: res.From, at: now}
	d.stats.Confirmed++
	d.mu.Unlock()
	d.a.log.Info("found on the LAN", "device", dev.Short(), "addr", res.From.String())
}

// discover sends a beacon round at once and returns the devices confirmed
// on the LAN within discoverWait (or until ctx ends), sorted by device ID.
func (d *discoverer) discover(ctx context.Context) []foundDevice {
	start := d.a.cfg.Now()
	select {
	case d.wake <- struct{}{}:
	default:
	}
	t := time.NewTimer(discoverWait)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	d.mu.Lock()
	var out []foundDevice
	for dev, f := range d.found {
		if !f.at.Before(start) {
			out = append(out, foundDevice{dev: dev, addr: f.addr})
		}
	}
	d.mu.Unlock()
	slices.SortFunc(out, func(a, b foundDevice) int { return bytes.Compare(a.dev[:], b.dev[:]) })
	return out
}

type foundDevice struct {
	dev  seed.DevicePublic
	addr netip.AddrPort
}

// Stats returns discovery's counters.
func (d *discoverer) Stats() DiscoverStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

// beaconUsers lists every user whose beacons we recognise, with their
// window secret: our own user first, then each friend who gave us theirs
// and is not blocked.
func (a *Agent) beaconUsers() []beaconUser {
	out := []beaconUser{{user: a.dev.Cert.User, window: a.dev.Window[:]}}
	for _, f := range a.book.rosterNow().Friends() {
		if f.Status == roster.StatusBlocked || len(f.Window) == 0 || f.UserID.Equal(a.dev.Cert.User) {
			continue
		}
		out = append(out, beaconUser{user: f.UserID, window: f.Window})
	}
	return out
}

// lan returns the networks beacons are broadcast on and accepted from:
// Config.LAN, or this machine's interface networks.
func (a *Agent) lan() []netip.Prefix {
	if a.cfg.LAN != nil {
		return a.cfg.LAN
	}
	ps := a.lanPrefixes()
	slices.SortFunc(ps, func(x, y netip.Prefix) int {
		if c := x.Addr().Compare(y.Addr()); c != 0 {
			return c
		}
		return x.Bits() - y.Bits()
	})
	return slices.Compact(ps)
}

// onLAN reports whether ip lies in one of lans.
func onLAN(lans []netip.Prefix, ip netip.Addr) bool {
	for _, p := range lans {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
