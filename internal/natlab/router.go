package natlab

import (
	"fmt"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// Router is a home router: a namespace with a WAN interface ("wan") on the
// internet and a LAN bridge ("lan") behind it, doing NAT between them.
type Router struct {
	lab *Lab
	// Name is the router's name in the test; NS its namespace.
	Name, NS string
	// LAN is the router's LAN prefix, 10.0.N.0/24; the router is .1.
	LAN netip.Prefix
	// Symmetric reports whether the router maps each flow to a random
	// port (masquerade random).
	Symmetric bool
	// PortMapping reports whether the router runs miniupnpd, granting
	// NAT-PMP port mappings to its LAN.
	PortMapping bool

	mu    sync.Mutex
	wan   netip.Addr
	hosts int // hosts behind it so far
}

// RouterOption changes how [Lab.Router] builds a router.
type RouterOption func(*routerConfig)

type routerConfig struct {
	symmetric         bool
	portmap           bool
	unreplied, stream time.Duration
}

// Symmetric makes the router map every flow to a port of its own choosing
// (nftables' "masquerade random"): two destinations see the same host's
// socket at two different ports, the NAT that hole punching cannot cross.
func Symmetric() RouterOption { return func(c *routerConfig) { c.symmetric = true } }

// UDPTimeouts sets the router's conntrack UDP timeouts: unreplied for a
// flow that has seen no reply yet (nf_conntrack_udp_timeout), stream for
// one that has (nf_conntrack_udp_timeout_stream). Linux's defaults are
// 30 s and 120 s. A zero leaves that one at the default.
func UDPTimeouts(unreplied, stream time.Duration) RouterOption {
	return func(c *routerConfig) { c.unreplied, c.stream = unreplied, stream }
}

// ruleset is a router's nftables rules: masquerade what leaves the WAN,
// and let in from the WAN only what belongs to a flow conntrack knows.
const ruleset = `
table ip natlab {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "wan" masquerade%s
	}
	chain forward {
		type filter hook forward priority filter; policy accept;
		ct state established,related accept
		ct status dnat accept
		iifname "wan" drop
	}
	chain input {
		type filter hook input priority filter; policy accept;
		iifname "wan" ct state established,related accept
		iifname "wan" drop
	}
}
`

// Router adds a home router with a fresh WAN address on the internet and
// an empty LAN.
func (l *Lab) Router(name string, opts ...RouterOption) *Router {
	l.t.Helper()
	var c routerConfig
	for _, o := range opts {
		o(&c)
	}
	if c.portmap {
		requireMiniupnpd(l.t)
	}
	ns := l.netns(name)
	l.mu.Lock()
	l.routers = append(l.routers, nil)
	n := len(l.routers)
	l.mu.Unlock()
	if n > 250 {
		l.t.Fatal("natlab: too many routers in one lab")
	}
	r := &Router{
		lab: l, Name: name, NS: ns, Symmetric: c.symmetric, PortMapping: c.portmap,
		LAN: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(n), 0}), 24),
	}
	r.wan = l.wanAddr(r)
	l.mu.Lock()
	l.routers[n-1] = r
	l.mu.Unlock()

	l.inetPort(ns, "wan")
	l.ip("-n", ns, "addr", "add", r.wan.String()+"/24", "dev", "wan")
	l.ip("-n", ns, "link", "set", "wan", "up")
	l.inetRoutes(ns, "wan", c.portmap)
	l.ip("-n", ns, "link", "add", "lan", "type", "bridge", "mcast_snooping", "0")
	l.ip("-n", ns, "addr", "add", r.gateway().String()+"/24", "dev", "lan")
	l.ip("-n", ns, "link", "set", "lan", "up")
	if err := sysctl(ns, "net/ipv4/ip_forward", "1"); err != nil {
		l.t.Fatalf("natlab: %v", err)
	}
	random := ""
	if c.symmetric {
		random = " random"
	}
	l.exec(ns, fmt.Appendf(nil, ruleset, random), nftPath, "-f", "-")
	if c.portmap {
		r.startMiniupnpd()
	}
	if err := sysctl(ns, "net/netfilter/nf_conntrack_acct", "1"); err != nil {
		l.t.Fatalf("natlab: %v", err)
	}
	if c.unreplied != 0 || c.stream != 0 {
		if err := r.SetUDPTimeouts(c.unreplied, c.stream); err != nil {
			l.t.Fatal(err)
		}
	}
	return r
}

// gateway is the router's LAN address, 10.0.N.1.
func (r *Router) gateway() netip.Addr { return r.LAN.Addr().Next() }

// WAN returns the router's current address on the internet. It may be
// called from any goroutine.
func (r *Router) WAN() netip.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.wan
}

// SetUDPTimeouts sets the router's conntrack UDP timeouts (see
// [UDPTimeouts]); a zero leaves that one as it is. The values are whole
// seconds, at least 1. They apply to flows as their next packet passes.
// It may be called from any goroutine.
func (r *Router) SetUDPTimeouts(unreplied, stream time.Duration) error {
	for _, s := range []struct {
		key string
		d   time.Duration
	}{
		{"net/netfilter/nf_conntrack_udp_timeout", unreplied},
		{"net/netfilter/nf_conntrack_udp_timeout_stream", stream},
	} {
		if s.d == 0 {
			continue
		}
		secs := int(s.d.Round(time.Second) / time.Second)
		if secs < 1 {
			secs = 1
		}
		if err := sysctl(r.NS, s.key, strconv.Itoa(secs)); err != nil {
			return fmt.Errorf("natlab: router %s: %w", r.Name, err)
		}
	}
	return nil
}

// FlushConntrack forgets every flow the router knows, so that every
// mapping is made anew and every hole it had opened closes.
func (r *Router) FlushConntrack() {
	r.lab.t.Helper()
	flush(r.lab, r.NS)
}

func flush(l *Lab, ns string) {
	l.t.Helper()
	// conntrack -F exits 0 with an empty table too.
	l.exec(ns, nil, ctPath, "-F")
}

// Renumber gives router r a fresh WAN address, as a new lease from the
// ISP does, and flushes its conntrack table: every mapping through it is
// gone, and packets to the old address go nowhere. It returns the new
// address.
func (l *Lab) Renumber(r *Router) netip.Addr {
	l.t.Helper()
	old := r.WAN()
	a := l.wanAddr(r)
	l.ip("-n", r.NS, "addr", "del", old.String()+"/24", "dev", "wan")
	l.ip("-n", r.NS, "addr", "add", a.String()+"/24", "dev", "wan")
	l.inetRoutes(r.NS, "wan", r.PortMapping)
	r.mu.Lock()
	r.wan = a
	r.mu.Unlock()
	flush(l, r.NS)
	return a
}

// Host adds a host behind router r, on its LAN at the next free address,
// with r as its default gateway.
func (l *Lab) Host(name string, r *Router) *Host {
	l.t.Helper()
	ns := l.netns(name)
	r.mu.Lock()
	r.hosts++
	k := r.hosts
	r.mu.Unlock()
	if k > 250 {
		l.t.Fatal("natlab: too many hosts behind one router")
	}
	a := r.LAN.Addr().As4()
	a[3] = byte(k + 1)
	addr := netip.AddrFrom4(a)
	port := "h" + strconv.Itoa(k)
	l.ip("link", "add", port, "netns", r.NS, "type", "veth", "peer", "name", "eth0", "netns", ns)
	l.ip("-n", r.NS, "link", "set", port, "master", "lan")
	l.ip("-n", r.NS, "link", "set", port, "up")
	l.ip("-n", ns, "addr", "add", addr.String()+"/24", "dev", "eth0")
	l.ip("-n", ns, "link", "set", "eth0", "up")
	l.ip("-n", ns, "route", "add", "default", "via", r.gateway().String())
	return &Host{lab: l, Name: name, NS: ns, Addr: addr, Router: r}
}
