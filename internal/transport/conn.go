package transport

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
)

// Conn is an authenticated QUIC connection to one peer device. It is shared:
// every stream to the peer that OpenStream opens may go over it, and the
// Transport closes it (see the package comment); its users close only their
// streams.
type Conn struct {
	// Constant after register.
	t          *Transport
	qc         *quic.Conn
	peer       ed25519.PublicKey
	dir        Direction
	credential []byte // from the peer's certificate; nil if none
	created    time.Time

	// Guarded by t.mu.
	stranger bool // inbound from a key Config.Stranger called a stranger's when it connected

	mu sync.Mutex
	// Guarded by mu.
	refs      int         // open Streams, and references taken by connect
	idleSince time.Time   // when refs last became 0
	linger    *time.Timer // armed while an outbound conn has no references
	lingerGen uint64      // tells a stale linger callback from the current one
	retired   bool        // closing or closed: no new references
}

// PeerKey is the peer device's public key, as proven in the handshake.
func (c *Conn) PeerKey() ed25519.PublicKey {
	return append(ed25519.PublicKey(nil), c.peer...)
}

// Credential is the credential the peer's certificate carries (see the
// package comment and Config.Credential), nil if it carries none. For kith it
// is the peer's device certificate signed by its user key. The transport
// checked nothing in it.
func (c *Conn) Credential() []byte {
	if c.credential == nil {
		return nil
	}
	return append([]byte(nil), c.credential...)
}

// RemoteAddr is the peer's current address.
func (c *Conn) RemoteAddr() netip.AddrPort { return addrPortOf(c.qc.RemoteAddr()) }

// Direction tells whether we dialed the peer or it dialed us.
func (c *Conn) Direction() Direction { return c.dir }

// Done is closed when the connection has closed, by either side, by an idle
// timeout, or by the transport once it went unused for Config.IdleLinger.
func (c *Conn) Done() <-chan struct{} { return c.qc.Context().Done() }

func (c *Conn) alive() bool { return c.qc.Context().Err() == nil }

// reuse takes a reference on c for a new stream if c may carry one: it is
// open, and, when the peer dialed it (and so the peer's linger will close it),
// it is in use or has not been unused for more than half the linger, so that
// a stream does not start on a connection the peer is about to close.
func (c *Conn) reuse(now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.retired || !c.alive() {
		return false
	}
	if l := c.t.idleLinger; c.dir == Inbound && c.refs == 0 && l > 0 && now.Sub(c.idleSince) >= l/2 {
		return false
	}
	c.holdLocked()
	return true
}

// hold takes a reference on c unless it is retired.
func (c *Conn) hold() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.retired {
		return false
	}
	c.holdLocked()
	return true
}

func (c *Conn) holdLocked() {
	c.refs++
	c.lingerGen++
	if c.linger != nil {
		if c.linger.Stop() {
			c.t.watchers.Done()
		}
		c.linger = nil
	}
}

// release drops a reference; the last one on an outbound connection starts
// the linger.
func (c *Conn) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.refs--; c.refs > 0 {
		return
	}
	c.idleSince = time.Now()
	if c.dir != Outbound || c.retired || c.t.idleLinger <= 0 {
		return
	}
	// The conn's own watcher still counts in t.watchers (it marks the conn
	// retired, under mu, before it is done), so this Add cannot race with
	// Transport.Close's Wait.
	c.lingerGen++
	gen := c.lingerGen
	c.t.watchers.Add(1)
	c.linger = time.AfterFunc(c.t.idleLinger, func() { c.lingerExpired(gen) })
}

// lingerExpired closes the connection if it is still unused.
func (c *Conn) lingerExpired(gen uint64) {
	defer c.t.watchers.Done()
	c.mu.Lock()
	if gen != c.lingerGen || c.refs > 0 || c.retired {
		c.mu.Unlock()
		return
	}
	c.retired = true
	c.linger = nil
	c.mu.Unlock()
	c.t.log.Debug("transport: closing unused connection", "remote", c.RemoteAddr(), "linger", c.t.idleLinger)
	c.closeWith(codeClosed, "unused")
}

// closed is called once the QUIC connection has closed: it retires c and
// stops its linger.
func (c *Conn) closed() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.retired = true
	c.lingerGen++
	if c.linger != nil {
		if c.linger.Stop() {
			c.t.watchers.Done()
		}
		c.linger = nil
	}
}

// openStream opens a bidirectional stream to the peer, holding a reference on
// c until the stream is closed. The peer's AcceptStream returns it once the
// first byte has been written.
func (c *Conn) openStream(ctx context.Context) (*Stream, error) {
	if !c.hold() {
		return nil, fmt.Errorf("%w: opening stream with %s: connection closing", ErrClosed, c.RemoteAddr())
	}
	s, err := c.qc.OpenStreamSync(ctx)
	if err != nil {
		c.release()
		return nil, c.streamError("opening", err)
	}
	return &Stream{s: s, conn: c}, nil
}

// AcceptStream waits for the peer to open a stream. The stream keeps the
// connection in use, as a stream opened by OpenStream does, until it is
// closed.
func (c *Conn) AcceptStream(ctx context.Context) (*Stream, error) {
	s, err := c.qc.AcceptStream(ctx)
	if err != nil {
		return nil, c.streamError("accepting", err)
	}
	c.mu.Lock()
	c.holdLocked() // even when retired: the stream fails with the connection
	c.mu.Unlock()
	return &Stream{s: s, conn: c}, nil
}

func (c *Conn) streamError(doing string, err error) error {
	if !c.alive() && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %s stream with %s: %w", ErrClosed, doing, c.RemoteAddr(), err)
	}
	return fmt.Errorf("transport: %s stream with %s: %w", doing, c.RemoteAddr(), err)
}

// close closes the connection for every user of it and tells the peer.
// Streams still open fail. It is safe to call more than once.
func (c *Conn) close() {
	c.closeWith(codeClosed, "")
}

func (c *Conn) closeWith(code quic.ApplicationErrorCode, reason string) {
	c.mu.Lock()
	c.retired = true
	c.mu.Unlock()
	_ = c.qc.CloseWithError(code, reason)
}

// Stream is a bidirectional QUIC stream. It implements net.Conn.
//
// A Stream keeps its connection in use until Close; a caller must close every
// stream it opened or accepted, even after CloseWrite or an error.
type Stream struct {
	s    *quic.Stream
	conn *Conn

	closeOnce sync.Once
	closeErr  error
}

var _ net.Conn = (*Stream)(nil)

// Conn is the connection the stream belongs to.
func (s *Stream) Conn() *Conn { return s.conn }

// PeerKey is the peer device's public key; see Conn.PeerKey.
func (s *Stream) PeerKey() ed25519.PublicKey { return s.conn.PeerKey() }

// Credential is the credential in the peer's certificate; see
// Conn.Credential.
func (s *Stream) Credential() []byte { return s.conn.Credential() }

// Read reads from the peer; io.EOF after the peer's CloseWrite.
func (s *Stream) Read(b []byte) (int, error) { return s.s.Read(b) }

// Write writes to the peer.
func (s *Stream) Write(b []byte) (int, error) { return s.s.Write(b) }

// CloseWrite ends the write side: the peer reads io.EOF after the data
// already written, which is still delivered. Reading goes on. The stream
// still has to be closed.
func (s *Stream) CloseWrite() error { return s.s.Close() }

// Close closes both directions: what was written is still delivered, the
// peer's further writes are refused, and the stream's credit returns to the
// peer. It releases the stream's hold on the connection, whose other streams
// go on undisturbed. It is safe to call more than once and after CloseWrite.
func (s *Stream) Close() error {
	s.closeOnce.Do(func() {
		s.s.CancelRead(0)
		s.closeErr = s.s.Close()
		s.conn.release()
	})
	return s.closeErr
}

// LocalAddr is the transport's address.
func (s *Stream) LocalAddr() net.Addr { return s.conn.qc.LocalAddr() }

// RemoteAddr is the peer's address.
func (s *Stream) RemoteAddr() net.Addr { return s.conn.qc.RemoteAddr() }

// SetDeadline sets the read and write deadlines.
func (s *Stream) SetDeadline(t time.Time) error { return s.s.SetDeadline(t) }

// SetReadDeadline sets the read deadline.
func (s *Stream) SetReadDeadline(t time.Time) error { return s.s.SetReadDeadline(t) }

// SetWriteDeadline sets the write deadline.
func (s *Stream) SetWriteDeadline(t time.Time) error { return s.s.SetWriteDeadline(t) }

// Reset abandons the stream in both directions with the application error
// code: the peer's reads and writes fail at once, and data not yet
// delivered is discarded. Use it to refuse a stream.
func (s *Stream) Reset(code uint64) {
	s.s.CancelRead(quic.StreamErrorCode(code))
	s.s.CancelWrite(quic.StreamErrorCode(code))
}
