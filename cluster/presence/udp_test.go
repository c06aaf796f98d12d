package presence_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"net"
	"net/netip"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/kith-project/kith/cluster/presence"
	"github.com/kith-project/kith/cluster/presence/presencetest"
	"github.com/kith-project/kith/seed"
	"github.com/pion/stun/v2"
)

// udpNode is a presence.Presence on a real UDP socket, as the agent runs it: one
// goroutine reads the socket, asks Admit, then HandleDatagram.
type udpNode struct {
	conn *net.UDPConn
	key  ed25519.PrivateKey
	book *presencetest.Book
	p    *presence.Presence
	wg   sync.WaitGroup

	mu       sync.Mutex
	lastFrom netip.AddrPort
}

func newUDPNode(t *testing.T, listen string, key ed25519.PrivateKey, book *presencetest.Book, tweak func(*presence.Config)) *udpNode {
	t.Helper()
	conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(listen)))
	if err != nil {
		t.Skipf("cannot listen on %s: %v", listen, err)
	}
	n := &udpNode{conn: conn, key: key, book: book}
	cfg := presence.Config{
		Key:  key,
		Book: book,
		Send: func(pkt []byte, to netip.AddrPort) error {
			_, err := conn.WriteToUDPAddrPort(pkt, to)
			return err
		},
		LocalAddrs: func() []netip.AddrPort { return []netip.AddrPort{n.addr()} },
	}
	if tweak != nil {
		tweak(&cfg)
	}
	if n.p, err = presence.New(cfg); err != nil {
		t.Fatal(err)
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		buf := make([]byte, 1500)
		for {
			k, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.lastFrom = from
			n.mu.Unlock()
			if n.p.Admit(from, false) {
				n.p.HandleDatagram(buf[:k], from)
			}
		}
	}()
	t.Cleanup(n.close)
	return n
}

func (n *udpNode) addr() netip.AddrPort { return n.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

func (n *udpNode) close() {
	n.conn.Close()
	n.wg.Wait()
}

// run runs the node's presence.Presence until the returned stop is called; stop
// waits for Run to return and reports its error.
func (n *udpNode) run() (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.p.Run(ctx) }()
	return func() error {
		cancel()
		return <-done
	}
}

// eventually polls cond every 5 ms for up to d.
func eventually(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

func statusOf(p *presence.Presence, device seed.DevicePublic) presence.PeerStatus {
	for _, st := range p.Status() {
		if st.Device.Equal(device) {
			return st
		}
	}
	return presence.PeerStatus{}
}

// Two presences over real loopback UDP find each other, and when one
// restarts on another address the other follows at once.
func TestRunOverUDP(t *testing.T) {
	const T = 50 * time.Millisecond
	ka, kb := testKey("udp a"), testKey("udp b")
	pa, pb := pubOf(ka), pubOf(kb)
	bookA, bookB := presencetest.NewBook(), presencetest.NewBook()
	tweak := func(c *presence.Config) { c.Interval = T }
	a := newUDPNode(t, "127.0.0.1:0", ka, bookA, tweak)
	b := newUDPNode(t, "127.0.0.1:0", kb, bookB, tweak)
	bookA.Add(presence.PeerInfo{Device: pb, Own: true, Addr: b.addr()})
	bookB.Add(presence.PeerInfo{Device: pa, Own: true, Addr: a.addr()})

	stopA, stopB := a.run(), b.run()
	defer stopB()
	if !eventually(5*time.Second, func() bool {
		sa, sb := statusOf(a.p, pb), statusOf(b.p, pa)
		return sa.Online && sa.HaveRTT && sb.Online && sb.HaveRTT
	}) {
		t.Fatalf("no mutual presence: %+v / %+v", statusOf(a.p, pb), statusOf(b.p, pa))
	}
	if err := a.p.Run(context.Background()); !errors.Is(err, presence.ErrRunning) {
		t.Errorf("a second Run returned %v, want presence.ErrRunning", err)
	}
	if st := statusOf(a.p, pb); st.RTT <= 0 || st.RTT > time.Second || st.ClockOffset > 100*time.Millisecond || st.ClockOffset < -100*time.Millisecond {
		t.Errorf("loopback rtt %v offset %v", st.RTT, st.ClockOffset)
	}
	if err := stopA(); err != nil {
		t.Fatalf("Run returned %v", err)
	}
	a.close()

	// Restart a, same key and book, on another loopback address.
	a2 := newUDPNode(t, "127.0.0.2:0", ka, bookA, tweak)
	start := time.Now()
	stopA2 := a2.run()
	defer stopA2()
	if !eventually(5*time.Second, func() bool { return bookB.Addr(pa) == a2.addr() }) {
		t.Fatalf("b still has a at %v, not %v", bookB.Addr(pa), a2.addr())
	}
	if took := time.Since(start); took > 2*T {
		t.Logf("b followed the restart after %v (> 2T; a loaded machine?)", took)
	}
	if !eventually(5*time.Second, func() bool { return statusOf(a2.p, pb).Online && statusOf(b.p, pa).Online }) {
		t.Error("not online again after the restart")
	}
}

// Our STUN server answers pion's client with the client's address.
func TestSTUNServerAnswersPion(t *testing.T) {
	srv := newUDPNode(t, "127.0.0.1:0", testKey("stun server"), presencetest.NewBook(), nil)
	conn, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(srv.addr()))
	if err != nil {
		t.Fatal(err)
	}
	c, err := stun.NewClient(conn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var (
		got    stun.XORMappedAddress
		gotErr error
	)
	err = c.Do(stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint), func(e stun.Event) {
		if e.Error != nil {
			gotErr = e.Error
			return
		}
		if err := stun.Fingerprint.Check(e.Message); err != nil {
			gotErr = err
			return
		}
		gotErr = got.GetFrom(e.Message)
	})
	if err != nil || gotErr != nil {
		t.Fatalf("STUN transaction: %v / %v", err, gotErr)
	}
	want := conn.LocalAddr().(*net.UDPAddr)
	if !got.IP.Equal(want.IP) || got.Port != want.Port {
		t.Errorf("XOR-MAPPED-ADDRESS %v, want %v", got, want)
	}
	if srv.p.Stats().STUNAnswered != 1 {
		t.Errorf("answered %d", srv.p.Stats().STUNAnswered)
	}
}

// coturn's turnutils_stunclient gets its right address from our server.
func TestSTUNInteropTurnutilsClient(t *testing.T) {
	tool, err := exec.LookPath("turnutils_stunclient")
	if err != nil {
		t.Skip("turnutils_stunclient (Debian package coturn) is not on PATH")
	}
	srv := newUDPNode(t, "127.0.0.1:0", testKey("stun server"), presencetest.NewBook(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, tool, "-p", strconv.Itoa(int(srv.addr().Port())), "127.0.0.1").CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", tool, err, out)
	}
	m := regexp.MustCompile(`UDP reflexive addr: (\S+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no reflexive address in:\n%s", out)
	}
	got, err := netip.ParseAddrPort(string(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	srv.mu.Lock()
	want := srv.lastFrom
	srv.mu.Unlock()
	if got != want {
		t.Errorf("turnutils_stunclient was told %v, but its request came from %v", got, want)
	}
}

// Our STUN client gets its mapping from coturn's turnserver.
func TestSTUNClientAgainstTurnserver(t *testing.T) {
	tool, err := exec.LookPath("turnserver")
	if err != nil {
		t.Skip("turnserver (Debian package coturn) is not on PATH")
	}
	// A free port for turnserver: bind one and let it go.
	probe, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	port := probe.LocalAddr().(*net.UDPAddr).Port
	probe.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, tool, "-n", "--stun-only", "--no-tls", "--no-dtls", "--no-cli",
		"-L", "127.0.0.1", "-p", strconv.Itoa(port), "--log-file", "stdout", "--simple-log")
	cmd.Dir = t.TempDir()
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		cmd.Wait()
	}()

	server := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
	n := newUDPNode(t, "127.0.0.1:0", testKey("stun client"), presencetest.NewBook(), func(c *presence.Config) {
		c.Interval = 50 * time.Millisecond // a STUN round every 0.5 s
		c.STUNServers = []netip.AddrPort{server}
	})
	stop := n.run()
	defer stop()
	if !eventually(15*time.Second, func() bool { return slices.Contains(n.p.PublicAddrs(), n.addr()) }) {
		t.Fatalf("no mapping from turnserver: public %v, stats %+v\n%s", n.p.PublicAddrs(), n.p.Stats(), log.String())
	}
}
