package natlab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// PortMapping makes the router grant port mappings to its LAN over
// NAT-PMP (RFC 6886), by running Debian's miniupnpd in its namespace, as
// many home routers do. A mapping's inbound packets are let in (they are
// DNATed, "ct status dnat"). miniupnpd refuses to map on a WAN address of
// a reserved range, which 198.18.0.0/15 is, so such a router's WAN is in
// 100.0.0.0/24 instead, on the same internet bridge (an isolated lab: no
// packet of it reaches a real network). The test skips if miniupnpd is not
// installed.
func PortMapping() RouterOption { return func(c *routerConfig) { c.portmap = true } }

// mappable is the internet's second subnet, for routers with PortMapping.
var mappable = netip.MustParsePrefix("100.0.0.0/24")

var miniupnpdPath string

// requireMiniupnpd skips t unless miniupnpd is installed.
func requireMiniupnpd(t testing.TB) {
	t.Helper()
	p, err := exec.LookPath("miniupnpd")
	if err != nil {
		t.Skip("NAT lab: a router with port mapping needs miniupnpd (apt-get install miniupnpd); skipping this test")
	}
	miniupnpdPath = p
}

// wanAddr returns a fresh WAN address for r: in mappable for a router
// with port mapping, else on the internet's main subnet.
func (l *Lab) wanAddr(r *Router) netip.Addr {
	if !r.PortMapping {
		return l.inetAddr(true)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.nextMap
	l.nextMap++
	if n > 250 {
		l.t.Fatalf("natlab: the lab's mappable subnet ran out of addresses")
	}
	return netip.AddrFrom4([4]byte{100, 0, 0, byte(n)})
}

// inetRoutes gives a namespace on the internet bridge (through dev) its
// routes: both subnets on the link, and the sink as default gateway. For
// one whose address is in mappable, the main subnet is the one added.
func (l *Lab) inetRoutes(ns, dev string, inMappable bool) {
	l.t.Helper()
	other := mappable.String()
	if inMappable {
		other = netip.PrefixFrom(sink, 24).Masked().String()
	}
	l.ip("-n", ns, "route", "replace", other, "dev", dev)
	l.ip("-n", ns, "route", "replace", "default", "via", sink.String(), "dev", dev)
}

// miniupnpdTables is the nftables skeleton miniupnpd's nftables backend
// fills (what Debian's /etc/miniupnpd/nft_init.sh makes, which needs
// iptables besides): the chains it adds its filter and DNAT rules to.
const miniupnpdTables = `
table inet filter {
	chain forward {
		type filter hook forward priority 0; policy accept;
		jump miniupnpd
	}
	chain miniupnpd {
	}
	chain prerouting {
		type nat hook prerouting priority -100; policy accept;
		jump prerouting_miniupnpd
	}
	chain postrouting {
		type nat hook postrouting priority 100; policy accept;
		jump postrouting_miniupnpd
	}
	chain prerouting_miniupnpd {
	}
	chain postrouting_miniupnpd {
	}
}
`

// startMiniupnpd runs miniupnpd in r's namespace, NAT-PMP only, for the
// rest of the test.
func (r *Router) startMiniupnpd() {
	l := r.lab
	l.t.Helper()
	l.exec(r.NS, []byte(miniupnpdTables), nftPath, "-f", "-")
	dir, err := os.MkdirTemp("", "natlab-miniupnpd-")
	if err != nil {
		l.t.Fatal(err)
	}
	conf := fmt.Sprintf(`ext_ifname=wan
listening_ip=lan
enable_natpmp=yes
enable_upnp=no
secure_mode=yes
lease_file=%s
uuid=3c8f4e5a-6b7c-4d8e-9f00-112233445566
allow 1024-65535 %s 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
`, filepath.Join(dir, "leases"), r.LAN)
	cf := filepath.Join(dir, "miniupnpd.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		l.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := r.command(ctx, miniupnpdPath, "-f", cf, "-d", "-P", filepath.Join(dir, "pid"))
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	log := &lockedLog{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		cancel()
		l.t.Fatalf("natlab: starting miniupnpd in %s: %v", r.Name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	l.t.Cleanup(func() {
		cancel()
		<-done
		if l.t.Failed() {
			l.t.Logf("miniupnpd of %s:\n%s", r.Name, log.String())
		}
		os.RemoveAll(dir)
	})
}
