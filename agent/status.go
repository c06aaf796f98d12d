package agent

import (
	"net/netip"
	"time"

	"github.com/kith-project/kith/internal/control"

	"github.com/kith-project/kith/seed"
)

func (a *Agent) status() control.Status {
	id := a.dev.Identity
	st := control.Status{
		UserID:      a.dev.Cert.User,
		DeviceID:    a.dev.Cert.Device,
		Name:        id.Name,
		Listen:      a.Addr().String(),
		PublicAddrs: []string{},
		Quiet:       a.cfg.Quiet,
		Heartbeat:   a.cfg.Heartbeat.String(),
		Uptime:      a.cfg.Now().Sub(a.started).Round(time.Second).String(),
		Peers:       []control.PeerStatus{},
		NAT:         a.natType(),
		Cluster:     a.clusterView(),
		Relay:       a.relay.status(),
	}
	if msg := a.rosters.revokedSelf(); msg != "" {
		st.Revoked, st.RevokedMessage = true, msg
	}
	for _, ap := range a.presence.PublicAddrs() {
		st.PublicAddrs = append(st.PublicAddrs, ap.String())
	}
	live := map[seed.DevicePublic]control.PeerStatus{}
	for _, ps := range a.presence.Status() {
		v := control.PeerStatus{Online: ps.Online}
		if ps.Addr.IsValid() {
			v.Addr = ps.Addr.String()
		}
		if !ps.LastSeen.IsZero() {
			t := ps.LastSeen.UTC()
			v.LastSeen = &t
		}
		if ps.HaveRTT {
			rtt := float64(ps.RTT.Microseconds()) / 1000
			off := float64(ps.ClockOffset.Microseconds()) / 1000
			v.RTTMillis, v.ClockOffsetMillis = &rtt, &off
		}
		live[ps.Device] = v
	}
	lans := a.lanPrefixes()
	for _, p := range a.book.reachable() {
		v := live[p.DeviceID]
		v.DeviceID, v.UserID, v.Name, v.Kind = p.DeviceID, p.UserID, p.Name, p.Kind
		if v.Addr == "" {
			v.Addr = p.Addr
		}
		if v.LastSeen == nil && !p.LastSeen.IsZero() {
			t := p.LastSeen
			v.LastSeen = &t
		}
		if cur, err := netip.ParseAddrPort(v.Addr); err == nil {
			kind, via := a.paths.of(p.DeviceID, cur, lans)
			v.Path, v.Via = string(kind), via
		}
		st.Peers = append(st.Peers, v)
	}
	return st
}

// onlineSet returns the devices presence counts as online.
func (a *Agent) onlineSet() map[seed.DevicePublic]bool {
	m := map[seed.DevicePublic]bool{}
	for _, ps := range a.presence.Status() {
		if ps.Online {
			m[ps.Device] = true
		}
	}
	return m
}
