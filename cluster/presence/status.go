package presence

import (
	"bytes"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/kith-project/kith/seed"
)

// PeerStatus is what presence knows about one peer.
type PeerStatus struct {
	Device seed.DevicePublic
	Own    bool // another device of this user; else a friend's
	// Addr is the address the book holds.
	Addr netip.AddrPort
	// LastSeen is when the last authenticated packet came (zero: not since
	// this Presence started).
	LastSeen time.Time
	// Online: LastSeen is at most OnlineIntervals·T·n ago, with n peers
	// (each hears from us once per round of n heartbeats), and no two
	// heartbeats sent since went unanswered.
	Online bool
	// RTT is the smoothed round-trip time, ClockOffset the peer's clock
	// minus ours; both valid only if HaveRTT.
	RTT         time.Duration
	ClockOffset time.Duration
	HaveRTT     bool
}

// Stats counts what presence did since New.
type Stats struct {
	HeartbeatsSent uint64 // heartbeats, greetings included
	UpdatesSent    uint64 // address updates
	RepliesSent    uint64
	Accepted       uint64 // datagrams that authenticated and were fresh
	// Unknown counts datagrams from senders the book does not know (or
	// blocks), dropped before any signature check.
	Unknown      uint64
	Malformed    uint64
	BadSignature uint64 // datagrams and records whose signature failed
	Replayed     uint64 // sequence number seen before, dropped unverified
	// Unsynced counts heartbeats whose sequence number lay outside the
	// sender's window (or we had none since we started): a sender that
	// restarted, or a replay. They are answered, believed in nothing, and
	// draw a heartbeat from us whose echoed reply resyncs the window.
	Unsynced uint64
	// Resynced counts windows restarted by an echo-verified reply.
	Resynced uint64
	// Throttled counts datagrams from known senders dropped unverified
	// because the budget for bad signatures was spent (see budget.go).
	Throttled   uint64
	Stale       uint64 // send time outside MaxClockSkew (answered, not believed)
	Unsolicited uint64 // replies to no heartbeat of ours
	// SignatureChecks counts ed25519 verifications, datagrams and records.
	SignatureChecks uint64
	RecordsApplied  uint64
	RecordsIgnored  uint64 // unknown device, not newer, or forged
	STUNAnswered    uint64
	STUNMapped      uint64 // answers to our own STUN requests
	SendErrors      uint64
	// EventsDropped counts events not delivered to a subscriber whose
	// buffer was full (see Subscribe).
	EventsDropped uint64
}

type counters struct {
	hbSent, updSent, repSent, accepted, unknown, malformed, badSig, replayed,
	stale, unsolicited, sigChecks, recApplied, recIgnored, stunAnswered,
	stunMapped, sendErrors, eventsDropped, unsynced, resynced, throttled atomic.Uint64
}

// Status returns every known peer's presence, sorted by device key.
func (p *Presence) Status() []PeerStatus {
	peers := p.cfg.Book.Peers()
	now := p.cfg.Now()
	out := make([]PeerStatus, 0, len(peers))
	p.mu.Lock()
	for _, pi := range peers {
		if isZero(pi.Device) {
			continue
		}
		st := PeerStatus{Device: pi.Device, Own: pi.Own, Addr: pi.Addr}
		if ps, ok := p.peers[pi.Device]; ok {
			st.LastSeen = ps.lastSeen
			st.Online = p.onlineLocked(ps, now, len(peers))
			st.RTT, st.ClockOffset, st.HaveRTT = ps.rtt, ps.offset, ps.haveRTT
		}
		out = append(out, st)
	}
	p.mu.Unlock()
	slices.SortFunc(out, func(a, b PeerStatus) int { return bytes.Compare(a.Device[:], b.Device[:]) })
	return out
}

// Stats returns the counters.
func (p *Presence) Stats() Stats {
	n := &p.n
	return Stats{
		HeartbeatsSent: n.hbSent.Load(), UpdatesSent: n.updSent.Load(), RepliesSent: n.repSent.Load(),
		Accepted: n.accepted.Load(), Unknown: n.unknown.Load(), Malformed: n.malformed.Load(),
		BadSignature: n.badSig.Load(), Replayed: n.replayed.Load(), Stale: n.stale.Load(),
		Unsolicited: n.unsolicited.Load(), SignatureChecks: n.sigChecks.Load(),
		RecordsApplied: n.recApplied.Load(), RecordsIgnored: n.recIgnored.Load(),
		STUNAnswered: n.stunAnswered.Load(), STUNMapped: n.stunMapped.Load(), SendErrors: n.sendErrors.Load(),
		EventsDropped: n.eventsDropped.Load(),
		Unsynced:      n.unsynced.Load(), Resynced: n.resynced.Load(), Throttled: n.throttled.Load(),
	}
}

// short names a device in logs: the first bytes of its public key.

// isZero reports whether device is the zero key, which names no device.
func isZero(device seed.DevicePublic) bool {
	return device.Equal(seed.DevicePublic{})
}
