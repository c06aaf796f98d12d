package transport

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun/v2"
	"github.com/quic-go/quic-go"
)

// acceptAll accepts connections on tr in the background and delivers the
// inbound ones. The goroutine ends with the test.
func acceptAll(t *testing.T, tr *Transport) <-chan *Conn {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan *Conn, 16)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := tr.Accept(ctx)
			if err != nil {
				return
			}
			if c.Direction() == Inbound {
				ch <- c
			}
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	return ch
}

func nextConn(t *testing.T, ch <-chan *Conn) *Conn {
	t.Helper()
	select {
	case c := <-ch:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no inbound connection within 5s")
		return nil
	}
}

// exchange opens a stream on from, sends a request frame, and has the peer's
// conn answer it; it checks both frames arrive intact.
func exchange(t *testing.T, from, to *Conn, req, resp []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := from.openStream(ctx)
	if err != nil {
		t.Fatalf("OpenStream: %v", err)
	}
	defer s.Close()
	if err := WriteFrame(s, req); err != nil {
		t.Fatalf("WriteFrame: %v", err)
	}
	if err := s.CloseWrite(); err != nil {
		t.Fatalf("CloseWrite: %v", err)
	}

	rs, err := to.AcceptStream(ctx)
	if err != nil {
		t.Fatalf("AcceptStream: %v", err)
	}
	got, err := ReadFrame(rs, 0)
	if err != nil {
		t.Fatalf("server ReadFrame: %v", err)
	}
	if !bytes.Equal(got, req) {
		t.Fatalf("server got %q, want %q", got, req)
	}
	if _, err := ReadFrame(rs, 0); err != io.EOF {
		t.Fatalf("after the request, ReadFrame = %v, want io.EOF", err)
	}
	if err := WriteFrame(rs, resp); err != nil {
		t.Fatalf("server WriteFrame: %v", err)
	}
	if err := rs.Close(); err != nil {
		t.Fatalf("server stream Close: %v", err)
	}

	got, err = ReadFrame(s, 0)
	if err != nil {
		t.Fatalf("client ReadFrame: %v", err)
	}
	if !bytes.Equal(got, resp) {
		t.Fatalf("client got %q, want %q", got, resp)
	}
}

func TestConnectBothWays(t *testing.T) {
	ka, kb := testKey("a"), testKey("b")
	ctx := context.Background()

	for _, name := range []string{"a dials b", "b dials a"} {
		// Fresh transports each time: b would otherwise reuse the
		// connection a dialed.
		authA, authB := newAllowlist(kb), newAllowlist(ka)
		a := listenT(t, Config{Key: ka, Listen: "127.0.0.2:0", Authorize: authA.authorize})
		b := listenT(t, Config{Key: kb, Listen: "127.0.0.3:0", Authorize: authB.authorize})
		inA, inB := acceptAll(t, a), acceptAll(t, b)
		type side struct {
			tr   *Transport
			key  ed25519.PrivateKey
			in   <-chan *Conn
			auth *allowlist
		}
		d, srv := side{a, ka, inA, authA}, side{b, kb, inB, authB}
		if name == "b dials a" {
			d, srv = srv, d
		}
		tc := struct {
			name           string
			dialer, server *Transport
			dialerKey      ed25519.PrivateKey
			serverKey      ed25519.PrivateKey
			inbound        <-chan *Conn
			dialerAuth     *allowlist
			serverAuth     *allowlist
		}{name, d.tr, srv.tr, d.key, srv.key, srv.in, d.auth, srv.auth}
		t.Run(tc.name, func(t *testing.T) {
			out, err := tc.dialer.connect(ctx, tc.server.LocalAddr(), pubOf(tc.serverKey))
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			in := nextConn(t, tc.inbound)

			if !out.PeerKey().Equal(pubOf(tc.serverKey)) || !in.PeerKey().Equal(pubOf(tc.dialerKey)) {
				t.Fatalf("peer keys: dialer sees %x, server sees %x", out.PeerKey(), in.PeerKey())
			}
			if out.RemoteAddr() != tc.server.LocalAddr() || in.RemoteAddr() != tc.dialer.LocalAddr() {
				t.Fatalf("addresses: dialer sees %s (want %s), server sees %s (want %s)",
					out.RemoteAddr(), tc.server.LocalAddr(), in.RemoteAddr(), tc.dialer.LocalAddr())
			}
			if out.Direction() != Outbound || in.Direction() != Inbound {
				t.Fatalf("directions: %s, %s", out.Direction(), in.Direction())
			}
			want := []authCall{{peer: fmt.Sprintf("%x", pubOf(tc.serverKey)), remote: tc.server.LocalAddr(), dir: Outbound}}
			if got := tc.dialerAuth.callsFor(tc.serverKey, Outbound); !equalCalls(got, want) {
				t.Fatalf("dialer's Authorize calls = %v, want %v", got, want)
			}
			want = []authCall{{peer: fmt.Sprintf("%x", pubOf(tc.dialerKey)), remote: tc.dialer.LocalAddr(), dir: Inbound}}
			if got := tc.serverAuth.callsFor(tc.dialerKey, Inbound); !equalCalls(got, want) {
				t.Fatalf("server's Authorize calls = %v, want %v", got, want)
			}

			exchange(t, out, in, []byte(`{"hello":"`+tc.name+`"}`), []byte("pong"))
			exchange(t, out, in, bytes.Repeat([]byte{0xab}, 300_000), nil)
			// The accepting side may open streams too.
			exchange(t, in, out, []byte("reverse"), []byte("ok"))
		})
	}
}

func equalCalls(a, b []authCall) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestDialReusesLiveConnection(t *testing.T) {
	ka, kb := testKey("a"), testKey("b")
	a := listenT(t, Config{Key: ka, Listen: "127.0.0.2:0", Authorize: newAllowlist(kb).authorize})
	b := listenT(t, Config{Key: kb, Listen: "127.0.0.3:0", Authorize: newAllowlist(ka).authorize})
	inB := acceptAll(t, b)
	ctx := context.Background()

	// Concurrent dials share one handshake.
	const n = 8
	conns := make([]*Conn, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { conns[i], errs[i] = a.connect(ctx, b.LocalAddr(), pubOf(kb)) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Dial %d: %v", i, errs[i])
		}
		if conns[i] != conns[0] {
			t.Fatalf("Dial %d returned a different connection", i)
		}
	}
	first := nextConn(t, inB)
	select {
	case c := <-inB:
		t.Fatalf("server accepted a second connection from %s", c.RemoteAddr())
	default:
	}

	again, err := a.connect(ctx, b.LocalAddr(), pubOf(kb))
	if err != nil || again != conns[0] {
		t.Fatalf("second Dial = %p, %v; want the cached %p", again, err, conns[0])
	}

	// Closing it drops it from the cache, and the peer learns at once.
	again.close()
	select {
	case <-first.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("server side still open 2s after the dialer closed")
	}
	fresh, err := a.connect(ctx, b.LocalAddr(), pubOf(kb))
	if err != nil {
		t.Fatalf("Dial after Close: %v", err)
	}
	if fresh == again {
		t.Fatal("Dial returned the closed connection")
	}
	exchange(t, fresh, nextConn(t, inB), []byte("after"), []byte("close"))
}

func TestRefusedPeerCannotConnect(t *testing.T) {
	kServer, kGood, kBad := testKey("server"), testKey("good"), testKey("bad")
	const secretReason = "blocked-reason-that-must-stay-private"
	var mu sync.Mutex
	var refused []Direction
	server := listenT(t, Config{
		Key:    kServer,
		Listen: "127.0.0.2:0",
		Authorize: func(peer ed25519.PublicKey, _ netip.AddrPort, dir Direction) error {
			if peer.Equal(pubOf(kGood)) {
				return nil
			}
			mu.Lock()
			refused = append(refused, dir)
			mu.Unlock()
			return errors.New(secretReason)
		},
	})
	bad := listenT(t, Config{Key: kBad, Listen: "127.0.0.3:0", Authorize: newAllowlist(kServer).authorize})
	good := listenT(t, Config{Key: kGood, Listen: "127.0.0.4:0", Authorize: newAllowlist(kServer).authorize})
	in := acceptAll(t, server)
	ctx := context.Background()

	for i := range 3 {
		_, err := bad.connect(ctx, server.LocalAddr(), pubOf(kServer))
		if !errors.Is(err, ErrRefused) {
			t.Fatalf("refused dial %d: err = %v, want ErrRefused", i, err)
		}
		if strings.Contains(err.Error(), secretReason) {
			t.Fatalf("the server's reason leaked to the dialer: %v", err)
		}
	}
	mu.Lock()
	if len(refused) != 3 || refused[0] != Inbound {
		t.Fatalf("server refused %v, want three inbound refusals", refused)
	}
	mu.Unlock()

	// The listener stays healthy, and the refused peer never came out of Accept.
	c, err := good.connect(ctx, server.LocalAddr(), pubOf(kServer))
	if err != nil {
		t.Fatalf("good peer after refusals: %v", err)
	}
	sc := nextConn(t, in)
	if !sc.PeerKey().Equal(pubOf(kGood)) {
		t.Fatalf("Accept returned %x, want the good peer", sc.PeerKey())
	}
	exchange(t, c, sc, []byte("still"), []byte("healthy"))
	select {
	case c := <-in:
		t.Fatalf("Accept returned another connection, from %x", c.PeerKey())
	default:
	}
}

func TestDialerRefusesServer(t *testing.T) {
	ka, kb := testKey("a"), testKey("b")
	a := listenT(t, Config{Key: ka, Listen: "127.0.0.2:0", Authorize: newAllowlist().authorize})
	b := listenT(t, Config{Key: kb, Listen: "127.0.0.3:0", Authorize: newAllowlist(ka).authorize})
	in := acceptAll(t, b)

	_, err := a.connect(context.Background(), b.LocalAddr(), pubOf(kb))
	if !errors.Is(err, ErrUnauthorized) || !errors.Is(err, errUnknownPeer) {
		t.Fatalf("Dial = %v, want ErrUnauthorized wrapping the Authorize error", err)
	}
	// b sees a's key but never a connection.
	c, err := Listen(Config{Authorize: anyKey, Key: testKey("c"), Listen: "127.0.0.4:0"}) // accepts anyone
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.connect(context.Background(), b.LocalAddr(), pubOf(kb)); !errors.Is(err, ErrRefused) {
		t.Fatalf("unknown dialer: %v, want ErrRefused", err)
	}
	select {
	case conn := <-in:
		t.Fatalf("server accepted %x", conn.PeerKey())
	case <-time.After(100 * time.Millisecond):
	}
}

func TestDialWrongKey(t *testing.T) {
	ka, kb, kOther := testKey("a"), testKey("b"), testKey("other")
	a := listenT(t, Config{Key: ka, Listen: "127.0.0.2:0", Authorize: newAllowlist(kb, kOther).authorize})
	b := listenT(t, Config{Key: kb, Listen: "127.0.0.3:0", Authorize: newAllowlist(ka).authorize})
	in := acceptAll(t, b)

	_, err := a.connect(context.Background(), b.LocalAddr(), pubOf(kOther))
	if !errors.Is(err, ErrWrongPeer) {
		t.Fatalf("Dial with the wrong key = %v, want ErrWrongPeer", err)
	}
	// The right key still works.
	c, err := a.connect(context.Background(), b.LocalAddr(), pubOf(kb))
	if err != nil {
		t.Fatalf("Dial with the right key: %v", err)
	}
	exchange(t, c, nextConn(t, in), []byte("x"), []byte("y"))
}

// A client that is not kith at all: no certificate, or another protocol.
func TestForeignClientsRefused(t *testing.T) {
	kb := testKey("b")
	b := listenT(t, Config{Authorize: anyKey, Key: kb, Listen: "127.0.0.3:0"}) // any key, but a certificate and kith/1
	in := acceptAll(t, b)
	cert, err := newCertificate(testKey("stranger"), nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		conf *tls.Config
	}{
		{"no certificate", &tls.Config{InsecureSkipVerify: true, NextProtos: []string{ALPN}}},
		{"other protocol", &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h3"}, Certificates: []tls.Certificate{*cert}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			qc, err := quic.DialAddr(ctx, b.LocalAddr().String(), tc.conf, nil)
			if err == nil {
				// The client may finish before the server judged it; it
				// must then be closed at once.
				select {
				case <-qc.Context().Done():
					err = context.Cause(qc.Context())
				case <-ctx.Done():
					t.Fatal("foreign client still connected")
				}
			}
			var te *quic.TransportError
			if !errors.As(err, &te) || !te.Remote || !te.ErrorCode.IsCryptoError() {
				t.Fatalf("foreign client ended with %v, want a TLS alert from the server", err)
			}
		})
	}
	select {
	case c := <-in:
		t.Fatalf("server accepted a foreign client %s", c.RemoteAddr())
	default:
	}
}

func TestGarbageDroppedWithoutReply(t *testing.T) {
	kb := testKey("b")
	sink := newSink()
	b := listenT(t, Config{Authorize: anyKey, Key: kb, Listen: "127.0.0.3:0", Datagram: sink.receive})
	in := acceptAll(t, b)

	attacker, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.9:0")))
	if err != nil {
		t.Fatal(err)
	}
	defer attacker.Close()
	to := net.UDPAddrFromAddrPort(b.LocalAddr())

	truncatedLong := []byte{0xc3, 0x00, 0x00, 0x00, 0x01, 0x08, 0x01, 0x02}
	forgedInitial := make([]byte, 1200) // QUIC v1 Initial with an 8-byte DCID, random payload
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range forgedInitial {
		forgedInitial[i] = byte(rng.UintN(256))
	}
	copy(forgedInitial, []byte{0xc3, 0x00, 0x00, 0x00, 0x01, 0x08})
	shortHeader := append([]byte{0x41}, forgedInitial[1:100]...)
	packets := [][]byte{
		make([]byte, 1200),             // zeroes
		make([]byte, 1),                // one zero byte
		truncatedLong,                  // truncated QUIC long header
		forgedInitial,                  // undecryptable Initial
		shortHeader,                    // short header for no connection
		{0x80, 0, 0, 0, 0},             // long header without the fixed bit
		{0x00, 0x01, 0x00, 0x04, 1, 2}, // STUN-ish without the cookie
	}
	for range 200 {
		p := make([]byte, 1+rng.IntN(1400))
		for i := range p {
			p[i] = byte(rng.UintN(256))
		}
		packets = append(packets, p)
	}
	var wantGarbage uint64
	for _, p := range packets {
		if refKind(p) == KindGarbage {
			wantGarbage++
		}
		if _, err := attacker.WriteTo(p, to); err != nil {
			t.Fatal(err)
		}
	}
	// A kith datagram sent last arrives: the transport read everything before it.
	marker := []byte{0x20, 'e', 'n', 'd'}
	if _, err := attacker.WriteTo(marker, to); err != nil {
		t.Fatal(err)
	}
	for {
		d := sink.next(t)
		if bytes.Equal(d.pkt, marker) {
			break
		}
	}
	if got := b.Stats().Garbage; got != wantGarbage {
		t.Fatalf("Stats().Garbage = %d, want %d", got, wantGarbage)
	}

	// Nothing came back.
	_ = attacker.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	buf := make([]byte, 2048)
	n, from, err := attacker.ReadFrom(buf)
	if err == nil {
		t.Fatalf("transport replied to garbage: %d bytes from %s: %x", n, from, buf[:min(n, 32)])
	}
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("reading for replies: %v, want a timeout", err)
	}

	// And it still works.
	ka := testKey("a")
	a := listenT(t, Config{Authorize: anyKey, Key: ka, Listen: "127.0.0.2:0"})
	c, err := a.connect(context.Background(), b.LocalAddr(), pubOf(kb))
	if err != nil {
		t.Fatalf("Dial after garbage: %v", err)
	}
	exchange(t, c, nextConn(t, in), []byte("after"), []byte("garbage"))
}

func TestDatagramRoundTrip(t *testing.T) {
	ka, kb := testKey("a"), testKey("b")
	sinkA, sinkB := newSink(), newSink()
	a := listenT(t, Config{Authorize: anyKey, Key: ka, Listen: "127.0.0.2:0", Datagram: sinkA.receive})
	b := listenT(t, Config{Authorize: anyKey, Key: kb, Listen: "127.0.0.3:0", Datagram: sinkB.receive})
	inB := acceptAll(t, b)

	// A QUIC connection is open on the same sockets the whole time.
	conn, err := a.connect(context.Background(), b.LocalAddr(), pubOf(kb))
	if err != nil {
		t.Fatal(err)
	}
	server := nextConn(t, inB)

	for _, pkt := range [][]byte{
		{DatagramPrefixMin},
		{DatagramPrefixMax, 1, 2, 3},
		append([]byte{0x10}, bytes.Repeat([]byte{0x5a}, 1000)...),
	} {
		if err := a.WriteDatagram(pkt, b.LocalAddr()); err != nil {
			t.Fatalf("WriteDatagram: %v", err)
		}
		d := sinkB.next(t)
		if !bytes.Equal(d.pkt, pkt) || d.from != a.LocalAddr() {
			t.Fatalf("b got %x from %s, want %x from %s", d.pkt, d.from, pkt, a.LocalAddr())
		}
	}

	// STUN: a binding request, and a success response (first byte 0x01) back.
	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	if Classify(req.Raw) != KindSTUN {
		t.Fatalf("binding request classifies as %s", Classify(req.Raw))
	}
	if err := a.WriteDatagram(req.Raw, b.LocalAddr()); err != nil {
		t.Fatalf("WriteDatagram(STUN): %v", err)
	}
	d := sinkB.next(t)
	got := &stun.Message{Raw: d.pkt}
	if err := got.Decode(); err != nil || got.Type != stun.BindingRequest || got.TransactionID != req.TransactionID {
		t.Fatalf("b got %v (%v), want the binding request", got, err)
	}
	resp := stun.MustBuild(stun.NewTransactionIDSetter(req.TransactionID), stun.BindingSuccess,
		&stun.XORMappedAddress{IP: d.from.Addr().AsSlice(), Port: int(d.from.Port())}, stun.Fingerprint)
	if resp.Raw[0] != 0x01 || Classify(resp.Raw) != KindSTUN {
		t.Fatalf("binding success %x classifies as %s", resp.Raw[:4], Classify(resp.Raw))
	}
	if err := b.WriteDatagram(resp.Raw, d.from); err != nil {
		t.Fatalf("WriteDatagram(STUN response): %v", err)
	}
	back := &stun.Message{Raw: sinkA.next(t).pkt}
	var mapped stun.XORMappedAddress
	if err := back.Decode(); err != nil {
		t.Fatalf("decoding the response: %v", err)
	}
	if err := mapped.GetFrom(back); err != nil || mapped.Port != int(a.LocalAddr().Port()) {
		t.Fatalf("mapped address %v (%v), want port %d", mapped, err, a.LocalAddr().Port())
	}

	// Only STUN and kith datagrams may be written raw.
	for _, bad := range [][]byte{nil, {0x00}, {0x40, 1}, {0xc0, 0, 0, 0, 1}, {0x80}, {0x03, 0, 0, 0}} {
		if err := a.WriteDatagram(bad, b.LocalAddr()); !errors.Is(err, ErrNotDatagram) {
			t.Fatalf("WriteDatagram(%x) = %v, want ErrNotDatagram", bad, err)
		}
	}
	if got := b.Stats().Datagrams; got != 4 {
		t.Fatalf("b counted %d datagrams, want 4", got)
	}
	exchange(t, conn, server, []byte("quic"), []byte("still fine"))
}

func TestDropSource(t *testing.T) {
	ka, kb, kc := testKey("a"), testKey("b"), testKey("c")
	blocked := netip.MustParseAddrPort("127.0.0.4:0")
	var mu sync.Mutex
	seen := map[bool]int{} // quic flag -> calls from the blocked address
	sink := newSink()
	b := listenT(t, Config{
		Authorize: anyKey,
		Key:       kb,
		Listen:    "127.0.0.3:0",
		Datagram:  sink.receive,
		DropSource: func(from netip.AddrPort, isQUIC bool) bool {
			if from.Addr() != blocked.Addr() {
				return false
			}
			mu.Lock()
			seen[isQUIC]++
			mu.Unlock()
			return true
		},
	})
	in := acceptAll(t, b)
	c := listenT(t, Config{Authorize: anyKey, Key: kc, Listen: blocked.String(), HandshakeTimeout: 300 * time.Millisecond})
	a := listenT(t, Config{Authorize: anyKey, Key: ka, Listen: "127.0.0.2:0"})

	if err := c.WriteDatagram([]byte{0x21, 'x'}, b.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the blocked datagram to be dropped", func() bool { return b.Stats().Dropped >= 1 })
	_, err := c.connect(context.Background(), b.LocalAddr(), pubOf(kb))
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Dial from a dropped source = %v, want ErrUnreachable", err)
	}
	mu.Lock()
	if seen[false] != 1 || seen[true] == 0 {
		t.Fatalf("DropSource calls from the blocked source: %v, want 1 non-QUIC and some QUIC", seen)
	}
	mu.Unlock()

	// Others are unaffected.
	if err := a.WriteDatagram([]byte{0x21, 'y'}, b.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	if d := sink.next(t); !bytes.Equal(d.pkt, []byte{0x21, 'y'}) {
		t.Fatalf("b got %x, want the allowed datagram", d.pkt)
	}
	conn, err := a.connect(context.Background(), b.LocalAddr(), pubOf(kb))
	if err != nil {
		t.Fatalf("allowed Dial: %v", err)
	}
	sc := nextConn(t, in)
	if !sc.PeerKey().Equal(pubOf(ka)) {
		t.Fatalf("accepted %x, want a", sc.PeerKey())
	}
	exchange(t, conn, sc, []byte("1"), []byte("2"))
}

func TestCloseWaitsForGoroutines(t *testing.T) {
	baseline := runtime.NumGoroutine()
	ka, kb := testKey("a"), testKey("b")
	a, err := Listen(Config{Authorize: anyKey, Key: ka, Listen: "127.0.0.2:0", Datagram: func([]byte, netip.AddrPort) {}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Listen(Config{Authorize: anyKey, Key: kb, Listen: "127.0.0.3:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	accepted := make(chan *Conn, 1)
	acceptErr := make(chan error, 1)
	go func() {
		c, err := b.Accept(ctx)
		if err != nil {
			t.Errorf("Accept: %v", err)
		}
		accepted <- c
		_, err = b.Accept(ctx) // blocks until Close
		acceptErr <- err
	}()
	conn, err := a.connect(ctx, b.LocalAddr(), pubOf(kb))
	if err != nil {
		t.Fatal(err)
	}
	server := <-accepted
	exchange(t, conn, server, []byte("a"), []byte("b"))
	if err := b.WriteDatagram([]byte{0x30}, a.LocalAddr()); err != nil {
		t.Fatal(err)
	}

	// Closing b tells a at once, long before the idle timeout.
	var wg sync.WaitGroup
	for range 3 { // concurrent and repeated Close
		wg.Go(func() {
			if err := b.Close(); err != nil {
				t.Errorf("b.Close: %v", err)
			}
		})
	}
	wg.Wait()
	select {
	case <-conn.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("a's connection still open 2s after b closed")
	}
	if err := <-acceptErr; !errors.Is(err, ErrClosed) {
		t.Fatalf("Accept after Close = %v, want ErrClosed", err)
	}
	if _, err := b.connect(ctx, a.LocalAddr(), pubOf(ka)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Dial after Close = %v, want ErrClosed", err)
	}
	if err := b.WriteDatagram([]byte{0x30}, a.LocalAddr()); !errors.Is(err, ErrClosed) {
		t.Fatalf("WriteDatagram after Close = %v, want ErrClosed", err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// The port is free again.
	u, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(a.LocalAddr()))
	if err != nil {
		t.Fatalf("port still held after Close: %v", err)
	}
	u.Close()
	eventually(t, "goroutines to return to the baseline", func() bool {
		return runtime.NumGoroutine() <= baseline
	})
}

// quic-go prints some warnings with the standard log package; none may
// appear on a normal run.
func TestNoStandardLogOutput(t *testing.T) {
	var buf bytes.Buffer
	prev := log.Writer()
	log.SetOutput(&buf)
	defer log.SetOutput(prev)
	ka, kb := testKey("a"), testKey("b")
	a := listenT(t, Config{Authorize: anyKey, Key: ka, Listen: "127.0.0.2:0"})
	b := listenT(t, Config{Authorize: anyKey, Key: kb, Listen: "127.0.0.3:0"})
	in := acceptAll(t, b)
	c, err := a.connect(context.Background(), b.LocalAddr(), pubOf(kb))
	if err != nil {
		t.Fatal(err)
	}
	exchange(t, c, nextConn(t, in), []byte("q"), []byte("r"))
	if buf.Len() != 0 {
		t.Fatalf("the standard logger printed: %s", buf.String())
	}
}

func TestListenErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no key", Config{Authorize: anyKey, Listen: "127.0.0.2:0"}},
		{"no Authorize", Config{Key: testKey("a"), Listen: "127.0.0.2:0"}},
		{"short key", Config{Authorize: anyKey, Key: ed25519.PrivateKey(make([]byte, 32)), Listen: "127.0.0.2:0"}},
		{"bad address", Config{Authorize: anyKey, Key: testKey("a"), Listen: "127.0.0.2"}},
		{"address and socket", Config{Authorize: anyKey, Key: testKey("a"), Listen: "127.0.0.2:0", PacketConn: &net.UDPConn{}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tr, err := Listen(tc.cfg); err == nil {
				tr.Close()
				t.Fatal("Listen succeeded")
			}
		})
	}
	tr := listenT(t, Config{Authorize: anyKey, Key: testKey("a"), Listen: "127.0.0.2:0"})
	if _, err := Listen(Config{Authorize: anyKey, Key: testKey("b"), Listen: tr.LocalAddr().String()}); err == nil {
		t.Fatal("second Listen on a taken port succeeded")
	}
	if _, err := tr.connect(context.Background(), netip.AddrPort{}, pubOf(testKey("b"))); err == nil {
		t.Fatal("Dial to the zero address succeeded")
	}
	if _, err := tr.connect(context.Background(), tr.LocalAddr(), make([]byte, 5)); err == nil {
		t.Fatal("Dial with a 5-byte key succeeded")
	}
}

// The zero Listen address: every interface, a system-chosen port.
func TestListenAllInterfaces(t *testing.T) {
	ka, kb := testKey("a"), testKey("b")
	sink := newSink()
	b := listenT(t, Config{Authorize: anyKey, Key: kb, Datagram: sink.receive})
	if b.LocalAddr().Port() == 0 || !b.LocalAddr().Addr().IsUnspecified() {
		t.Fatalf("LocalAddr = %s, want an unspecified address with a port", b.LocalAddr())
	}
	in := acceptAll(t, b)
	a := listenT(t, Config{Authorize: anyKey, Key: ka, Listen: "127.0.0.2:0"})
	to := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), b.LocalAddr().Port())
	if err := a.WriteDatagram([]byte{0x22}, to); err != nil {
		t.Fatal(err)
	}
	if d := sink.next(t); d.from != a.LocalAddr() {
		t.Fatalf("datagram from %s, want %s", d.from, a.LocalAddr())
	}
	c, err := a.connect(context.Background(), to, pubOf(kb))
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	sc := nextConn(t, in)
	if sc.RemoteAddr() != a.LocalAddr() {
		t.Fatalf("server sees %s, want %s", sc.RemoteAddr(), a.LocalAddr())
	}
	exchange(t, c, sc, []byte("any"), []byte("interface"))
}

// A peer that moved: a stream to the new address goes over a new connection,
// and streams on the old one are not disturbed; the old one lingers out.
func TestOpenStreamNewAddressDialsAnew(t *testing.T) {
	ka, kb := testKey("a"), testKey("b")
	a := listenT(t, Config{Authorize: anyKey, Key: ka, Listen: "127.0.0.2:0", IdleLinger: 50 * time.Millisecond})
	oldB := listenT(t, Config{Authorize: anyKey, Key: kb, Listen: "127.0.0.3:0"})
	newB := listenT(t, Config{Authorize: anyKey, Key: kb, Listen: "127.0.0.4:0"})
	inOld, inNew := serveEcho(t, oldB), serveEcho(t, newB)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	first, err := a.OpenStream(ctx, oldB.LocalAddr(), pubOf(kb), 7)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	<-inOld
	second, err := a.OpenStream(ctx, newB.LocalAddr(), pubOf(kb), 7)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	<-inNew
	if second.Conn() == first.Conn() || second.Conn().RemoteAddr() != newB.LocalAddr() {
		t.Fatalf("the stream to the new address went to %s", second.Conn().RemoteAddr())
	}
	echo(t, first, []byte("old path still works"))
	echo(t, second, []byte("new path works"))

	old := first.Conn()
	first.Close()
	select {
	case <-old.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the unused connection to the old address stayed open")
	}
	again, err := a.OpenStream(ctx, newB.LocalAddr(), pubOf(kb), 7)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if again.Conn() != second.Conn() {
		t.Fatal("a second stream to the new address did not reuse its connection")
	}
	echo(t, again, []byte("moved"))
}

func TestStreamAsNetConn(t *testing.T) {
	ka, kb := testKey("a"), testKey("b")
	a := listenT(t, Config{Authorize: anyKey, Key: ka, Listen: "127.0.0.2:0"})
	b := listenT(t, Config{Authorize: anyKey, Key: kb, Listen: "127.0.0.3:0"})
	in := acceptAll(t, b)
	ctx := context.Background()
	c, err := a.connect(ctx, b.LocalAddr(), pubOf(kb))
	if err != nil {
		t.Fatal(err)
	}
	sc := nextConn(t, in)
	s, err := c.openStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.Conn() != c || s.LocalAddr().String() != a.LocalAddr().String() || s.RemoteAddr().String() != b.LocalAddr().String() {
		t.Fatalf("stream addresses %s -> %s", s.LocalAddr(), s.RemoteAddr())
	}
	// A read deadline ends a read with a timeout, as for any net.Conn.
	if err := s.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read(make([]byte, 1)); !isTimeout(err) {
		t.Fatalf("Read past the deadline = %v, want a timeout", err)
	}
	if err := s.SetDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetWriteDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}

	// Accept gives up with its context, not with ErrClosed.
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := sc.AcceptStream(short); errors.Is(err, ErrClosed) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("AcceptStream with an expired context = %v", err)
	}
	if _, err := b.Accept(short); errors.Is(err, ErrClosed) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Accept with an expired context = %v", err)
	}

	// Once the connection is closed, streams report ErrClosed.
	c.close()
	if _, err := c.openStream(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("OpenStream on a closed connection = %v, want ErrClosed", err)
	}
	<-sc.Done()
	if _, err := sc.AcceptStream(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("AcceptStream on a closed connection = %v, want ErrClosed", err)
	}
	if _, err := s.Write([]byte("x")); err == nil {
		t.Fatal("Write on a stream of a closed connection succeeded")
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
