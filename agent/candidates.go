package agent

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/kith-project/kith/seed"
)

// Candidates are the addresses at which this device may be reachable,
// which an introducer passes to a peer for simultaneous open (punch.go):
//
//   - a port mapping from the home router (NAT-PMP, PCP or UPnP), when
//     there is one (mappedAddr);
//   - the public addresses presence confirmed (two sources agree);
//   - what each peer reports seeing us at (presence.Reported): behind a
//     port-preserving NAT they agree, behind a symmetric one each sees
//     another port, and none of those is worth much to a third device;
//   - the interface addresses (localAddrs), for a peer on the same LAN.
//
// The introducer adds the address it sees us at, which the set does not
// need to carry. The set is signed by this device's key for one
// recipient device and numbered by the signing time, so that neither the
// introducer nor anyone on the way can change it, hand it to another
// device, or replay an old one.

// maxCandidates bounds a candidate set.
const maxCandidates = 8

// maxCandidateAge is how far a candidate set's signing time may be from
// the receiver's clock: introductions are answered within seconds, so an
// older set is a replay (or a clock badly off, and then punching at an
// agreed instant fails anyway).
const maxCandidateAge = 2 * time.Minute

// candidatesWire is the candidate set's wire version.
const candidatesWire = 1

// candidatesContext is signed before the set's bytes.
const candidatesContext = "kith/v1/candidates\x00"

// A candidate set on the wire, 139 + 18·n bytes, n in 1..8:
//
//	 0   1  wire version, 1
//	 1  32  signer device public key
//	33  32  recipient device public key
//	65   8  signing time, Unix nanoseconds by the signer's clock
//	73   1  n
//	74  18n addresses: 16 bytes of IPv6 (IPv4-mapped for IPv4), 2 of port
//	..  64  signature by the signer over candidatesContext || bytes before
const (
	candHeader  = 74
	candAddrLen = 18
	candSigLen  = ed25519.SignatureSize
)

// candidateSet is a decoded candidate set.
type candidateSet struct {
	From, To seed.DevicePublic
	At       time.Time
	Addrs    []netip.AddrPort
	signed   []byte // the bytes the signature covers, context excluded
	sig      []byte
}

// errCandidates wraps every reason a candidate set is refused.
var errCandidates = errors.New("candidate set refused")

// mappedAddr is the port mapping the home router gave this device's port
// (NAT-PMP or UPnP IGD, internal/portmap), if one is live.
func (a *Agent) mappedAddr() (netip.AddrPort, bool) { return a.portMapped() }

// candidates returns this device's candidate addresses, best first, at
// most maxCandidates, each a usable address (specified, no zone, a port).
func (a *Agent) candidates() []netip.AddrPort {
	var out []netip.AddrPort
	add := func(ap netip.AddrPort) {
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		if !usableAddr(ap) || slices.Contains(out, ap) {
			return
		}
		out = append(out, ap)
	}
	if m, ok := a.mappedAddr(); ok {
		add(m)
	}
	for _, ap := range a.presence.PublicAddrs() {
		add(ap)
	}
	reported := a.presence.Reported()
	rep := make([]netip.AddrPort, 0, len(reported))
	for _, ap := range reported {
		rep = append(rep, ap)
	}
	slices.SortFunc(rep, netip.AddrPort.Compare)
	for _, ap := range rep {
		add(ap)
	}
	for _, ap := range a.localAddrs() {
		add(ap)
	}
	if len(out) > maxCandidates {
		out = out[:maxCandidates]
	}
	return out
}

// usableAddr reports whether ap can be sent to across a network.
func usableAddr(ap netip.AddrPort) bool {
	ip := ap.Addr()
	return ip.IsValid() && !ip.IsUnspecified() && !ip.IsMulticast() && ip.Zone() == "" && ap.Port() != 0
}

// behindNAT reports whether some peer sees us at an address that is not
// one of our interfaces'.
func (a *Agent) behindNAT() bool { return len(a.presence.Reported()) > 0 }

// signCandidates signs addrs (at most maxCandidates are kept) for the
// device to, at the time at.
func signCandidates(key ed25519.PrivateKey, to seed.DevicePublic, at time.Time, addrs []netip.AddrPort) []byte {
	if len(addrs) > maxCandidates {
		addrs = addrs[:maxCandidates]
	}
	b := make([]byte, 0, candHeader+candAddrLen*len(addrs)+candSigLen)
	b = append(b, candidatesWire)
	b = append(b, key.Public().(ed25519.PublicKey)...)
	b = append(b, to[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(at.UnixNano()))
	b = append(b, byte(len(addrs)))
	for _, ap := range addrs {
		ip := ap.Addr().As16()
		b = append(b, ip[:]...)
		b = binary.BigEndian.AppendUint16(b, ap.Port())
	}
	sig := ed25519.Sign(key, append([]byte(candidatesContext), b...))
	return append(b, sig...)
}

// decodeCandidates parses a candidate set without checking its signature
// (verify does).
func decodeCandidates(b []byte) (candidateSet, error) {
	var c candidateSet
	if len(b) < candHeader+candAddrLen+candSigLen {
		return c, fmt.Errorf("%w: %d bytes is too short", errCandidates, len(b))
	}
	if b[0] != candidatesWire {
		return c, fmt.Errorf("%w: wire version %d", errCandidates, b[0])
	}
	n := int(b[73])
	if n == 0 || n > maxCandidates {
		return c, fmt.Errorf("%w: %d addresses, want 1..%d", errCandidates, n, maxCandidates)
	}
	if len(b) != candHeader+candAddrLen*n+candSigLen {
		return c, fmt.Errorf("%w: %d bytes for %d addresses", errCandidates, len(b), n)
	}
	copy(c.From[:], b[1:33])
	copy(c.To[:], b[33:65])
	ns := int64(binary.BigEndian.Uint64(b[65:73]))
	if ns <= 0 {
		return c, fmt.Errorf("%w: no signing time", errCandidates)
	}
	c.At = time.Unix(0, ns)
	for i := range n {
		o := candHeader + candAddrLen*i
		ip := netip.AddrFrom16([16]byte(b[o : o+16])).Unmap()
		ap := netip.AddrPortFrom(ip, binary.BigEndian.Uint16(b[o+16:o+18]))
		if !usableAddr(ap) {
			return c, fmt.Errorf("%w: address %d is not usable", errCandidates, i)
		}
		c.Addrs = append(c.Addrs, ap)
	}
	end := len(b) - candSigLen
	c.signed, c.sig = b[:end], b[end:]
	return c, nil
}

// verify checks the set's signature by its signer.
func (c candidateSet) verify() bool {
	return c.From.Verify(append([]byte(candidatesContext), c.signed...), c.sig)
}

// candidateGuard refuses candidate sets that are not for us, forged,
// replayed or stale: a set is taken once, and only within
// maxCandidateAge of our clock. Two introductions of the same pair may
// cross (both sides ask at once), so a set older than one already taken
// is not a replay as long as it was never taken itself. It remembers the
// signing times taken per signer, for maxCandidateAge (the age bound
// covers a restart). Its methods are safe for concurrent use.
type candidateGuard struct {
	mu   sync.Mutex
	seen map[seed.DevicePublic][]time.Time // guarded by mu
}

// Bounds of the guard; each signer is a known device, so these are only
// backstops.
const (
	maxGuarded     = 4096
	maxSeenPerPeer = 32
)

// accept decodes and checks the set b, which must come from the device
// from and be for us (self), at now by our clock.
func (g *candidateGuard) accept(b []byte, from, self seed.DevicePublic, now time.Time) (candidateSet, error) {
	c, err := decodeCandidates(b)
	if err != nil {
		return c, err
	}
	if !c.From.Equal(from) {
		return c, fmt.Errorf("%w: signed by another device than the one introduced", errCandidates)
	}
	if !c.To.Equal(self) {
		return c, fmt.Errorf("%w: made for another device", errCandidates)
	}
	if age := now.Sub(c.At); age > maxCandidateAge || age < -maxCandidateAge {
		return c, fmt.Errorf("%w: signed %v from our clock", errCandidates, age.Round(time.Second))
	}
	if !c.verify() {
		return c, fmt.Errorf("%w: bad signature", errCandidates)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.seen == nil {
		g.seen = map[seed.DevicePublic][]time.Time{}
	}
	fresh := func(t time.Time) bool { return now.Sub(t) <= 2*maxCandidateAge }
	kept := slices.DeleteFunc(g.seen[from], func(t time.Time) bool { return !fresh(t) })
	if slices.ContainsFunc(kept, c.At.Equal) {
		g.seen[from] = kept
		return c, fmt.Errorf("%w: replayed (taken before)", errCandidates)
	}
	if len(kept) >= maxSeenPerPeer {
		kept = kept[1:]
	}
	if len(g.seen) >= maxGuarded {
		for d, ts := range g.seen {
			if len(ts) == 0 || !fresh(ts[len(ts)-1]) {
				delete(g.seen, d)
			}
		}
	}
	g.seen[from] = append(kept, c.At)
	return c, nil
}
