package transport

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/kith-project/kith/internal/memnet"
)

// listenMem starts a transport on an in-memory socket at addr.
func listenMem(t *testing.T, n *memnet.Network, addr string, cfg Config) (*Transport, *memnet.Conn) {
	t.Helper()
	pc, err := n.Listen(netip.MustParseAddrPort(addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() }) // after the transport's Close, which leaves it open
	cfg.PacketConn = pc
	return listenT(t, cfg), pc
}

func TestOverMemnet(t *testing.T) {
	n := memnet.New(memnet.Options{Seed: 1})
	defer n.Close()
	ka, kb := testKey("a"), testKey("b")
	sinkB := newSink()
	a, pcA := listenMem(t, n, "10.0.0.1:7070", Config{Key: ka, Authorize: anyKey})
	b, _ := listenMem(t, n, "10.0.0.2:7070", Config{Key: kb, Authorize: anyKey, Datagram: sinkB.receive,
		DropSource: func(from netip.AddrPort, _ bool) bool { return from.Addr() == netip.MustParseAddr("10.0.0.3") }})
	if a.LocalAddr() != netip.MustParseAddrPort("10.0.0.1:7070") {
		t.Fatalf("LocalAddr = %s", a.LocalAddr())
	}
	in := serveEcho(t, b)

	s := openT(t, a, b, 5)
	if got := nextServed(t, in); got.proto != 5 || got.conn.RemoteAddr() != a.LocalAddr() {
		t.Fatalf("b served protocol %d from %s", got.proto, got.conn.RemoteAddr())
	}
	echo(t, s, []byte("over memory"))
	echo(t, s, make([]byte, 200_000))

	// Datagrams share the socket, and DropSource sees them first.
	if err := a.WriteDatagram([]byte{0x30, 1, 2}, b.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	if d := sinkB.next(t); d.from != a.LocalAddr() || len(d.pkt) != 3 {
		t.Fatalf("b got datagram %x from %s", d.pkt, d.from)
	}
	c, _ := listenMem(t, n, "10.0.0.3:7070", Config{Key: testKey("c"), Authorize: anyKey})
	if err := c.WriteDatagram([]byte{0x30}, b.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the dropped datagram to be counted", func() bool { return b.Stats().Dropped == 1 })
	if _, err := pcA.WriteTo([]byte{0x80, 0, 0}, b.pc.LocalAddr()); err != nil { // garbage
		t.Fatal(err)
	}
	eventually(t, "the garbage to be counted", func() bool { return b.Stats().Garbage == 1 })
	if st := b.Stats(); st.Datagrams != 1 {
		t.Fatalf("b's stats %+v", st)
	}

	// Close leaves a supplied socket open.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := pcA.SetReadDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := pcA.ReadFrom(make([]byte, 1)); !isTimeout(err) {
		t.Fatalf("reading the supplied socket after Close = %v, want a timeout", err)
	}
}

func TestMemnetPartition(t *testing.T) {
	n := memnet.New(memnet.Options{})
	defer n.Close()
	cfg := func(name string) Config {
		return Config{Key: testKey(name), Authorize: anyKey, IdleTimeout: time.Second, HandshakeTimeout: time.Second}
	}
	a, _ := listenMem(t, n, "10.0.0.1:1", cfg("a"))
	b, _ := listenMem(t, n, "10.0.0.2:1", cfg("b"))
	serveEcho(t, b)
	s := openT(t, a, b, 1)
	echo(t, s, []byte("before"))

	n.Partition(a.LocalAddr().Addr(), b.LocalAddr().Addr())
	// The connection dies by its idle timeout; a new one cannot be made.
	waitDone(t, s.Conn(), "a connection across a partition")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := a.OpenStream(ctx, b.LocalAddr(), b.PublicKey(), 1); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("OpenStream across a partition = %v, want ErrUnreachable", err)
	}
	if n.Stats().Partitioned == 0 {
		t.Fatal("the network dropped nothing for the partition")
	}

	n.HealAll()
	again := openT(t, a, b, 1)
	echo(t, again, []byte("after"))
}

// A NAT rebinding: a's socket moves to a new address mid-connection. QUIC
// follows it; the stream goes on.
func TestMemnetRebind(t *testing.T) {
	n := memnet.New(memnet.Options{})
	defer n.Close()
	a, pcA := listenMem(t, n, "10.0.0.1:1", Config{Key: testKey("a"), Authorize: anyKey})
	b, _ := listenMem(t, n, "10.0.0.2:1", Config{Key: testKey("b"), Authorize: anyKey})
	in := serveEcho(t, b)
	s := openT(t, a, b, 1)
	server := nextServed(t, in).conn
	echo(t, s, []byte("before"))

	moved := netip.MustParseAddrPort("10.0.9.9:4242")
	if err := pcA.Rebind(moved); err != nil {
		t.Fatal(err)
	}
	if a.LocalAddr() != moved {
		t.Fatalf("LocalAddr after Rebind = %s", a.LocalAddr())
	}
	echo(t, s, []byte("after the move"))
	eventually(t, "b to see a's new address", func() bool { return server.RemoteAddr() == moved })
}

// QUIC recovers what a lossy network drops.
func TestMemnetLossyStream(t *testing.T) {
	n := memnet.New(memnet.Options{Seed: 42})
	defer n.Close()
	a, _ := listenMem(t, n, "10.0.0.1:1", Config{Key: testKey("a"), Authorize: anyKey})
	b, _ := listenMem(t, n, "10.0.0.2:1", Config{Key: testKey("b"), Authorize: anyKey})
	serveEcho(t, b)
	s := openT(t, a, b, 1)
	n.SetLoss(0.1)
	msg := make([]byte, 100_000)
	for i := range msg {
		msg[i] = byte(i * 7)
	}
	echo(t, s, msg)
	if n.Stats().Lost == 0 {
		t.Fatal("the network lost nothing")
	}
}
