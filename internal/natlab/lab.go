package natlab

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Tool paths, looked up by Require.
var (
	requireOnce sync.Once
	requireMsg  string // empty when the lab can run
	ipPath      string
	nftPath     string
	ctPath      string
)

// labCount numbers the labs of this process.
var labCount atomic.Int64

// Require skips t, with a message naming what is missing, unless this
// machine can build labs: the process runs as root, ip (iproute2), nft
// (nftables) and conntrack (conntrack-tools) are installed, and a network
// namespace with an nftables table in it can be made.
func Require(t testing.TB) {
	t.Helper()
	requireOnce.Do(func() { requireMsg = check() })
	if requireMsg != "" {
		t.Skip("NAT lab: " + requireMsg + "; skipping this network-namespace test")
	}
}

func check() string {
	if os.Geteuid() != 0 {
		return "network namespaces need root (run go test as root)"
	}
	var err error
	if ipPath, err = exec.LookPath("ip"); err != nil {
		return "ip is not installed (apt-get install iproute2)"
	}
	if nftPath, err = exec.LookPath("nft"); err != nil {
		return "nft is not installed (apt-get install nftables)"
	}
	if ctPath, err = exec.LookPath("conntrack"); err != nil {
		return "conntrack is not installed (apt-get install conntrack)"
	}
	removeStale()
	ns := fmt.Sprintf("klprobe%d", os.Getpid())
	if out, err := run(ipPath, "netns", "add", ns); err != nil {
		return fmt.Sprintf("network namespaces are unsupported here (ip netns add: %v: %s)", err, out)
	}
	defer run(ipPath, "netns", "del", ns)
	if out, err := runIn(nil, ipPath, "netns", "exec", ns, nftPath, "add", "table", "ip", "probe"); err != nil {
		return fmt.Sprintf("nftables does not work in a namespace (nft add table: %v: %s)", err, out)
	}
	return ""
}

// removeStale deletes the namespaces of labs whose test process is gone
// (killed before its cleanups ran), and what still runs in them: their
// names are kl<pid>-…, and no process <pid> exists.
func removeStale() {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		rest, ok := strings.CutPrefix(name, "kl")
		if !ok {
			continue
		}
		digits, _, ok := strings.Cut(strings.TrimPrefix(rest, "probe"), "-")
		if strings.HasPrefix(rest, "probe") {
			digits, ok = strings.TrimPrefix(rest, "probe"), true
		}
		pid, err := strconv.Atoi(digits)
		if !ok || err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); err == nil || err == syscall.EPERM {
			continue // its process lives
		}
		killAll(name)
		run(ipPath, "netns", "del", name)
	}
}

// run runs a command and returns its combined output and error.
func run(name string, args ...string) (string, error) { return runIn(nil, name, args...) }

// runIn runs a command with stdin and returns its combined output.
func runIn(stdin []byte, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// Lab is one test's set of namespaces. Make it with [New]; its methods
// fail the test on any error, and may be called from the test's
// goroutine only, except the methods of its Hosts and Routers that say
// otherwise.
type Lab struct {
	t      testing.TB
	prefix string // of every namespace name
	inet   string // the internet namespace

	mu       sync.Mutex
	nextWAN  int // last octet of the next internet address
	nextPub  int
	nextMap  int // last octet of the next address in mappable
	routers  []*Router
	spaces   []string // every namespace, in creation order
	ifaceSeq int      // numbers the internet bridge's ports
}

// New builds an empty lab, the internet namespace only, and registers
// its removal with t.Cleanup. It calls Require first.
func New(t testing.TB) *Lab {
	t.Helper()
	Require(t)
	l := &Lab{
		t:       t,
		prefix:  fmt.Sprintf("kl%d-%d-", os.Getpid(), labCount.Add(1)),
		nextWAN: 1,
		nextPub: 100,
		nextMap: 1,
	}
	t.Cleanup(l.cleanup)
	l.inet = l.netns("inet")
	l.ip("-n", l.inet, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
	l.ip("-n", l.inet, "addr", "add", sink.String()+"/24", "dev", "br0")
	l.ip("-n", l.inet, "link", "set", "br0", "up")
	l.ip("-n", l.inet, "route", "add", mappable.String(), "dev", "br0")
	return l
}

// sink is the internet namespace's own address, every public host's and
// router's default gateway: "the rest of the internet". It forwards
// nothing (a new namespace does not), so a packet to an address nobody in
// the lab has, such as a private address from another LAN, vanishes
// without an answer, as it does on the real internet, instead of failing
// at once with "network unreachable".
var sink = netip.AddrFrom4([4]byte{198, 18, 0, 254})

// Prefix is the beginning of the names of this lab's namespaces.
func (l *Lab) Prefix() string { return l.prefix }

// netns makes a namespace named prefix+name with its loopback up and
// IPv6 off (so that no link-local address or duplicate-address detection
// adds noise), and returns its full name.
func (l *Lab) netns(name string) string {
	l.t.Helper()
	ns := l.prefix + name
	l.ip("netns", "add", ns)
	l.mu.Lock()
	l.spaces = append(l.spaces, ns)
	l.mu.Unlock()
	l.ip("-n", ns, "link", "set", "lo", "up")
	for _, k := range []string{"net/ipv6/conf/all/disable_ipv6", "net/ipv6/conf/default/disable_ipv6"} {
		if err := sysctl(ns, k, "1"); err != nil {
			l.t.Fatalf("natlab: %v", err)
		}
	}
	return ns
}

// ip runs ip with args and fails the test if it fails.
func (l *Lab) ip(args ...string) {
	l.t.Helper()
	if out, err := run(ipPath, args...); err != nil {
		l.t.Fatalf("natlab: ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// exec runs a program inside ns and fails the test if it fails.
func (l *Lab) exec(ns string, stdin []byte, name string, args ...string) {
	l.t.Helper()
	argv := append([]string{"netns", "exec", ns, name}, args...)
	if out, err := runIn(stdin, ipPath, argv...); err != nil {
		l.t.Fatalf("natlab: in %s: %s %s: %v: %s", ns, name, strings.Join(args, " "), err, out)
	}
}

// inetAddr returns a fresh address on the internet, for a router's WAN
// (wan true) or a public host.
func (l *Lab) inetAddr(wan bool) netip.Addr {
	l.mu.Lock()
	defer l.mu.Unlock()
	var n int
	if wan {
		n = l.nextWAN
		l.nextWAN++
		if l.nextWAN == 100 {
			l.nextWAN = 200 // public hosts have 100–199, the sink 254
		}
	} else {
		n = l.nextPub
		l.nextPub++
	}
	if n >= 254 || (!wan && n >= 200) {
		l.t.Fatalf("natlab: the lab's internet ran out of addresses")
	}
	return netip.AddrFrom4([4]byte{198, 18, 0, byte(n)})
}

// inetPort makes a veth pair from the internet bridge into ns, named dev
// inside ns, its other end a port of the bridge.
func (l *Lab) inetPort(ns, dev string) {
	l.t.Helper()
	l.mu.Lock()
	l.ifaceSeq++
	port := "p" + strconv.Itoa(l.ifaceSeq)
	l.mu.Unlock()
	l.ip("link", "add", port, "netns", l.inet, "type", "veth", "peer", "name", dev, "netns", ns)
	l.ip("-n", l.inet, "link", "set", port, "master", "br0")
	l.ip("-n", l.inet, "link", "set", port, "up")
}

// Public adds a host on the internet itself, with a public address of
// its own and nothing in front of it.
func (l *Lab) Public(name string) *Host {
	l.t.Helper()
	ns := l.netns(name)
	a := l.inetAddr(false)
	l.inetPort(ns, "eth0")
	l.ip("-n", ns, "addr", "add", a.String()+"/24", "dev", "eth0")
	l.ip("-n", ns, "link", "set", "eth0", "up")
	l.inetRoutes(ns, "eth0", false)
	return &Host{lab: l, Name: name, NS: ns, Addr: a}
}

// cleanup kills what still runs in the lab's namespaces and deletes them,
// last made first.
func (l *Lab) cleanup() {
	l.mu.Lock()
	spaces := l.spaces
	l.mu.Unlock()
	for _, ns := range spaces {
		killAll(ns)
	}
	for i := len(spaces) - 1; i >= 0; i-- {
		if out, err := run(ipPath, "netns", "del", spaces[i]); err != nil {
			l.t.Errorf("natlab: ip netns del %s: %v: %s", spaces[i], err, out)
		}
	}
}

// killAll kills every process in ns and waits up to 10 s for them to go.
func killAll(ns string) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := run(ipPath, "netns", "pids", ns)
		if err != nil || out == "" {
			return
		}
		for _, f := range strings.Fields(out) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if time.Now().After(deadline) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
