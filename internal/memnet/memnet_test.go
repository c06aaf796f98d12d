package memnet

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"testing"
	"time"
)

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func listen(t *testing.T, n *Network, addr string) *Conn {
	t.Helper()
	c, err := n.Listen(ap(addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func send(t *testing.T, from *Conn, to netip.AddrPort, msg string) {
	t.Helper()
	if _, err := from.WriteTo([]byte(msg), net.UDPAddrFromAddrPort(to)); err != nil {
		t.Fatalf("WriteTo %s: %v", to, err)
	}
}

// recv reads one packet, failing after a generous wait.
func recv(t *testing.T, c *Conn) (string, netip.AddrPort) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	buf := make([]byte, 2048)
	n, from, err := c.ReadFrom(buf)
	if err != nil {
		t.Fatalf("ReadFrom: %v", err)
	}
	return string(buf[:n]), from.(*net.UDPAddr).AddrPort()
}

// empty asserts that nothing is queued for c.
func empty(t *testing.T, c *Conn) {
	t.Helper()
	if n := len(c.in); n != 0 {
		t.Fatalf("%d packets queued at %s, want none", n, c.Addr())
	}
}

func TestRoundTrip(t *testing.T) {
	n := New(Options{})
	a := listen(t, n, "10.0.0.1:1000")
	b := listen(t, n, "10.0.0.2:2000")
	send(t, a, b.Addr(), "hello")
	if msg, from := recv(t, b); msg != "hello" || from != a.Addr() {
		t.Fatalf("got %q from %s", msg, from)
	}
	if got := b.LocalAddr().(*net.UDPAddr).AddrPort(); got != ap("10.0.0.2:2000") {
		t.Fatalf("LocalAddr = %s", got)
	}
	// A packet to an address nobody holds is gone.
	send(t, a, ap("10.0.0.3:1"), "void")
	if st := n.Stats(); st.Delivered != 1 || st.NoRoute != 1 {
		t.Fatalf("stats %+v", st)
	}
	// The sender's buffer may be reused at once.
	buf := []byte("first")
	a.WriteTo(buf, net.UDPAddrFromAddrPort(b.Addr()))
	copy(buf, "XXXXX")
	if msg, _ := recv(t, b); msg != "first" {
		t.Fatalf("got %q, want the packet as it was written", msg)
	}
}

func TestListenAddresses(t *testing.T) {
	n := New(Options{})
	a := listen(t, n, "10.0.0.1:1000")
	if _, err := n.Listen(ap("10.0.0.1:1000")); err == nil {
		t.Fatal("a second Listen on a bound address succeeded")
	}
	e1 := listen(t, n, "10.0.0.1:0")
	e2 := listen(t, n, "10.0.0.1:0")
	if e1.Addr().Port() == 0 || e1.Addr() == e2.Addr() {
		t.Fatalf("port 0 gave %s and %s", e1.Addr(), e2.Addr())
	}
	// IPv4-mapped addresses are the IPv4 ones.
	send(t, e1, ap("[::ffff:10.0.0.1]:1000"), "mapped")
	if msg, _ := recv(t, a); msg != "mapped" {
		t.Fatalf("got %q", msg)
	}
	a.Close()
	if _, err := n.Listen(ap("10.0.0.1:1000")); err != nil {
		t.Fatalf("Listen after Close: %v", err)
	}
	if _, err := a.WriteTo([]byte("x"), &net.IPAddr{}); err == nil {
		t.Fatal("WriteTo a non-UDP address succeeded")
	}
}

func TestReadDeadline(t *testing.T) {
	n := New(Options{})
	a := listen(t, n, "10.0.0.1:1")

	a.SetReadDeadline(time.Now().Add(-time.Second))
	_, _, err := a.ReadFrom(make([]byte, 10))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("ReadFrom past the deadline = %v, want a timeout", err)
	}

	// A deadline set while a read waits ends that read.
	done := make(chan error)
	a.SetReadDeadline(time.Time{})
	go func() {
		_, _, err := a.ReadFrom(make([]byte, 10))
		done <- err
	}()
	a.SetDeadline(time.Now()) // may race the reader's start; either way it must end
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("ReadFrom = %v, want a timeout", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a waiting ReadFrom ignored the new deadline")
	}

	// Clearing the deadline makes reads wait again, and a future deadline
	// expires by itself.
	a.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, _, err := a.ReadFrom(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("ReadFrom = %v, want a timeout", err)
	}
}

func TestCloseUnblocksReaders(t *testing.T) {
	n := New(Options{})
	a := listen(t, n, "10.0.0.1:1")
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() { _, _, errs[i] = a.ReadFrom(make([]byte, 10)) })
	}
	a.Close()
	wg.Wait()
	for _, err := range errs {
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("ReadFrom after Close = %v, want net.ErrClosed", err)
		}
	}
	if _, err := a.WriteTo([]byte("x"), net.UDPAddrFromAddrPort(ap("10.0.0.2:1"))); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("WriteTo after Close = %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestFullQueueDrops(t *testing.T) {
	n := New(Options{QueueLen: 4})
	a := listen(t, n, "10.0.0.1:1")
	b := listen(t, n, "10.0.0.2:1")
	for i := range 6 {
		send(t, a, b.Addr(), fmt.Sprint(i))
	}
	if st := n.Stats(); st.Delivered != 4 || st.Overflow != 2 {
		t.Fatalf("stats %+v, want 4 delivered and 2 dropped", st)
	}
	for i := range 4 {
		if msg, _ := recv(t, b); msg != fmt.Sprint(i) {
			t.Fatalf("packet %d is %q", i, msg)
		}
	}
	empty(t, b)
}

func TestPartition(t *testing.T) {
	n := New(Options{})
	a := listen(t, n, "10.0.0.1:1")
	a2 := listen(t, n, "10.0.0.1:2")
	b := listen(t, n, "10.0.0.2:1")
	c := listen(t, n, "10.0.0.3:1")
	n.Partition(a.Addr().Addr(), b.Addr().Addr())
	send(t, a, b.Addr(), "a->b")
	send(t, a2, b.Addr(), "a2->b") // every port of the host is cut off
	send(t, b, a.Addr(), "b->a")
	send(t, c, b.Addr(), "c->b")
	send(t, a, a2.Addr(), "a->a2")
	if st := n.Stats(); st.Partitioned != 3 || st.Delivered != 2 {
		t.Fatalf("stats %+v", st)
	}
	if msg, _ := recv(t, b); msg != "c->b" {
		t.Fatalf("b got %q, want only c's packet", msg)
	}
	empty(t, a)
	n.Heal(b.Addr().Addr(), a.Addr().Addr()) // either order
	send(t, a, b.Addr(), "healed")
	if msg, _ := recv(t, b); msg != "healed" {
		t.Fatalf("b got %q", msg)
	}
	n.Partition(a.Addr().Addr(), b.Addr().Addr())
	n.Partition(a.Addr().Addr(), c.Addr().Addr())
	n.HealAll()
	send(t, a, b.Addr(), "1")
	send(t, a, c.Addr(), "2")
	recv(t, b)
	recv(t, c)
}

// lossPattern sends count packets at p and returns which arrived.
func lossPattern(t *testing.T, seed uint64, p float64, count int) []int {
	n := New(Options{Seed: seed, QueueLen: count})
	a := listen(t, n, "10.0.0.1:1")
	b := listen(t, n, "10.0.0.2:1")
	n.SetLoss(p)
	for i := range count {
		send(t, a, b.Addr(), fmt.Sprint(i))
	}
	var got []int
	for range len(b.in) {
		msg, _ := recv(t, b)
		var i int
		fmt.Sscan(msg, &i)
		got = append(got, i)
	}
	if st := n.Stats(); int(st.Lost)+len(got) != count {
		t.Fatalf("stats %+v with %d received", st, len(got))
	}
	return got
}

func TestLossIsSeeded(t *testing.T) {
	const count = 400
	first := lossPattern(t, 7, 0.3, count)
	again := lossPattern(t, 7, 0.3, count)
	other := lossPattern(t, 8, 0.3, count)
	if !slices.Equal(first, again) {
		t.Fatal("the same seed lost different packets")
	}
	if slices.Equal(first, other) {
		t.Fatal("different seeds lost the same packets")
	}
	// 30% of 400: far outside 200..360 would mean the probability is ignored.
	if len(first) < 200 || len(first) > 360 {
		t.Fatalf("%d of %d packets arrived at 30%% loss", len(first), count)
	}
	if got := lossPattern(t, 7, 1, 10); len(got) != 0 {
		t.Fatalf("loss 1 let %d packets through", len(got))
	}
	if got := lossPattern(t, 7, 0, 10); len(got) != 10 {
		t.Fatalf("loss 0 let %d of 10 packets through", len(got))
	}
}

func TestRebind(t *testing.T) {
	n := New(Options{})
	a := listen(t, n, "10.0.0.1:1")
	b := listen(t, n, "10.0.0.2:1")
	other := listen(t, n, "10.0.0.4:1")
	old := a.Addr()
	send(t, b, old, "queued before")
	if err := a.Rebind(other.Addr()); err == nil {
		t.Fatal("Rebind to a bound address succeeded")
	}
	if err := a.Rebind(ap("10.0.0.3:9")); err != nil {
		t.Fatal(err)
	}
	if a.Addr() != ap("10.0.0.3:9") || a.LocalAddr().String() != "10.0.0.3:9" {
		t.Fatalf("after Rebind the address is %s", a.Addr())
	}
	if msg, _ := recv(t, a); msg != "queued before" {
		t.Fatalf("got %q", msg)
	}
	send(t, a, b.Addr(), "from new")
	if msg, from := recv(t, b); msg != "from new" || from != a.Addr() {
		t.Fatalf("b got %q from %s, want from the new address", msg, from)
	}
	send(t, b, old, "to old")
	send(t, b, a.Addr(), "to new")
	if msg, _ := recv(t, a); msg != "to new" {
		t.Fatalf("got %q", msg)
	}
	if st := n.Stats(); st.NoRoute != 1 {
		t.Fatalf("the packet to the old address: stats %+v", st)
	}
	// The old address is free for someone else.
	listen(t, n, old.String())
}

func TestLatency(t *testing.T) {
	n := New(Options{Latency: 5 * time.Millisecond})
	a := listen(t, n, "10.0.0.1:1")
	b := listen(t, n, "10.0.0.2:1")
	start := time.Now()
	for i := range 20 {
		send(t, a, b.Addr(), fmt.Sprint(i))
	}
	for i := range 20 {
		if msg, _ := recv(t, b); msg != fmt.Sprint(i) {
			t.Fatalf("packet %d is %q: latency reordered packets", i, msg)
		}
	}
	if since := time.Since(start); since < 5*time.Millisecond {
		t.Fatalf("packets arrived after %s, before the latency", since)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	// Close does not wait for packets still on their way.
	slow := New(Options{Latency: time.Hour})
	c := listen(t, slow, "10.0.0.1:1")
	d := listen(t, slow, "10.0.0.2:1")
	send(t, c, d.Addr(), "never")
	if st := slow.Stats(); st.Delivered != 0 {
		t.Fatalf("delivered before the latency: %+v", st)
	}
	slow.Close()
	if _, _, err := d.ReadFrom(make([]byte, 10)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("ReadFrom after Network.Close = %v", err)
	}
	if _, err := slow.Listen(ap("10.0.0.5:1")); err == nil {
		t.Fatal("Listen on a closed network succeeded")
	}
}

func TestTruncatesLongPackets(t *testing.T) {
	n := New(Options{})
	a := listen(t, n, "10.0.0.1:1")
	b := listen(t, n, "10.0.0.2:1")
	send(t, a, b.Addr(), "0123456789")
	buf := make([]byte, 4)
	got, _, err := b.ReadFrom(buf)
	if err != nil || !bytes.Equal(buf[:got], []byte("0123")) {
		t.Fatalf("ReadFrom = %d %q %v", got, buf[:got], err)
	}
}
