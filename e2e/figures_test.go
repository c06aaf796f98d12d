package e2e

// The presence figures of docs/presence.md, measured on real kith processes
// on 127.0.0.x. They are benchmarks only, so that the normal test suite
// never runs them:
//
//	go test -run '^$' -bench 'Converge' -benchtime 200x ./e2e
//	KITH_BENCH_IDLE_SECONDS=300 go test -run '^$' -bench IdleAgentCPU -timeout 30m ./e2e
//
// The idle benchmark also counts the hub's datagrams on lo, by kind, when
// it may open a packet socket (as root, or with CAP_NET_RAW).
//
// The helpers of the tests take a *testing.T; the few a benchmark needs
// have testing.TB twins here.

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/internal/home"
	"github.com/kith-project/kith/internal/kithtest"
)

// untilAll polls the status of every one of ps, as fast as their control
// sockets answer, until cond holds for device in each, and returns when
// the last of them was first seen to hold it. It fails after limit, or
// when ctx is done.
func untilAll(ctx context.Context, ps []*person, device string, limit time.Duration, cond func(control.PeerStatus) bool) (time.Time, error) {
	deadline := time.Now().Add(limit)
	pending := slices.Clone(ps)
	var last time.Time
	for {
		if err := ctx.Err(); err != nil {
			return time.Time{}, err
		}
		next := pending[:0]
		for _, p := range pending {
			st, err := peerStatus(p, device)
			if err != nil {
				return time.Time{}, err
			}
			if cond(st) {
				last = time.Now()
				continue
			}
			next = append(next, p)
		}
		pending = next
		if len(pending) == 0 {
			return last, nil
		}
		if time.Now().After(deadline) {
			st, _ := peerStatus(pending[0], device)
			return time.Time{}, fmt.Errorf("%s did not see it within %v; last %+v", pending[0].id.Name, limit, st)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// peerStatus asks p's agent for its status of device.
func peerStatus(p *person, device string) (control.PeerStatus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := control.NewClient(p.Home).Status(ctx)
	if err != nil {
		return control.PeerStatus{}, fmt.Errorf("status of %s: %w", p.id.Name, err)
	}
	ps, _ := peerIn(st, device)
	return ps, nil
}

// percentile returns the nearest-rank q-quantile of sorted.
func percentile(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// reportConvergence reports the median and 99th percentile of took, as a
// ratio to T and in milliseconds, under units that start with prefix; what
// says from when they were timed.
func reportConvergence(b *testing.B, prefix, what string, took []time.Duration, T time.Duration) {
	if len(took) == 0 {
		return
	}
	slices.Sort(took)
	p50, p99 := percentile(took, 0.50), percentile(took, 0.99)
	b.ReportMetric(float64(p50)/float64(T), prefix+"p50/T")
	b.ReportMetric(float64(p99)/float64(T), prefix+"p99/T")
	b.ReportMetric(millis(p50), prefix+"p50_ms")
	b.ReportMetric(millis(p99), prefix+"p99_ms")
	b.Logf("%d moves at T = %v, from %s: min %v, p50 %v, p99 %v, max %v", len(took), T, what,
		took[0].Round(time.Microsecond), p50.Round(time.Microsecond), p99.Round(time.Microsecond), took[len(took)-1].Round(time.Microsecond))
}

// randomPause sleeps for a uniform random time in [0, 2T), so that each
// move falls at a random phase of the agents' heartbeat timers rather than
// right after the heartbeat that ended the last one.
func randomPause(T time.Duration) {
	time.Sleep(rand.N(2 * T))
}

// BenchmarkConvergeMove: bob, paired with alice and carol, stops and comes
// back from the same home on another loopback address. One move is timed
// from bob's agent answering on its control socket (kithtest's Start
// returning) until both alice and carol show him online at the new
// address; the launch_ figures time it from the launch of bob's process
// instead. Alice and carol are polled from the launch on, so a move that
// completes before bob's control socket answers counts as 0 from ready.
func BenchmarkConvergeMove(b *testing.B) {
	hb := []string{"--heartbeat", testT.String()}
	alice, bob, carol := bobAndFriends(b, hb...)
	watchers := []*person{alice, carol}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel) // ends a poller left behind by a failure
	if _, err := untilAll(ctx, watchers, bob.id.DeviceID, 10*time.Second, func(ps control.PeerStatus) bool { return ps.Online }); err != nil {
		b.Fatalf("bob online: %v", err)
	}

	var fromReady, fromLaunch []time.Duration
	i := 0
	for b.Loop() {
		b.StopTimer()
		randomPause(testT)
		if err := bob.agent.Stop(); err != nil {
			b.Fatalf("stopping bob: %v", err)
		}
		addr := kithtest.FreeAddr(b, fmt.Sprintf("127.0.0.%d", 9+i%11))
		i++
		type result struct {
			at  time.Time
			err error
		}
		done := make(chan result, 1)
		b.StartTimer()
		launched := time.Now()
		go func() {
			at, err := untilAll(ctx, watchers, bob.id.DeviceID, 20*testT+time.Minute, func(ps control.PeerStatus) bool {
				return ps.Addr == addr && ps.Online
			})
			done <- result{at, err}
		}()
		bob.agent = bob.Start(addr, hb...)
		ready := time.Now()
		r := <-done
		if r.err != nil {
			b.Fatalf("bob's new address %s: %v", addr, r.err)
		}
		fromReady = append(fromReady, max(0, r.at.Sub(ready)))
		fromLaunch = append(fromLaunch, r.at.Sub(launched))
	}
	reportConvergence(b, "", "ready", fromReady, testT)
	reportConvergence(b, "launch_", "launch", fromLaunch, testT)
}

// BenchmarkConvergeRebind: bob sits behind a NAT relay that rebinds to a
// new outside address without bob noticing, as in
// TestRebindingNoticedByPeers. One move is timed from the rebinding until
// both alice and carol show bob at the relay's new outside address.
func BenchmarkConvergeRebind(b *testing.B) {
	hb := []string{"--heartbeat", testT.String()}
	alice, bob, carol := bobAndFriends(b, hb...)
	nat := behindNAT(b, alice, bob, carol, hb...)
	outside := nat.outsideAddr()
	watchers := []*person{alice, carol}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel) // ends a poller left behind by a failure
	if _, err := untilAll(ctx, watchers, bob.id.DeviceID, 10*time.Second, func(ps control.PeerStatus) bool {
		return ps.Addr == outside.String() && ps.Online && ps.RTTMillis != nil
	}); err != nil {
		b.Fatalf("bob through the NAT: %v", err)
	}

	var took []time.Duration
	i := 0
	for b.Loop() {
		b.StopTimer()
		randomPause(testT)
		b.StartTimer()
		moved := nat.rebind(b, fmt.Sprintf("127.0.0.%d:0", 21+i%9)).String()
		i++
		rebound := time.Now()
		at, err := untilAll(ctx, watchers, bob.id.DeviceID, 20*testT, func(ps control.PeerStatus) bool { return ps.Addr == moved })
		if err != nil {
			b.Fatalf("bob's rebound address %s: %v", moved, err)
		}
		took = append(took, at.Sub(rebound))
	}
	reportConvergence(b, "", "the rebinding", took, testT)
}

// agentPID returns the process ID of p's agent, which it wrote into its
// home's lock file, after checking that the process is indeed a kith
// agent on that home.
func agentPID(tb testing.TB, p *person) int {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join(p.Home, home.LockName))
	if err != nil {
		tb.Fatalf("reading %s's lock file: %v", p.id.Name, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		tb.Fatalf("%s's lock file holds %q, not a process ID", p.id.Name, data)
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !bytes.Contains(cmdline, []byte(p.Home)) {
		tb.Fatalf("process %d is not %s's agent (%v): %q", pid, p.id.Name, err, cmdline)
	}
	return pid
}

// userHZ is the unit of the CPU times in /proc/PID/stat (USER_HZ, 100 on
// every Linux).
const userHZ = 100

// cpuTime returns the user plus system CPU time of a process, all its
// threads, from /proc/PID/stat (fields 14 and 15, in 1/userHZ s).
func cpuTime(tb testing.TB, pid int) time.Duration {
	tb.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatalf("reading the CPU time of process %d: %v", pid, err)
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(data, ')')
	f := strings.Fields(string(data[i+1:])) // f[0] is field 3
	if i < 0 || len(f) < 13 {
		tb.Fatalf("/proc/%d/stat: unexpected %q", pid, data)
	}
	var ticks uint64
	for _, s := range f[11:13] {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			tb.Fatalf("/proc/%d/stat: %v", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ
}

// Kinds of UDP datagram on the agents' port, told apart by their first
// byte as the agent does (DESIGN §3).
const (
	wirePresence = iota // 0x10..0x12: heartbeats, replies, address updates
	wireSTUN            // 0x00..0x03
	wireQUIC            // 0x40..0xff
	wireOther           // other kith datagrams
	wireKinds
)

func wireKind(first byte) int {
	switch {
	case first >= 0x10 && first <= 0x12:
		return wirePresence
	case first < 0x04:
		return wireSTUN
	case first >= 0x40:
		return wireQUIC
	}
	return wireOther
}

// wireCounter counts, by kind, the UDP datagrams on lo to or from one
// address, read from a packet socket (which needs CAP_NET_RAW). Other
// processes' traffic on lo is not counted: only our agent is bound to the
// address.
type wireCounter struct {
	fd      int
	addr    netip.AddrPort
	stop    atomic.Bool
	done    chan struct{}
	packets [wireKinds]atomic.Uint64
	payload [wireKinds]atomic.Uint64 // UDP payload bytes
}

// wireCount is a snapshot of a wireCounter.
type wireCount struct{ packets, payload [wireKinds]uint64 }

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// countWire starts counting the datagrams to and from addr on lo, until
// the benchmark ends.
func countWire(tb testing.TB, addr netip.AddrPort) (*wireCounter, error) {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		return nil, err
	}
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW, int(htons(syscall.ETH_P_ALL)))
	if err != nil {
		return nil, fmt.Errorf("opening a packet socket (root or CAP_NET_RAW needed): %w", err)
	}
	tv := syscall.Timeval{Usec: 100_000} // how often the reader checks stop
	if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	if err := syscall.Bind(fd, &syscall.SockaddrLinklayer{Protocol: htons(syscall.ETH_P_ALL), Ifindex: lo.Index}); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("binding a packet socket to lo: %w", err)
	}
	w := &wireCounter{fd: fd, addr: addr, done: make(chan struct{})}
	go w.read()
	tb.Cleanup(w.close)
	return w, nil
}

func (w *wireCounter) read() {
	defer close(w.done)
	buf := make([]byte, 64<<10)
	for !w.stop.Load() {
		n, from, err := syscall.Recvfrom(w.fd, buf, 0)
		if err != nil {
			if err == syscall.EAGAIN || err == syscall.EINTR {
				continue
			}
			return
		}
		// lo shows every packet twice: as sent and as received.
		if ll, ok := from.(*syscall.SockaddrLinklayer); ok && ll.Pkttype == syscall.PACKET_OUTGOING {
			continue
		}
		w.count(buf[:n])
	}
}

// count takes one frame from lo: a 14-byte Ethernet header, then IPv4.
func (w *wireCounter) count(frame []byte) {
	be := binary.BigEndian
	if len(frame) < 14+20 || be.Uint16(frame[12:]) != 0x0800 {
		return
	}
	ip := frame[14:]
	ihl := int(ip[0]&0x0f) * 4
	if ip[0]>>4 != 4 || ip[9] != syscall.IPPROTO_UDP || ihl < 20 || len(ip) < ihl+9 {
		return
	}
	src := netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip[12:16])), be.Uint16(ip[ihl:]))
	dst := netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip[16:20])), be.Uint16(ip[ihl+2:]))
	if src != w.addr && dst != w.addr {
		return
	}
	n := be.Uint16(ip[ihl+4:]) // UDP length, header included
	if n < 8 {
		return
	}
	k := wireKind(ip[ihl+8])
	w.packets[k].Add(1)
	w.payload[k].Add(uint64(n - 8))
}

func (w *wireCounter) snapshot() wireCount {
	var c wireCount
	for k := range wireKinds {
		c.packets[k], c.payload[k] = w.packets[k].Load(), w.payload[k].Load()
	}
	return c
}

func (w *wireCounter) close() {
	if w.stop.Swap(true) {
		return
	}
	<-w.done
	syscall.Close(w.fd)
}

// idleSettings reads the window of BenchmarkIdleAgentCPU from
// KITH_BENCH_IDLE_SECONDS (default 60) and the agents' heartbeat interval T
// from KITH_BENCH_HEARTBEAT (default 15 s, the agent's own), and returns
// the window, T and the flags that set it.
func idleSettings(tb testing.TB) (window, T time.Duration, hb []string) {
	window, T, hb = 60*time.Second, 15*time.Second, []string{"--heartbeat", "15s"}
	if s := os.Getenv("KITH_BENCH_IDLE_SECONDS"); s != "" {
		n, err := strconv.ParseFloat(s, 64)
		if err != nil || n <= 0 {
			tb.Fatalf("KITH_BENCH_IDLE_SECONDS=%q: want a positive number of seconds", s)
		}
		window = time.Duration(n * float64(time.Second))
	}
	if s := os.Getenv("KITH_BENCH_HEARTBEAT"); s != "" {
		var err error
		if T, err = time.ParseDuration(s); err != nil || T <= 0 {
			tb.Fatalf("KITH_BENCH_HEARTBEAT=%q: want a duration such as 15s", s)
		}
		hb = []string{"--heartbeat", s}
	}
	return window, T, hb
}

// BenchmarkIdleAgentCPU measures the CPU use of an idle hub agent paired
// with ten peer agents, over a window of wall time that starts 2T after the
// hub sees them all online, beside the same agent's CPU use with no peers
// over an equal window measured first. CPU time is
// user plus system time from /proc/PID/stat, in 10 ms ticks. It also
// reports the average of the ten peers (one peer each) and, where a packet
// socket may be opened, the hub's traffic per peer by kind of datagram:
// UDP payload bytes (hb_, quic_, stun_) and IP bytes of all kinds (ip_).
func BenchmarkIdleAgentCPU(b *testing.B) {
	const peers = 10
	window, T, hb := idleSettings(b)
	hub := newPerson(b, "hub", "127.0.0.40", hb...)
	hubPID := agentPID(b, hub)

	// The reference: the same agent, alone.
	time.Sleep(2 * time.Second) // past its start
	c0 := cpuTime(b, hubPID)
	time.Sleep(window)
	alone := cpuTime(b, hubPID) - c0

	var ps []*person
	for i := range peers {
		p := newPerson(b, fmt.Sprintf("peer%d", i), fmt.Sprintf("127.0.0.%d", 41+i), hb...)
		pair(b, hub, p)
		ps = append(ps, p)
	}
	online := func() int {
		n := 0
		for _, p := range quickStatus(b, hub).Peers {
			if p.Online {
				n++
			}
		}
		return n
	}
	kithtest.Eventually(b, 5*time.Minute, "the hub sees its ten peers online", func() error {
		if n := online(); n != peers {
			return fmt.Errorf("%d of %d online", n, peers)
		}
		return nil
	})
	time.Sleep(2 * T) // past the greetings and the first STUN requests
	pids := make([]int, len(ps))
	for i, p := range ps {
		pids[i] = agentPID(b, p)
	}
	wire, err := countWire(b, netip.MustParseAddrPort(hub.agent.Addr))
	if err != nil {
		b.Logf("the hub's traffic is not measured: %v", err)
	}

	var hubCPU, peerCPU, wall time.Duration
	var traffic wireCount
	for b.Loop() {
		h0 := cpuTime(b, hubPID)
		var p0 time.Duration
		for _, pid := range pids {
			p0 += cpuTime(b, pid)
		}
		var w0 wireCount
		if wire != nil {
			w0 = wire.snapshot()
		}
		start := time.Now()
		time.Sleep(window)
		wall += time.Since(start)
		hubCPU += cpuTime(b, hubPID) - h0
		for _, pid := range pids {
			peerCPU += cpuTime(b, pid)
		}
		peerCPU -= p0
		if wire != nil {
			w1 := wire.snapshot()
			for k := range wireKinds {
				traffic.packets[k] += w1.packets[k] - w0.packets[k]
				traffic.payload[k] += w1.payload[k] - w0.payload[k]
			}
		}
	}
	if n := online(); n != peers {
		b.Fatalf("after the window the hub sees %d of %d peers online", n, peers)
	}
	pct := func(cpu, wall time.Duration) float64 { return 100 * cpu.Seconds() / wall.Seconds() }
	b.ReportMetric(pct(hubCPU, wall), "cpu_%")
	b.ReportMetric(pct(alone, window), "alone_cpu_%")
	b.ReportMetric(pct(peerCPU/peers, wall), "peer_cpu_%")
	if wire != nil {
		perPeer := func(v uint64) float64 { return float64(v) / wall.Seconds() / peers }
		var all uint64
		for k := range wireKinds {
			all += traffic.payload[k] + 28*traffic.packets[k] // IPv4 and UDP headers
		}
		b.ReportMetric(perPeer(traffic.payload[wirePresence]), "hb_B/s/peer")
		b.ReportMetric(perPeer(traffic.packets[wirePresence]), "hb_pkt/s/peer")
		b.ReportMetric(perPeer(traffic.payload[wireQUIC]), "quic_B/s/peer")
		b.ReportMetric(perPeer(traffic.payload[wireSTUN]), "stun_B/s/peer")
		b.ReportMetric(perPeer(all), "ip_B/s/peer")
		b.Logf("the hub's datagrams in the window, by kind (presence, STUN, QUIC, other): %v packets, %v payload bytes", traffic.packets, traffic.payload)
	}
	b.Logf("hub with %d peers: %v CPU in %v; alone: %v CPU in %v; peers: %v CPU in all",
		peers, hubCPU, wall.Round(time.Millisecond), alone, window, peerCPU)
}
