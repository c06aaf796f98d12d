package agent

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/roster"
	"github.com/kith-project/kith/seed"
)

// netcheckTimeout bounds each device's probe in "kith netcheck".
const netcheckTimeout = 2 * time.Second

// maxNetcheckProbes bounds the probes "kith netcheck" has in flight.
const maxNetcheckProbes = 32

var _ control.NetBackend = controlAPI{}

func (c controlAPI) Discover(ctx context.Context) ([]control.Discovered, error) {
	return c.a.discover(ctx), nil
}

func (c controlAPI) Netcheck(ctx context.Context) (control.Netcheck, error) {
	return c.a.netcheck(ctx), nil
}

// discover sends a beacon round and lists who answered (discover.go).
func (a *Agent) discover(ctx context.Context) []control.Discovered {
	out := []control.Discovered{}
	for _, f := range a.disc.discover(ctx) {
		p, ok := a.book.peerFor(f.dev)
		if !ok {
			continue // removed meanwhile
		}
		out = append(out, control.Discovered{DeviceID: f.dev, UserID: p.UserID, Name: p.Name, Kind: p.Kind, Addr: f.addr.String()})
	}
	return out
}

// netcheck reports this device's candidates, NAT type and port mapping,
// and probes every own and friend's device now, in parallel, each for at
// most netcheckTimeout.
func (a *Agent) netcheck(ctx context.Context) control.Netcheck {
	nc := control.Netcheck{
		Candidates:  a.candidateViews(),
		NATType:     a.natType(),
		PortMapping: a.portMapping(),
		Friends:     []control.FriendReach{},
		OwnDevices:  []control.DeviceReach{},
	}
	fs, ps := a.book.snapshot()
	ps = slices.DeleteFunc(ps, func(p Peer) bool {
		_, ok := a.book.rosterNow().Reachable(p.DeviceID)
		return !ok || p.DeviceID.Equal(a.dev.Cert.Device)
	})
	reach := a.probeAll(ctx, ps)
	for _, p := range ps {
		if p.Kind == roster.KindOwn {
			nc.OwnDevices = append(nc.OwnDevices, reach[p.DeviceID])
		}
	}
	for _, f := range fs {
		if f.Status == roster.StatusBlocked {
			continue
		}
		fr := control.FriendReach{UserID: f.UserID, Name: f.Name, Devices: []control.DeviceReach{}}
		for _, p := range ps {
			if !p.UserID.Equal(f.UserID) {
				continue
			}
			r := reach[p.DeviceID]
			fr.Devices = append(fr.Devices, r)
			if r.Reachable && !fr.Reachable {
				fr.Reachable, fr.Path = true, r.Path
			}
		}
		nc.Friends = append(nc.Friends, fr)
	}
	return nc
}

// probeAll sends a heartbeat to each of ps at its book address and waits
// for the replies, at most netcheckTimeout for each.
func (a *Agent) probeAll(ctx context.Context, ps []Peer) map[seed.DevicePublic]control.DeviceReach {
	var (
		mu  sync.Mutex
		out = map[seed.DevicePublic]control.DeviceReach{}
		wg  sync.WaitGroup
		sem = make(chan struct{}, maxNetcheckProbes)
	)
	lans := a.lanPrefixes()
	for _, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := control.DeviceReach{DeviceID: p.DeviceID, Name: p.Name, Addr: p.Addr}
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
				r.Error = ctx.Err().Error()
				mu.Lock()
				out[p.DeviceID] = r
				mu.Unlock()
				return
			}
			pctx, cancel := context.WithTimeout(ctx, netcheckTimeout)
			defer cancel()
			res, err := a.presence.Probe(pctx, p.DeviceID, netip.AddrPort{})
			if err != nil {
				r.Error = fmt.Sprintf("no answer within %v", netcheckTimeout)
				if !validPeerAddr(p.Addr) {
					r.Error = "no known address"
				}
			} else {
				r.Reachable = true
				r.Addr = res.From.String()
				ms := float64(res.RTT.Microseconds()) / 1000
				r.RTTMillis = &ms
				if res.Seen.IsValid() {
					r.Seen = res.Seen.String()
				}
				kind, via := a.paths.of(p.DeviceID, res.From, lans)
				r.Path, r.Via = string(kind), via
			}
			mu.Lock()
			out[p.DeviceID] = r
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

func validPeerAddr(s string) bool {
	ap, err := netip.ParseAddrPort(s)
	return err == nil && ap.IsValid() && !ap.Addr().IsUnspecified()
}

// candidateViews lists this device's addresses: its interfaces', the
// reflexive ones sources reported (with who reported them), and the
// router's mapping.
func (a *Agent) candidateViews() []control.Candidate {
	out := []control.Candidate{}
	ifname := interfaceNames()
	locals := a.localAddrs()
	for _, l := range locals {
		out = append(out, control.Candidate{Kind: control.CandidateLocal, Addr: l.String(), Interface: ifname(l.Addr())})
	}
	own := a.ownAddrs()
	bySrc := map[netip.AddrPort][]string{}
	var order []netip.AddrPort
	for _, r := range a.presence.Reflexives() {
		if slices.Contains(own, r.Addr) {
			continue
		}
		if _, ok := bySrc[r.Addr]; !ok {
			order = append(order, r.Addr)
		}
		src := "stun " + r.Server.String()
		if !r.Server.IsValid() {
			src = r.Device.Short()
			if p, ok := a.book.peerFor(r.Device); ok && p.Name != "" {
				src = p.Name + " " + r.Device.Short()
			}
		}
		bySrc[r.Addr] = append(bySrc[r.Addr], src)
	}
	slices.SortFunc(order, netip.AddrPort.Compare)
	for _, ad := range order {
		out = append(out, control.Candidate{Kind: control.CandidateReflexive, Addr: ad.String(), Sources: bySrc[ad]})
	}
	if ext, ok := a.portMapped(); ok {
		out = append(out, control.Candidate{Kind: control.CandidateMapped, Addr: ext.String()})
	}
	return out
}

// interfaceNames returns a function naming the interface an address is
// on: the one with that address, else the one whose network holds it
// (127.0.0.2 is on lo, whose address is 127.0.0.1/8).
func interfaceNames() func(netip.Addr) string {
	type ifnet struct {
		name string
		pfx  netip.Prefix
	}
	var nets []ifnet
	if ifs, err := net.Interfaces(); err == nil {
		for _, ifc := range ifs {
			addrs, err := ifc.Addrs()
			if err != nil {
				continue
			}
			for _, ad := range addrs {
				if p, err := netip.ParsePrefix(ad.String()); err == nil {
					nets = append(nets, ifnet{ifc.Name, netip.PrefixFrom(p.Addr().Unmap(), p.Bits())})
				}
			}
		}
	}
	return func(ip netip.Addr) string {
		for _, n := range nets {
			if n.pfx.Addr() == ip {
				return n.name
			}
		}
		for _, n := range nets {
			if n.pfx.Contains(ip) {
				return n.name
			}
		}
		return ""
	}
}
