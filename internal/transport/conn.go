package transport

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/quic-go/quic-go"
)

// Conn is an authenticated QUIC connection to one peer device.
type Conn struct {
	// Constant after register.
	qc   *quic.Conn
	peer ed25519.PublicKey
	dir  Direction
}

// PeerKey is the peer device's public key, as proven in the handshake.
func (c *Conn) PeerKey() ed25519.PublicKey {
	return append(ed25519.PublicKey(nil), c.peer...)
}

// RemoteAddr is the peer's current address.
func (c *Conn) RemoteAddr() netip.AddrPort { return addrPortOf(c.qc.RemoteAddr()) }

// Direction tells whether we dialed the peer or it dialed us.
func (c *Conn) Direction() Direction { return c.dir }

// Done is closed when the connection has closed, by either side or by an idle
// timeout.
func (c *Conn) Done() <-chan struct{} { return c.qc.Context().Done() }

func (c *Conn) alive() bool { return c.qc.Context().Err() == nil }

// OpenStream opens a bidirectional stream to the peer. The peer's
// AcceptStream returns it once the first byte has been written.
func (c *Conn) OpenStream(ctx context.Context) (*Stream, error) {
	s, err := c.qc.OpenStreamSync(ctx)
	if err != nil {
		return nil, c.streamError("opening", err)
	}
	return &Stream{s: s, conn: c}, nil
}

// AcceptStream waits for the peer to open a stream.
func (c *Conn) AcceptStream(ctx context.Context) (*Stream, error) {
	s, err := c.qc.AcceptStream(ctx)
	if err != nil {
		return nil, c.streamError("accepting", err)
	}
	return &Stream{s: s, conn: c}, nil
}

func (c *Conn) streamError(doing string, err error) error {
	if !c.alive() && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %s stream with %s: %w", ErrClosed, doing, c.RemoteAddr(), err)
	}
	return fmt.Errorf("transport: %s stream with %s: %w", doing, c.RemoteAddr(), err)
}

// Close closes the connection, for every user of it, and tells the peer.
// Streams still open fail. It is safe to call more than once.
func (c *Conn) Close() error {
	c.closeWith(codeClosed, "")
	return nil
}

func (c *Conn) closeWith(code quic.ApplicationErrorCode, reason string) {
	_ = c.qc.CloseWithError(code, reason)
}

// Stream is a bidirectional QUIC stream. It implements net.Conn.
type Stream struct {
	s    *quic.Stream
	conn *Conn
}

var _ net.Conn = (*Stream)(nil)

// Conn is the connection the stream belongs to.
func (s *Stream) Conn() *Conn { return s.conn }

// Read reads from the peer; io.EOF after the peer's CloseWrite.
func (s *Stream) Read(b []byte) (int, error) { return s.s.Read(b) }

// Write writes to the peer.
func (s *Stream) Write(b []byte) (int, error) { return s.s.Write(b) }

// CloseWrite ends the write side: the peer reads io.EOF after the data
// already written, which is still delivered. Reading goes on.
func (s *Stream) CloseWrite() error { return s.s.Close() }

// Close closes both directions: what was written is still delivered, the
// peer's further writes are refused.
func (s *Stream) Close() error {
	s.s.CancelRead(0)
	return s.s.Close()
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
