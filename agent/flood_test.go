package agent

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kith-project/kith/cluster/presence"
	"github.com/pion/stun/v2"
	"github.com/quic-go/quic-go"
)

// Bounds of one flood: the attacker stops after floodPackets packets or
// floodTime, whichever comes first.
// The attacker sends at floodRate, the rate at which the attack of issue #9
// knocked peers offline.
const (
	floodPackets = 150_000
	floodTime    = 3 * time.Second
	floodRate    = 50_000 // packets per second
	// floodHeartbeat is the agents' heartbeat interval: a peer is offline
	// after about three missed ones.
	floodHeartbeat = 500 * time.Millisecond
)

// floodClasses are the packet classes of BenchmarkFlood.
var floodClasses = []string{"random", "unknown-heartbeat", "known-bad-signature", "quic-initial", "stun-request"}

// BenchmarkFlood floods an agent on loopback with one class of packets at a
// time from a separate process (so that this process's CPU time and memory
// are the agents' alone), and reports, beside the same agents left idle for
// as long:
//
//   - cpu-ms: CPU time of this process (three agents) during the flood,
//     from getrusage;
//   - peak-heap-MiB: the highest HeapInuse sampled during the flood;
//   - sent-pkts/s: what the attacker managed to send;
//   - offline-samples: samples (every 20 ms) at which some peer was not
//     online at some other; the benchmark fails if there is any.
//
// Alice is flooded; bob and carol are her friends. Run it with
//
//	go test -run '^$' -bench BenchmarkFlood -benchtime 1x ./agent/
//
// Every address is on 127.0.0.0/8; each flood is bounded by floodPackets
// and floodTime.
func BenchmarkFlood(b *testing.B) {
	alice := startFloodAgent(b, "alice", "127.0.0.2")
	bob := startFloodAgent(b, "bob", "127.0.0.3")
	carol := startFloodAgent(b, "carol", "127.0.0.4")
	pairAgents(b, alice, bob)
	pairAgents(b, alice, carol)
	pairs := [][2]*testAgent{{alice, bob}, {alice, carol}, {bob, alice}, {carol, alice}}
	allOnline := func() bool {
		for _, p := range pairs {
			if !p[0].onlineSet()[p[1].dev.Cert.Device] {
				return false
			}
		}
		return true
	}
	waitFor(b, "everyone online", allOnline)

	b.Run("idle", func(b *testing.B) {
		for range b.N {
			m := measure(floodTime, allOnline, func() {})
			m.report(b)
		}
	})
	for _, class := range floodClasses {
		b.Run(class, func(b *testing.B) {
			for range b.N {
				var sent string
				m := measure(floodTime, allOnline, func() {
					sent = runFlooder(b, class, alice, bob)
				})
				if n, err := strconv.ParseFloat(sent, 64); err == nil {
					b.ReportMetric(n, "sent-pkts/s")
				}
				m.report(b)
			}
		})
	}
}

// startFloodAgent starts an agent with the heartbeat floodHeartbeat.
func startFloodAgent(b *testing.B, name, host string) *testAgent {
	return startWith(b, Config{Listen: host + ":0", Heartbeat: floodHeartbeat}, newPhrase(b), 0, name)
}

// measured is what measure saw.
type measured struct {
	cpu      time.Duration
	peakHeap uint64
	offline  int
	samples  int
}

func (m measured) report(b *testing.B) {
	b.Logf("cpu %v, peak heap %.1f MiB, offline in %d of %d samples", m.cpu.Round(time.Millisecond), float64(m.peakHeap)/(1<<20), m.offline, m.samples)
	b.ReportMetric(float64(m.cpu.Milliseconds()), "cpu-ms")
	b.ReportMetric(float64(m.peakHeap)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(m.offline), "offline-samples")
	if m.offline > 0 {
		b.Errorf("a peer was offline in %d of %d samples", m.offline, m.samples)
	}
}

// measure runs load (which returns when it is done) or, if it returns at
// once, waits for d, and samples the process's heap and the peers'
// presence meanwhile.
func measure(d time.Duration, online func() bool, load func()) measured {
	var m measured
	cpu0 := processCPU()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			m.peakHeap = max(m.peakHeap, ms.HeapInuse)
			m.samples++
			if !online() {
				m.offline++
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	})
	start := time.Now()
	load()
	if rest := d - time.Since(start); rest > 0 {
		time.Sleep(rest)
	}
	close(done)
	wg.Wait()
	m.cpu = processCPU() - cpu0
	return m
}

// processCPU is this process's user and system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runFlooder runs the attacking process for one class against target and
// returns the rate it reports.
func runFlooder(b *testing.B, class string, target, friend *testAgent) string {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperFlooder$", "-test.bench=^$", "-test.v")
	cmd.Env = append(os.Environ(),
		"KITH_FLOOD_CLASS="+class,
		"KITH_FLOOD_TARGET="+target.Addr().String(),
		"KITH_FLOOD_FRIEND="+hex.EncodeToString(friend.dev.Cert.Device[:]))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	rate := ""
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if r, ok := strings.CutPrefix(sc.Text(), "flood: "); ok {
			rate = strings.Fields(r)[0]
		}
	}
	if err := cmd.Wait(); err != nil {
		b.Fatalf("the flooder: %v", err)
	}
	return rate
}

// TestHelperFlooder is the attacking process of BenchmarkFlood; it does
// nothing unless KITH_FLOOD_CLASS is set. It sends from 127.0.0.50..99.
func TestHelperFlooder(t *testing.T) {
	class := os.Getenv("KITH_FLOOD_CLASS")
	if class == "" {
		t.Skip("the attacker of BenchmarkFlood")
	}
	target, err := net.ResolveUDPAddr("udp", os.Getenv("KITH_FLOOD_TARGET"))
	if err != nil {
		t.Fatal(err)
	}
	if !target.IP.IsLoopback() {
		t.Fatalf("refusing to flood %s: loopback only", target)
	}
	friend, _ := hex.DecodeString(os.Getenv("KITH_FLOOD_FRIEND"))
	pkts := floodPayloads(t, class, friend, target)
	var socks []*net.UDPConn
	for i := range 50 {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, byte(50+i))})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		socks = append(socks, c)
	}
	start := time.Now()
	deadline := start.Add(floodTime)
	n := 0
	for n < floodPackets && time.Now().Before(deadline) {
		for range 256 {
			socks[n%len(socks)].WriteToUDP(pkts[n%len(pkts)], target)
			n++
		}
		// Paced to floodRate: sleep until the next batch is due.
		if due := start.Add(time.Duration(n) * time.Second / floodRate); time.Until(due) > 0 {
			time.Sleep(time.Until(due))
		}
	}
	el := time.Since(start)
	fmt.Printf("flood: %.0f pkts/s (%d packets of class %s in %v)\n", float64(n)/el.Seconds(), n, class, el.Round(time.Millisecond))
}

// floodPayloads makes the packets of one class.
func floodPayloads(t *testing.T, class string, friend []byte, target *net.UDPAddr) [][]byte {
	out := make([][]byte, 0, 1024)
	switch class {
	case "random":
		for range 1024 {
			p := make([]byte, 64+len(out)%1100)
			rand.Read(p)
			out = append(out, p)
		}
	case "unknown-heartbeat", "known-bad-signature":
		// A heartbeat with no records: type, version, sender, seq, t1, count,
		// signature. The signature is random; for the known sender, the
		// sender is a friend of the target.
		for i := range 1024 {
			p := make([]byte, 0, 115)
			p = append(p, presence.TypeHeartbeat, presence.WireVersion)
			sender := make([]byte, 32)
			if class == "known-bad-signature" {
				copy(sender, friend)
			} else {
				rand.Read(sender)
			}
			p = append(p, sender...)
			p = binary.BigEndian.AppendUint64(p, uint64(time.Now().UnixNano())+uint64(i))
			p = binary.BigEndian.AppendUint64(p, uint64(time.Now().UnixNano()))
			p = append(p, 0)
			sig := make([]byte, 64)
			rand.Read(sig)
			out = append(out, append(p, sig...))
		}
	case "stun-request":
		for range 1024 {
			out = append(out, stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint).Raw)
		}
	case "quic-initial":
		out = quicInitials(t, 1024, target)
	default:
		t.Fatalf("unknown flood class %q", class)
	}
	return out
}

// quicInitials makes n QUIC Initial packets, each opening a connection of
// its own (a fresh connection ID), by starting quic-go dials to a socket of
// ours on loopback and keeping the first packet of each. target is only
// checked to be on loopback: an Initial names no destination.
func quicInitials(t *testing.T, n int, target *net.UDPAddr) [][]byte {
	sink, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 49)})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	src, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 48)})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	tr := &quic.Transport{Conn: src}
	defer tr.Close()
	tlsConf := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"kith/1"}, MinVersion: tls.VersionTLS13}
	var wg sync.WaitGroup
	defer wg.Wait()
	buf := make([]byte, 2048)
	var pkts [][]byte
	for len(pkts) < n {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		wg.Go(func() { tr.Dial(ctx, sink.LocalAddr(), tlsConf, &quic.Config{Versions: []quic.Version{quic.Version1}}) })
		sink.SetReadDeadline(time.Now().Add(5 * time.Second))
		k, _, err := sink.ReadFromUDP(buf)
		cancel()
		if err != nil {
			t.Fatalf("quic-go wrote no Initial: %v", err)
		}
		if p := buf[:k]; p[0]&0xf0 == 0xc0 { // long header, type Initial
			pkts = append(pkts, append([]byte(nil), p...))
		}
	}
	_ = target
	return pkts
}
