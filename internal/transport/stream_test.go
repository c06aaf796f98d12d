package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"
)

// served is a stream a serveEcho server accepted.
type served struct {
	conn  *Conn
	proto byte
}

// serveEcho accepts every connection of tr, dialed or accepted, reads each
// stream's protocol byte, reports it, and echoes the stream's frames until
// the peer ends it. Its goroutines end with the test.
func serveEcho(t *testing.T, tr *Transport) <-chan served {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan served, 64)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := tr.Accept(ctx)
			if err != nil {
				return
			}
			wg.Go(func() {
				for {
					s, err := c.AcceptStream(ctx)
					if err != nil {
						return
					}
					wg.Go(func() {
						defer s.Close()
						stop := context.AfterFunc(ctx, func() { s.Close() })
						defer stop()
						var proto [1]byte
						if _, err := io.ReadFull(s, proto[:]); err != nil {
							return
						}
						select {
						case ch <- served{c, proto[0]}:
						case <-ctx.Done():
							return
						}
						for {
							f, err := ReadFrame(s, 0)
							if err != nil {
								return
							}
							if err := WriteFrame(s, f); err != nil {
								return
							}
						}
					})
				}
			})
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	return ch
}

func nextServed(t *testing.T, ch <-chan served) served {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no stream served within 10s")
		return served{}
	}
}

// echo sends msg on s and checks that the echo server sends it back intact.
func echo(t *testing.T, s *Stream, msg []byte) {
	t.Helper()
	if err := echoErr(s, msg); err != nil {
		t.Fatal(err)
	}
}

func echoErr(s *Stream, msg []byte) error {
	s.SetDeadline(time.Now().Add(10 * time.Second))
	defer s.SetDeadline(time.Time{})
	if err := WriteFrame(s, msg); err != nil {
		return fmt.Errorf("WriteFrame: %w", err)
	}
	got, err := ReadFrame(s, 0)
	if err != nil {
		return fmt.Errorf("ReadFrame: %w", err)
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("echo of %d bytes came back as %d different bytes", len(msg), len(got))
	}
	return nil
}

func waitDone(t *testing.T, c *Conn, what string) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("%s is still open after 10s", what)
	}
}

func openT(t *testing.T, from, to *Transport, proto byte) *Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := from.OpenStream(ctx, to.LocalAddr(), to.PublicKey(), proto)
	if err != nil {
		t.Fatalf("OpenStream: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Two users of one connection: one closes its stream while the other keeps
// streaming, and the other is not disturbed.
func TestTwoUsersOneConnection(t *testing.T) {
	ka, kb := testKey("a"), testKey("b")
	// A linger of a millisecond: were the connection to count only the
	// stream that closed, it would be closed at once.
	a := listenT(t, Config{Key: ka, Listen: "127.0.0.2:0", Authorize: anyKey, IdleLinger: time.Millisecond})
	b := listenT(t, Config{Key: kb, Listen: "127.0.0.3:0", Authorize: anyKey, IdleLinger: time.Millisecond})
	in := serveEcho(t, b)

	raft := openT(t, a, b, 1)
	msgs := openT(t, a, b, 2)
	if raft.Conn() != msgs.Conn() {
		t.Fatal("two streams to the same peer went over two connections")
	}
	s1, s2 := nextServed(t, in), nextServed(t, in)
	if s1.conn != s2.conn || s1.proto+s2.proto != 3 || s1.proto == s2.proto {
		t.Fatalf("server saw protocols %d, %d on connections %p, %p", s1.proto, s2.proto, s1.conn, s2.conn)
	}
	echo(t, raft, []byte("vote"))

	// msgs streams frames in the background; raft closes in the middle.
	const frames = 200
	halfway := make(chan struct{})
	streamErr := make(chan error, 1)
	go func() {
		for i := range frames {
			if i == frames/2 {
				close(halfway)
			}
			msg := bytes.Repeat([]byte{byte(i)}, 1000+i*37)
			if err := echoErr(msgs, msg); err != nil {
				streamErr <- fmt.Errorf("frame %d: %w", i, err)
				return
			}
		}
		streamErr <- nil
	}()
	<-halfway
	if err := raft.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := raft.Close(); err != nil { // idempotent
		t.Fatalf("second Close: %v", err)
	}
	if err := <-streamErr; err != nil {
		t.Fatalf("the other stream was disturbed: %v", err)
	}
	// Well past the linger, the connection still serves the open stream,
	// large frames included.
	echo(t, msgs, bytes.Repeat([]byte("after close "), 30_000))
	select {
	case <-msgs.Conn().Done():
		t.Fatal("closing one stream closed the connection")
	default:
	}
	if _, err := raft.Write([]byte("x")); err == nil {
		t.Fatal("Write on a closed stream succeeded")
	}
	// Once the last stream closes, the linger closes the connection.
	msgs.CloseWrite()
	msgs.Close()
	waitDone(t, msgs.Conn(), "the unused connection")
}

func TestLingerClosesUnusedConnection(t *testing.T) {
	ka, kb := testKey("a"), testKey("b")
	a := listenT(t, Config{Key: ka, Listen: "127.0.0.2:0", Authorize: anyKey, IdleLinger: 20 * time.Millisecond})
	b := listenT(t, Config{Key: kb, Listen: "127.0.0.3:0", Authorize: anyKey, IdleLinger: -1})
	in := serveEcho(t, b)

	s := openT(t, a, b, 1)
	server := nextServed(t, in).conn
	echo(t, s, []byte("hello"))
	// An open stream keeps the connection however long it is quiet.
	time.Sleep(10 * 20 * time.Millisecond)
	echo(t, s, []byte("still here"))

	c := s.Conn()
	s.Close()
	waitDone(t, c, "the dialed connection")
	waitDone(t, server, "the peer's side of it") // told, not timed out

	// The next stream dials anew.
	again := openT(t, a, b, 1)
	if again.Conn() == c {
		t.Fatal("OpenStream reused a closed connection")
	}
	echo(t, again, []byte("again"))
}

func TestOpenStreamReusesInboundConnection(t *testing.T) {
	ka, kb := testKey("a"), testKey("b")
	a := listenT(t, Config{Key: ka, Listen: "127.0.0.2:0", Authorize: anyKey, IdleLinger: 20 * time.Millisecond})
	b := listenT(t, Config{Key: kb, Listen: "127.0.0.3:0", Authorize: anyKey})
	inA, inB := serveEcho(t, a), serveEcho(t, b)

	out := openT(t, a, b, 1)
	atB := nextServed(t, inB).conn
	echo(t, out, []byte("a to b"))

	// b opens a stream back: it goes over the connection a dialed.
	back := openT(t, b, a, 2)
	if back.Conn() != atB || back.Conn().Direction() != Inbound {
		t.Fatalf("b's stream went over a %s connection, not the one a dialed", back.Conn().Direction())
	}
	if got := nextServed(t, inA); got.conn != out.Conn() || got.proto != 2 {
		t.Fatalf("a served protocol %d on %s connection %p, want 2 on the one it dialed", got.proto, got.conn.Direction(), got.conn)
	}
	echo(t, back, []byte("b to a"))

	// a's own stream closes; the one b opened keeps the connection in use.
	out.Close()
	time.Sleep(10 * 20 * time.Millisecond)
	echo(t, back, []byte("still served"))
	back.Close()
	waitDone(t, atB, "the connection no stream uses")
}

func TestConcurrentOpenStreamShareOneDial(t *testing.T) {
	ka, kb := testKey("a"), testKey("b")
	a := listenT(t, Config{Key: ka, Listen: "127.0.0.2:0", Authorize: anyKey})
	b := listenT(t, Config{Key: kb, Listen: "127.0.0.3:0", Authorize: newAllowlist(ka).authorize})
	inB := serveEcho(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	const n = 8
	streams := make([]*Stream, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { streams[i], errs[i] = a.OpenStream(ctx, b.LocalAddr(), pubOf(kb), byte(i)) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("OpenStream %d: %v", i, errs[i])
		}
		defer streams[i].Close()
		if streams[i].Conn() != streams[0].Conn() {
			t.Fatalf("OpenStream %d went over another connection", i)
		}
	}
	seen := map[byte]bool{}
	for range n {
		s := nextServed(t, inB)
		if s.conn.Direction() != Inbound || s.conn.RemoteAddr() != a.LocalAddr() {
			t.Fatalf("served on a %s connection from %s", s.conn.Direction(), s.conn.RemoteAddr())
		}
		seen[s.proto] = true
	}
	if len(seen) != n {
		t.Fatalf("served protocols %v, want %d distinct", seen, n)
	}
	for i, s := range streams {
		echo(t, s, []byte{byte(i)})
	}
	b.mu.Lock()
	conns := len(b.conns)
	b.mu.Unlock()
	if conns != 1 {
		t.Fatalf("b holds %d connections, want 1", conns)
	}

	// A failed dial is shared too: every caller gets its error.
	c := listenT(t, Config{Key: testKey("c"), Listen: "127.0.0.4:0", Authorize: anyKey})
	for i := range n {
		wg.Go(func() { _, errs[i] = c.OpenStream(ctx, b.LocalAddr(), pubOf(kb), 1) })
	}
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, ErrRefused) {
			t.Fatalf("OpenStream %d by a refused device: %v, want ErrRefused", i, err)
		}
	}
}

func TestCredentialOnConn(t *testing.T) {
	ka, kb := testKey("a"), testKey("b")
	cred := []byte("b's device certificate, signed by b's user")
	a := listenT(t, Config{Key: ka, Listen: "127.0.0.2:0", Authorize: anyKey})
	b := listenT(t, Config{Key: kb, Listen: "127.0.0.3:0", Authorize: anyKey, Credential: cred})
	inB := serveEcho(t, b)

	s := openT(t, a, b, 1)
	if got := s.Conn().Credential(); !bytes.Equal(got, cred) {
		t.Fatalf("Credential = %q, want %q", got, cred)
	}
	if got := s.Credential(); !bytes.Equal(got, cred) {
		t.Fatalf("Stream.Credential = %q, want %q", got, cred)
	}
	s.Credential()[0] = 'X' // a copy
	if got := s.Credential(); !bytes.Equal(got, cred) {
		t.Fatal("Credential handed out the connection's own bytes")
	}
	if !s.PeerKey().Equal(pubOf(kb)) {
		t.Fatal("Stream.PeerKey is not b's key")
	}
	if got := nextServed(t, inB).conn.Credential(); got != nil {
		t.Fatalf("a carries no credential, but b sees %q", got)
	}
}
