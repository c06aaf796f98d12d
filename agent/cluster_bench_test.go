package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/kith-project/kith/cluster"
	"github.com/kith-project/kith/internal/memnet"
	"github.com/kith-project/kith/roster"
	"github.com/kith-project/kith/seed"
)

// benchCluster starts three own devices on memnet with profile prof and
// waits for three voters; it returns them and the leader.
func benchCluster(b *testing.B, prof cluster.Profile, wrap func(net.PacketConn) net.PacketConn) ([]*testAgent, *testAgent) {
	b.Helper()
	n := memnet.New(memnet.Options{})
	phrase := newPhrase(b)
	var as []*testAgent
	for i := range 3 {
		pc, err := n.Listen(netip.MustParseAddrPort(fmt.Sprintf("10.2.0.%d:7117", i+1)))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { pc.Close() })
		var c net.PacketConn = pc
		if wrap != nil {
			c = wrap(pc)
		}
		as = append(as, startWith(b, Config{PacketConn: c, Heartbeat: time.Second, raftProfile: &prof}, phrase, uint32(i), fmt.Sprintf("dev%d", i)))
	}
	pairAgents(b, as[0], as[1])
	pairAgents(b, as[0], as[2])
	waitLong(b, "three voters", 60*time.Second, func() bool { return agreed(as, 3) })
	for _, a := range as {
		if a.dev.Cert.Device.ID() == clusterOf(a).Leader {
			return as, a
		}
	}
	b.Fatal("no leader")
	return nil, nil
}

// blockCommand is a roster write: blocking user number i.
func blockCommand(i int) cluster.Command {
	var u seed.UserPublic
	u[0], u[1], u[2], u[3] = 0xbe, byte(i>>16), byte(i>>8), byte(i)
	body, _ := json.Marshal(roster.Change{Op: roster.OpStatus, User: u, Status: roster.StatusBlocked})
	return cluster.Command{Kind: cluster.KindRoster, Body: body}
}

// inmemCluster is raft alone with its in-memory store and transport, three
// voters, as the reference for the commit rate.
func inmemCluster(b *testing.B) *raft.Raft {
	b.Helper()
	var rs []*raft.Raft
	var trans []*raft.InmemTransport
	conf := raft.Configuration{}
	for i := range 3 {
		addr, tr := raft.NewInmemTransport(raft.ServerAddress(fmt.Sprint(i)))
		trans = append(trans, tr)
		conf.Servers = append(conf.Servers, raft.Server{ID: raft.ServerID(fmt.Sprint(i)), Address: addr})
	}
	for _, a := range trans {
		for _, c := range trans {
			a.Connect(c.LocalAddr(), c)
		}
	}
	for i := range 3 {
		c := raft.DefaultConfig()
		c.LocalID = raft.ServerID(fmt.Sprint(i))
		c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout = 300*time.Millisecond, 300*time.Millisecond, 150*time.Millisecond
		c.Logger = hclog.NewNullLogger()
		store := raft.NewInmemStore()
		snaps := raft.NewInmemSnapshotStore()
		if err := raft.BootstrapCluster(c, store, store, snaps, trans[i], conf); err != nil {
			b.Fatal(err)
		}
		r, err := raft.NewRaft(c, nopFSM{}, store, store, snaps, trans[i])
		if err != nil {
			b.Fatal(err)
		}
		rs = append(rs, r)
	}
	b.Cleanup(func() {
		for _, r := range rs {
			r.Shutdown().Error()
		}
	})
	var leader *raft.Raft
	waitLong(b, "an in-memory leader", 30*time.Second, func() bool {
		for _, r := range rs {
			if r.State() == raft.Leader {
				leader = r
				return true
			}
		}
		return false
	})
	return leader
}

type nopFSM struct{}

func (nopFSM) Apply(*raft.Log) any                 { return nil }
func (nopFSM) Snapshot() (raft.FSMSnapshot, error) { return nopSnap{}, nil }
func (nopFSM) Restore(rc io.ReadCloser) error      { return rc.Close() }

type nopSnap struct{}

func (nopSnap) Persist(s raft.SnapshotSink) error { return s.Close() }
func (nopSnap) Release()                          {}

// BenchmarkClusterCommit is the commit rate of roster writes on the
// leader: serial (one at a time) and batched (64 in flight), through the
// real stack (QUIC streams on memnet, raft-boltdb with fsyncs, the roster
// applied to bbolt on every device) and through raft's in-memory store and
// transport, in the same run.
func BenchmarkClusterCommit(b *testing.B) {
	for _, inflight := range []int{1, 64} {
		name := "serial"
		if inflight > 1 {
			name = "batched"
		}
		b.Run("kith/"+name, func(b *testing.B) {
			_, leader := benchCluster(b, cluster.ProfileLAN, nil)
			n := leader.cluster.node.Load()
			runInflight(b, inflight, func(i int) error { return n.Commit(context.Background(), blockCommand(i)) })
		})
		b.Run("inmem/"+name, func(b *testing.B) {
			r := inmemCluster(b)
			runInflight(b, inflight, func(i int) error {
				body, _ := json.Marshal(blockCommand(i))
				return r.Apply(body, 10*time.Second).Error()
			})
		})
	}
}

func runInflight(b *testing.B, inflight int, f func(i int) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range inflight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1))
				if i > b.N {
					return
				}
				if err := f(i); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "commits/s")
}

// BenchmarkClusterFailover is the time from stopping the leader to a new
// leader among the two others, at the home and the LAN profile.
func BenchmarkClusterFailover(b *testing.B) {
	for _, prof := range []cluster.Profile{cluster.ProfileHome, cluster.ProfileLAN} {
		b.Run(prof.Name, func(b *testing.B) {
			var total time.Duration
			for range b.N {
				as, leader := benchCluster(b, prof, nil)
				old := leader.dev.Cert.Device.ID()
				t0 := time.Now()
				leader.stop()
				waitLong(b, "a new leader", 120*time.Second, func() bool {
					for _, a := range as {
						if a != leader {
							if l := clusterOf(a).Leader; l != "" && l != old {
								return true
							}
						}
					}
					return false
				})
				total += time.Since(t0)
			}
			b.ReportMetric(total.Seconds()/float64(b.N), "s/failover")
		})
	}
}

// countingConn counts the bytes an agent sends.
type countingConn struct {
	net.PacketConn
	n *atomic.Int64
}

func (c countingConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	c.n.Add(int64(len(p)))
	return c.PacketConn.WriteTo(p, addr)
}

// BenchmarkClusterIdle measures, over 20 s of idleness, the bytes per
// second each of three own devices sends (on average) and the CPU the
// whole process uses, for three own devices, device 0 with 10 friends, with
// and without the own cluster (home profile), in one run. Presence runs at
// its default heartbeat (15 s) in both.
func BenchmarkClusterIdle(b *testing.B) {
	for _, withCluster := range []bool{true, false} {
		name := "cluster"
		if !withCluster {
			name = "nocluster"
		}
		b.Run(name, func(b *testing.B) {
			for range b.N {
				n := memnet.New(memnet.Options{})
				phrase := newPhrase(b)
				var sent atomic.Int64
				prof := cluster.ProfileHome
				var as []*testAgent
				for i := range 3 {
					pc, err := n.Listen(netip.MustParseAddrPort(fmt.Sprintf("10.3.0.%d:7117", i+1)))
					if err != nil {
						b.Fatal(err)
					}
					b.Cleanup(func() { pc.Close() })
					cfg := Config{PacketConn: countingConn{pc, &sent}, raftProfile: &prof, noCluster: !withCluster}
					as = append(as, startWith(b, cfg, phrase, uint32(i), fmt.Sprintf("dev%d", i)))
				}
				pairAgents(b, as[0], as[1])
				pairAgents(b, as[0], as[2])
				for k := range 10 {
					pc, err := n.Listen(netip.MustParseAddrPort(fmt.Sprintf("10.3.1.%d:7117", k+1)))
					if err != nil {
						b.Fatal(err)
					}
					b.Cleanup(func() { pc.Close() })
					f := startWith(b, Config{PacketConn: pc, noCluster: true}, newPhrase(b), 0, fmt.Sprintf("friend%d", k))
					pairAgents(b, as[0], f)
				}
				if withCluster {
					waitLong(b, "three voters", 60*time.Second, func() bool { return agreed(as, 3) })
				}
				time.Sleep(5 * time.Second) // joins and first heartbeats settle
				before, cpu0 := sent.Load(), cpuTime()
				const window = 20 * time.Second
				time.Sleep(window)
				b.ReportMetric(float64(sent.Load()-before)/3/window.Seconds(), "B/s/device")
				b.ReportMetric(float64(cpuTime()-cpu0)/float64(time.Millisecond)/window.Seconds(), "cpu-ms/s")
			}
		})
	}
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
