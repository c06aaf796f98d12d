package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/internal/kithtest"
)

// Addresses of the namespace test, from the benchmarking range
// 198.18.0.0/15 (RFC 2544), which no real network uses.
const (
	nsAddrA = "198.18.0.1"
	nsAddrB = "198.18.0.2"
	nsPort  = "7117"
	nsMask  = "/24"
)

// netnsPair is two network namespaces joined by a veth pair, each end
// with one address and the loopback up.
type netnsPair struct {
	t        *testing.T
	ipPath   string // iproute2's ip
	nsA, nsB string // namespace names
	ifA, ifB string // veth ends, ifA in nsA and ifB in nsB
}

// ipRun runs ip with args and returns its combined output and error.
func ipRun(ipPath string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, ipPath, args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// ip runs ip with args and fails the test if it fails.
func (n *netnsPair) ip(args ...string) {
	n.t.Helper()
	if out, err := ipRun(n.ipPath, args...); err != nil {
		n.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// newNetnsPair makes the namespaces, or skips the test where it cannot
// (not root, no iproute2, no namespaces). Everything is removed when the
// test ends, whatever happened.
func newNetnsPair(t *testing.T) *netnsPair {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root; skipping the network-namespace test (run go test as root)")
	}
	ipPath, err := exec.LookPath("ip")
	if err != nil {
		t.Skip("ip (iproute2) is not installed (apt-get install iproute2); skipping the network-namespace test")
	}
	pid := os.Getpid()
	n := &netnsPair{
		t: t, ipPath: ipPath,
		nsA: fmt.Sprintf("kith-a-%d", pid), nsB: fmt.Sprintf("kith-b-%d", pid),
		// Interface names have at most 15 bytes.
		ifA: fmt.Sprintf("kitha%d", pid), ifB: fmt.Sprintf("kithb%d", pid),
	}
	for _, ns := range []string{n.nsA, n.nsB} {
		if out, err := ipRun(ipPath, "netns", "add", ns); err != nil {
			t.Skipf("ip netns add %s failed (%v: %s); skipping the network-namespace test", ns, err, out)
		}
		// Deleting a namespace also deletes the veth end inside it. The
		// agents, started later, are stopped by earlier-run cleanups.
		t.Cleanup(func() {
			if out, err := ipRun(ipPath, "netns", "del", ns); err != nil {
				t.Errorf("ip netns del %s: %v: %s", ns, err, out)
			}
		})
	}
	// Both ends are made directly inside their namespaces: nothing is
	// ever added to the root namespace.
	n.ip("link", "add", n.ifA, "netns", n.nsA, "type", "veth", "peer", "name", n.ifB, "netns", n.nsB)
	for _, end := range []struct{ ns, dev, addr string }{{n.nsA, n.ifA, nsAddrA}, {n.nsB, n.ifB, nsAddrB}} {
		n.ip("-n", end.ns, "link", "set", "lo", "up")
		n.ip("-n", end.ns, "addr", "add", end.addr+nsMask, "dev", end.dev)
		n.ip("-n", end.ns, "link", "set", end.dev, "up")
	}
	return n
}

// personIn inits a device with the normal CLI in the root namespace and
// starts its agent inside namespace ns, listening on every address. The
// CLI reaches it through the control socket in its home folder, which
// works across network namespaces.
func (n *netnsPair) personIn(ns, name string) *person {
	n.t.Helper()
	d := kithtest.NewDevice(n.t)
	var id identity
	d.JSON(&id, "", "init", "--name", name)
	d.Prefix = []string{n.ipPath, "netns", "exec", ns}
	p := &person{Device: d, id: id}
	p.agent = d.Start("0.0.0.0:"+nsPort, "--heartbeat", testT.String())
	return p
}

// TestAddressChangeInNetworkNamespaces runs two agents in two network
// namespaces joined by veth, changes one agent's interface address with
// ip addr, and checks that its peer follows: the agent notices the change
// by polling its interfaces and announces it to every peer at once.
func TestAddressChangeInNetworkNamespaces(t *testing.T) {
	n := newNetnsPair(t)
	alice := n.personIn(n.nsA, "alice")
	bob := n.personIn(n.nsB, "bob")
	pair(t, alice, bob)

	// Each lists the other as a friend at its veth address, not at a
	// loopback address from the invite, and sees it online with an RTT.
	addrOf := map[*person]string{alice: nsAddrA + ":" + nsPort, bob: nsAddrB + ":" + nsPort}
	for _, pp := range [][2]*person{{alice, bob}, {bob, alice}} {
		p, other := pp[0], pp[1]
		f, ok := findFriend(p.friends(t), other.id.UserID)
		if !ok || f.Status != "friend" || len(f.Devices) != 1 || f.Devices[0].DeviceID != other.id.DeviceID || f.Devices[0].Addr != addrOf[other] {
			t.Fatalf("%s's friends list %s as %+v (found %v), want a friend with device %s at %s", p.id.Name, other.id.Name, f, ok, other.id.DeviceID, addrOf[other])
		}
		waitPeer(t, p, other.id.DeviceID, 10*time.Second, other.id.Name+" online at "+addrOf[other], func(ps control.PeerStatus) bool {
			return ps.Online && ps.Addr == addrOf[other] && ps.RTTMillis != nil
		})
	}

	// Alice's interface address changes twice; bob follows each time.
	for _, newIP := range []string{"198.18.0.11", "198.18.0.12"} {
		oldIP := strings.TrimSuffix(addrOf[alice], ":"+nsPort)
		newAddr := newIP + ":" + nsPort
		before, _ := peerIn(quickStatus(t, bob), alice.id.DeviceID)

		n.ip("-n", n.nsA, "addr", "del", oldIP+nsMask, "dev", n.ifA)
		n.ip("-n", n.nsA, "addr", "add", newIP+nsMask, "dev", n.ifA)
		changed := time.Now()
		addrOf[alice] = newAddr

		took := waitPeer(t, bob, alice.id.DeviceID, 10*time.Second, "alice's new address "+newAddr, func(ps control.PeerStatus) bool {
			return ps.Addr == newAddr && ps.Online && ps.LastSeen != nil && ps.LastSeen.After(changed)
		})
		t.Logf("bob follows alice from %s to %s in %v after ip addr add, %.2f T (T = %v, interfaces polled every T/4)",
			oldIP, newIP, took.Round(time.Millisecond), float64(took)/float64(testT), testT)

		// kith status, the command, shows the same.
		var st statusView
		bob.JSON(&st, "", "status")
		var shown bool
		for _, ps := range st.Peers {
			if ps.DeviceID == alice.id.DeviceID {
				shown = ps.Addr == newAddr && ps.Online
				if !shown {
					t.Fatalf("bob's kith status shows alice as %+v, want online at %s", ps, newAddr)
				}
			}
		}
		if !shown {
			t.Fatalf("bob's kith status lists no alice: %+v", st.Peers)
		}

		// Messages flow again both ways. Bob's heartbeats reach alice at
		// her new address (the old one no longer exists in her
		// namespace) and are answered: bob's RTT for her is measured
		// again (its smoothed value changes), and she hears from him.
		waitPeer(t, bob, alice.id.DeviceID, 10*time.Second, "a fresh RTT to alice at "+newAddr, func(ps control.PeerStatus) bool {
			return ps.Addr == newAddr && ps.Online && ps.RTTMillis != nil &&
				(before.RTTMillis == nil || *ps.RTTMillis != *before.RTTMillis)
		})
		waitPeer(t, alice, bob.id.DeviceID, 10*time.Second, "bob heard at alice's new address", func(ps control.PeerStatus) bool {
			return ps.Online && ps.Addr == addrOf[bob] && ps.LastSeen != nil && ps.LastSeen.After(changed)
		})
		// Alice noticed the change on her interfaces herself (bob may
		// have followed her first packet from the new address even
		// sooner), and bob's agent says he moved her.
		kithtest.Eventually(t, 10*time.Second, "alice's agent notices "+newIP+" on its interfaces", func() error {
			if logHasLine(alice.agent, "our interface addresses changed", newAddr) {
				return nil
			}
			return fmt.Errorf("no such line in her log:\n%s", alice.agent.Log())
		})
		if !logHasLine(bob.agent, "peer moved", "addr="+newAddr) {
			t.Errorf("bob's log has no \"peer moved\" line for %s:\n%s", newAddr, bob.agent.Log())
		}
	}
}

// logHasLine reports whether one line of a's log contains every one of
// parts.
func logHasLine(a *kithtest.Agent, parts ...string) bool {
	for line := range strings.Lines(a.Log()) {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}
