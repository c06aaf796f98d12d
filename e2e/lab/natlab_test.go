package lab

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/internal/kithtest"
	"github.com/kith-project/kith/internal/natlab"
)

// labPort is the UDP port every agent of a NAT lab listens on.
const labPort = 7117

// labT is the heartbeat of the NAT-lab agents: short, so that the lab's
// tests are quick, and long enough for two loaded cores.
const labT = time.Second

// labPerson inits a device from the root namespace and starts its agent
// inside host h's namespace, on every address at labPort, with a 1 s
// heartbeat and the extra run flags. The CLI keeps running in the root
// namespace: it reaches the agent through the control socket in the home
// folder, a file that every namespace sees.
func labPerson(t *testing.T, h *natlab.Host, name string, flags ...string) *person {
	t.Helper()
	d := kithtest.NewDevice(t)
	var id identity
	d.JSON(&id, "", "init", "--name", name)
	d.Prefix = h.Prefix()
	p := &person{Device: d, id: id}
	p.agent = d.Start(fmt.Sprintf("0.0.0.0:%d", labPort), append([]string{"--heartbeat", labT.String()}, flags...)...)
	return p
}

// moveTo stops p's agent and starts it again, with the same home, inside
// host h's namespace: the device went somewhere else.
func (p *person) moveTo(t *testing.T, h *natlab.Host, flags ...string) {
	t.Helper()
	if err := p.agent.Stop(); err != nil {
		t.Fatalf("stopping %s's agent: %v", p.id.Name, err)
	}
	p.Prefix = h.Prefix()
	p.agent = p.Start(fmt.Sprintf("0.0.0.0:%d", labPort), append([]string{"--heartbeat", labT.String()}, flags...)...)
}

// at is host h's address on the internet with labPort: where its agent is
// seen from outside its router (for a port-preserving router).
func at(h *natlab.Host) string { return netip.AddrPortFrom(h.Public(), labPort).String() }

// pairInOrder pairs first and second with "kith pair scan" as two people
// do, first scanning first and waiting, and checks that both commands exit
// 0 saying "Paired" with the same check code.
func pairInOrder(t *testing.T, first, second *person) {
	t.Helper()
	_, firstPNG := first.show(t)
	_, secondPNG := second.show(t)
	start := time.Now()
	scan1 := startKith(t, first, "pair", "scan", secondPNG)
	kithtest.Eventually(t, time.Minute, "the first scanner says that it waits", func() error {
		select {
		case <-scan1.done:
			t.Fatalf("the first scan ended before the second: exit %d\nstdout: %s\nstderr: %s", scan1.code, scan1.stdout.String(), scan1.stderr.String())
		default:
		}
		if out := scan1.stdout.String(); !strings.Contains(out, "Waiting for the other person to scan your code") {
			return errorString("stdout so far: " + out)
		}
		return nil
	})
	scan2 := startKith(t, second, "pair", "scan", firstPNG)
	scan2.wait(t, 2*time.Minute)
	if scan2.code != 0 || !pairedWith(scan2.stdout.String(), first) {
		t.Fatalf("second scan (%s): exit %d (%v)\nstdout: %s\nstderr: %s", second.id.Name, scan2.code, scan2.err, scan2.stdout.String(), scan2.stderr.String())
	}
	scan1.wait(t, 2*time.Minute)
	if scan1.code != 0 || !pairedWith(scan1.stdout.String(), second) {
		t.Fatalf("first scan (%s): exit %d (%v)\nstdout: %s\nstderr: %s", first.id.Name, scan1.code, scan1.err, scan1.stdout.String(), scan1.stderr.String())
	}
	t.Logf("pairing: %s scans first, both paired %.2fs after the first scan", first.id.Name, time.Since(start).Seconds())
	codes := [2]string{checkCode(scan1.stdout.String()), checkCode(scan2.stdout.String())}
	if codes[0] == "" || codes[0] != codes[1] {
		t.Fatalf("the screens show check codes %q and %q:\n%s\n%s", codes[0], codes[1], scan1.stdout.String(), scan2.stdout.String())
	}
	if first.id.UserID == second.id.UserID {
		// Own devices: each lists the other among its peers.
		for _, pp := range [][2]*person{{first, second}, {second, first}} {
			if ps, ok := peerIn(quickStatus(t, pp[0]), pp[1].id.DeviceID); !ok || ps.Kind != "own" {
				t.Fatalf("%s lists %s as %+v (found %v), want an own device", pp[0].id.Name, pp[1].id.Name, ps, ok)
			}
		}
		return
	}
	fa, okA := findFriend(first.friends(t), second.id.UserID)
	fb, okB := findFriend(second.friends(t), first.id.UserID)
	if !okA || !okB || fa.SAS != codes[0] || fb.SAS != codes[0] {
		t.Fatalf("stored pairings: %+v (%v), %+v (%v), want both with the check code %s", fa, okA, fb, okB, codes[0])
	}
}

// checkCode is the check code a scan's output shows ("Check code: 214
// 934  (both screens must show the same)").
func checkCode(out string) string {
	_, rest, ok := strings.Cut(out, "Check code: ")
	if !ok {
		return ""
	}
	code, _, _ := strings.Cut(rest, "  (")
	code, _, _ = strings.Cut(code, "\n")
	return strings.TrimSpace(code)
}

// pairedWith reports whether a scan's output says it paired with p, as a
// friend or as an own device.
func pairedWith(out string, p *person) bool {
	return strings.Contains(out, "Paired with friend \""+p.id.Name+"\"") ||
		strings.Contains(out, "Paired with your own device \""+p.id.Name+"\"")
}

// friendAddr is the address p stores for other's one device.
func friendAddr(t *testing.T, p, other *person) string {
	t.Helper()
	f, ok := findFriend(p.friends(t), other.id.UserID)
	if !ok || len(f.Devices) != 1 {
		t.Fatalf("%s lists %s as %+v (found %v), want one device", p.id.Name, other.id.Name, f, ok)
	}
	return f.Devices[0].Addr
}

// Pairing across a NAT in either order: hA behind a home router, pub on
// the internet. Whoever scans first, both scans exit 0 with "Paired", each
// side stores the other at the address the pairing connection came from
// (hA at its router's mapping of the flow to pub, not at its LAN address),
// and both see each other online afterwards, hA still at that address. The
// same with a symmetric router, whose mapping's port is its own choice.
func TestNATLabPairingEitherOrder(t *testing.T) {
	natlab.Require(t)
	t.Parallel()
	for _, c := range []struct {
		hAFirst, symmetric bool
	}{{true, false}, {false, false}, {true, true}, {false, true}} {
		name := "pub scans first"
		if c.hAFirst {
			name = "hA scans first"
		}
		var opts []natlab.RouterOption
		if c.symmetric {
			name += ", symmetric router"
			opts = append(opts, natlab.Symmetric())
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			lab := natlab.New(t)
			rA := lab.Router("rA", opts...)
			hostA := lab.Host("hA", rA)
			hostPub := lab.Public("pub")
			a := labPerson(t, hostA, "a")
			pub := labPerson(t, hostPub, "pub")
			if c.hAFirst {
				pairInOrder(t, a, pub)
			} else {
				pairInOrder(t, pub, a)
			}
			mapped := mappingOf(t, rA, hostA, hostPub)
			if !c.symmetric && mapped != at(hostA) {
				t.Fatalf("a port-preserving router mapped hA's flow to pub at %s, want %s", mapped, at(hostA))
			}
			if got := friendAddr(t, pub, a); got != mapped {
				t.Errorf("pub stores hA at %s, want %s, the router's mapping the pairing came from (hA's own address is %s)", got, mapped, hostA.Addr)
			}
			if got, want := friendAddr(t, a, pub), at(hostPub); got != want {
				t.Errorf("hA stores pub at %s, want %s", got, want)
			}
			for _, pp := range [][2]*person{{a, pub}, {pub, a}} {
				p, other := pp[0], pp[1]
				waitPeer(t, p, other.id.DeviceID, 30*labT, other.id.Name+" online", func(ps control.PeerStatus) bool {
					return ps.Online && ps.RTTMillis != nil
				})
			}
			if got := friendAddr(t, pub, a); got != mapped {
				t.Errorf("after the heartbeats pub stores hA at %s, want %s", got, mapped)
			}
		})
	}
}

// mappingOf is where router r maps the flow from host h's agent to public
// host pub's: the address pub sees h's agent at.
func mappingOf(t *testing.T, r *natlab.Router, h, pub *natlab.Host) string {
	t.Helper()
	fs, err := r.Flows()
	if err != nil {
		t.Fatal(err)
	}
	src, dst := netip.AddrPortFrom(h.Addr, labPort), netip.AddrPortFrom(pub.Addr, labPort)
	for _, f := range fs {
		if f.Src == src && f.Dst == dst {
			return f.ReplyDst.String()
		}
	}
	t.Fatalf("router %s has no flow %s→%s: %v", r.Name, src, dst, fs)
	return ""
}

// peerCheck is a condition on how p sees other's device.
type peerCheck struct {
	p, other *person
	what     string
	cond     func(control.PeerStatus) bool
}

// waitAll polls every check at once until each has held, and returns for
// each the time from since to its first status that held. It fails the
// test if one has not held within limit.
func waitAll(t *testing.T, since time.Time, limit time.Duration, checks ...peerCheck) []time.Duration {
	t.Helper()
	took := make([]time.Duration, len(checks))
	done := make([]bool, len(checks))
	last := make([]control.PeerStatus, len(checks))
	for left := len(checks); left > 0; {
		for i, c := range checks {
			if done[i] {
				continue
			}
			if ps, ok := peerIn(quickStatus(t, c.p), c.other.id.DeviceID); ok {
				last[i] = ps
				if c.cond(ps) {
					took[i], done[i] = time.Since(since), true
					left--
				}
			}
		}
		if left > 0 && time.Since(since) > limit {
			for i, c := range checks {
				if !done[i] {
					t.Fatalf("%s: %s did not see it within %v; last %+v", c.what, c.p.id.Name, limit, last[i])
				}
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return took
}

// Renumbering: hA behind rA is paired with pub; rA gets a new WAN address
// and loses its conntrack table. pub follows hA to the new address when
// hA's next heartbeat comes from there: within 2T, as issue #10 asks. The
// test allows 10T, so that two loaded cores cannot fail it, and logs the
// time, in seconds and in T, as "renumber: pub follows hA 1.23s (1.23 T)".
func TestNATLabRenumberPublicPeerFollows(t *testing.T) {
	natlab.Require(t)
	t.Parallel()
	lab := natlab.New(t)
	rA := lab.Router("rA")
	hostA, hostPub := lab.Host("hA", rA), lab.Public("pub")
	a, pub := labPerson(t, hostA, "a"), labPerson(t, hostPub, "pub")
	pairInOrder(t, a, pub)
	waitPeer(t, pub, a.id.DeviceID, 30*labT, "hA online at "+at(hostA), func(ps control.PeerStatus) bool {
		return ps.Online && ps.Addr == at(hostA) && ps.RTTMillis != nil
	})
	for round := range 2 {
		old := at(hostA)
		lab.Renumber(rA)
		renumbered := time.Now()
		took := waitAll(t, renumbered, 10*labT, peerCheck{pub, a, "hA at its new address " + at(hostA), func(ps control.PeerStatus) bool {
			return ps.Online && ps.Addr == at(hostA) && ps.LastSeen != nil && ps.LastSeen.After(renumbered)
		}})[0]
		t.Logf("renumber: pub follows hA %.2fs (%.2f T) from %s to %s, round %d", took.Seconds(), float64(took)/float64(labT), old, at(hostA), round+1)
		// And hA hears pub: its heartbeats are answered through the new
		// mapping.
		waitPeer(t, a, pub.id.DeviceID, 10*labT, "pub heard by hA after the renumbering", func(ps control.PeerStatus) bool {
			return ps.Online && ps.LastSeen != nil && ps.LastSeen.After(renumbered)
		})
	}
}
