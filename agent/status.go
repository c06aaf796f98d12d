package agent

import (
	"time"

	"github.com/kith-project/kith/seed"
)

// Status is the answer to GET /v1/status ("kith status").
type Status struct {
	UserID      string       `json:"user_id"`
	DeviceID    string       `json:"device_id"`
	Name        string       `json:"name"`
	Listen      string       `json:"listen"`
	PublicAddrs []string     `json:"public_addrs"`
	Quiet       bool         `json:"quiet"`
	Heartbeat   string       `json:"heartbeat"`
	Uptime      string       `json:"uptime"`
	Peers       []PeerStatus `json:"peers"`
	Cluster     ClusterView  `json:"cluster"`
}

// PeerStatus is one known device in "kith status".
type PeerStatus struct {
	DeviceID string     `json:"device_id"`
	UserID   string     `json:"user_id"`
	Name     string     `json:"name"`
	Kind     string     `json:"kind"`
	Addr     string     `json:"addr"`
	LastSeen *time.Time `json:"last_seen"`
	Online   bool       `json:"online"`
	// RTTMillis and ClockOffsetMillis are null until a heartbeat reply
	// measured them.
	RTTMillis         *float64 `json:"rtt_ms"`
	ClockOffsetMillis *float64 `json:"clock_offset_ms"`
}

// ClusterView is the own cluster's state. Until the own cluster runs Raft
// (a later stage), a device reports itself as a standalone voter.
type ClusterView struct {
	State     string   `json:"state"`
	Leader    string   `json:"leader"`
	Voters    []string `json:"voters"`
	Nonvoters []string `json:"nonvoters"`
}

func (a *Agent) status() Status {
	id := a.dev.Identity
	st := Status{
		UserID:      id.UserID,
		DeviceID:    id.DeviceID,
		Name:        id.Name,
		Listen:      a.Addr().String(),
		PublicAddrs: []string{},
		Quiet:       a.cfg.Quiet,
		Heartbeat:   a.cfg.Heartbeat.String(),
		Uptime:      a.cfg.Now().Sub(a.started).Round(time.Second).String(),
		Peers:       []PeerStatus{},
		Cluster:     ClusterView{State: "standalone", Leader: id.DeviceID, Voters: []string{id.DeviceID}, Nonvoters: []string{}},
	}
	for _, ap := range a.presence.PublicAddrs() {
		st.PublicAddrs = append(st.PublicAddrs, ap.String())
	}
	live := map[string]PeerStatus{}
	for _, ps := range a.presence.Status() {
		v := PeerStatus{Online: ps.Online}
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
		live[ps.Device.ID()] = v
	}
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
		st.Peers = append(st.Peers, v)
	}
	return st
}

// onlineSet returns the device IDs presence counts as online.
func (a *Agent) onlineSet() map[string]bool {
	m := map[string]bool{}
	for _, ps := range a.presence.Status() {
		if ps.Online {
			m[ps.Device.ID()] = true
		}
	}
	return m
}

func pubBytes(p seed.DevicePublic) []byte { return p[:] }
