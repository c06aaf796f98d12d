package agent

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kith-project/kith/cluster"
	"github.com/kith-project/kith/internal/memnet"
	"github.com/kith-project/kith/roster"
	"github.com/kith-project/kith/seed"
)

// The chaos test, in the spirit of raft's fuzzy/: three own devices on the
// in-memory network, real raft and real bbolt, and a fixed seed choosing
// kills, restarts, partitions, moves and writes. Invariants: never two
// leaders in one term (sampled throughout); at the end, with the network
// healed and every device back, every acknowledged write on every device
// and identical rosters.
var (
	chaosLong = flag.Bool("chaos.long", false, "run the cluster chaos test for 200 steps instead of 25")
	chaosSeed = flag.Uint64("chaos.seed", 11, "the chaos test's seed")
)

// chaosDevice is one device of the chaos test: its agent when running.
type chaosDevice struct {
	index uint32
	addr  netip.AddrPort
	pc    *memnet.Conn
	agent *testAgent // nil while killed
	last  *testAgent // the agent that ran last, for its home and store
}

func TestClusterChaos(t *testing.T) {
	steps := 25
	if *chaosLong {
		steps = 200
	}
	rng := rand.New(rand.NewPCG(*chaosSeed, 0x6b697468))
	n := memnet.New(memnet.Options{})
	phrase := newPhrase(t)
	prof := cluster.ProfileTest
	cfgFor := func(pc *memnet.Conn) Config {
		return Config{PacketConn: pc, Heartbeat: 200 * time.Millisecond, raftProfile: &prof}
	}
	ds := make([]*chaosDevice, 3)
	for i := range ds {
		d := &chaosDevice{index: uint32(i), addr: netip.MustParseAddrPort(fmt.Sprintf("10.1.0.%d:7117", i+1))}
		pc, err := n.Listen(d.addr)
		if err != nil {
			t.Fatal(err)
		}
		d.pc = pc
		d.agent = startWith(t, cfgFor(pc), phrase, d.index, fmt.Sprintf("dev%d", i))
		d.last = d.agent
		ds[i] = d
	}
	pairAgents(t, ds[0].agent, ds[1].agent)
	pairAgents(t, ds[0].agent, ds[2].agent)
	all := func() []*testAgent {
		var as []*testAgent
		for _, d := range ds {
			if d.agent != nil {
				as = append(as, d.agent)
			}
		}
		return as
	}
	waitCluster(t, "three voters", func() bool { return agreed(all(), 3) })

	// Never two leaders in one term.
	var (
		mu      sync.Mutex
		leaders = map[uint64]string{}
		bad     string
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var stopOnce sync.Once
	halt := func() { stopOnce.Do(func() { close(stop); wg.Wait() }) }
	defer halt()
	wg.Add(1)
	go func() {
		defer wg.Done()
		tk := time.NewTicker(20 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
			}
			mu.Lock()
			for _, d := range ds {
				a := d.agent
				if a == nil {
					continue
				}
				st := clusterOf(a)
				if st.State != "leader" {
					continue
				}
				id := a.dev.Cert.Device.ID()
				if prev, ok := leaders[st.Term]; ok && prev != id && bad == "" {
					bad = fmt.Sprintf("term %d has two leaders: %s and %s", st.Term, prev[:12], id[:12])
				}
				leaders[st.Term] = id
			}
			mu.Unlock()
		}
	}()

	var acked []seed.UserPublic
	partitioned := false
	for step := range steps {
		d := ds[rng.IntN(len(ds))]
		switch op := rng.IntN(6); {
		case op == 0 && d.agent != nil: // kill
			mu.Lock()
			d.agent.stop()
			d.pc.Close()
			d.agent = nil
			mu.Unlock()
			t.Logf("step %d: kill dev%d", step, d.index)
		case op <= 1 && d.agent == nil: // restart
			pc, err := n.Listen(d.addr)
			if err != nil {
				t.Fatal(err)
			}
			d.pc = pc
			a := restart(t, d.last, cfgFor(pc))
			mu.Lock()
			d.agent, d.last = a, a
			mu.Unlock()
			t.Logf("step %d: restart dev%d", step, d.index)
		case op == 2: // partition from another
			o := ds[(int(d.index)+1+rng.IntN(2))%3]
			n.Partition(d.addr.Addr(), o.addr.Addr())
			partitioned = true
			t.Logf("step %d: partition dev%d from dev%d", step, d.index, o.index)
		case op == 3: // heal
			n.HealAll()
			partitioned = false
			t.Logf("step %d: heal", step)
		case op == 4 && len(all()) == len(ds) && !partitioned: // move
			// A device moves while the others can hear it: two devices
			// that both move while apart have no way to find each other
			// again without a rendezvous, which is not what this tests.
			next := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(1 + step%200), byte(10 + d.index)}), 7117)
			if err := d.pc.Rebind(next); err == nil {
				d.addr = next
				t.Logf("step %d: dev%d moves to %s", step, d.index, next)
				waitCluster(t, "the others follow the move", func() bool {
					for _, o := range all() {
						if o != d.agent && o.bookAddr(d.agent.dev.Cert.Device) != next {
							return false
						}
					}
					return true
				})
			}
		default: // write on a running device
			if d.agent == nil {
				continue
			}
			var u seed.UserPublic
			u[0], u[1], u[31] = 0xc4, byte(step), byte(len(acked))
			if _, err := d.agent.friendAction("block", u.ID()); err != nil {
				t.Fatalf("step %d: block on dev%d: %v", step, d.index, err)
			}
			acked = append(acked, u)
			t.Logf("step %d: write on dev%d", step, d.index)
		}
		time.Sleep(time.Duration(50+rng.IntN(400)) * time.Millisecond)
	}

	// Heal, bring every device back, and check.
	n.HealAll()
	for _, d := range ds {
		if d.agent == nil {
			pc, err := n.Listen(d.addr)
			if err != nil {
				t.Fatal(err)
			}
			d.pc = pc
			a := restart(t, d.last, cfgFor(pc))
			mu.Lock()
			d.agent, d.last = a, a
			mu.Unlock()
		}
	}
	defer func() {
		if t.Failed() {
			for _, a := range all() {
				t.Logf("%s: %+v\n%s", a.dev.Identity.Name, clusterOf(a), canonicalRoster(a))
			}
		}
	}()
	waitCluster(t, "the cluster settles with three voters and nothing pending", func() bool { return agreed(all(), 3) })
	waitCluster(t, "every acknowledged write on every device, identical rosters", func() bool {
		var first []byte
		for i, a := range all() {
			for _, u := range acked {
				if !a.book.rosterNow().Blocked(u) {
					return false
				}
			}
			snap := canonicalRoster(a)
			if i == 0 {
				first = snap
			} else if !bytes.Equal(snap, first) {
				return false
			}
		}
		return true
	})
	halt()
	if bad != "" {
		t.Fatal(bad)
	}
	t.Logf("%d steps, %d writes, %d terms seen with a leader", steps, len(acked), len(leaders))
}

// canonicalRoster is a's roster as every device of the user should hold
// it: friends, revocations, and the own devices with a itself among them
// (a device's roster does not list the device itself).
func canonicalRoster(a *testAgent) []byte {
	r := a.book.rosterNow()
	var b bytes.Buffer
	for _, f := range r.Friends() {
		fmt.Fprintf(&b, "friend %s %s %q %v\n", f.UserID, f.Status, f.Name, f.PairedAt.UnixNano())
	}
	own := []string{a.dev.Cert.Device.ID()}
	for _, d := range r.Devices() {
		if d.Kind == roster.KindOwn {
			own = append(own, d.DeviceID.ID())
		} else {
			fmt.Fprintf(&b, "device %s of %s %q\n", d.DeviceID, d.UserID, d.Name)
		}
	}
	slices.Sort(own)
	fmt.Fprintf(&b, "own %v\n", own)
	for _, rev := range r.Revocations() {
		fmt.Fprintf(&b, "revoked %s\n", rev.Device)
	}
	return b.Bytes()
}
