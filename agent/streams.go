package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/kith-project/kith/internal/transport"
	"github.com/kith-project/kith/roster"
)

// Stream protocols: the first byte of a stream. Each is registered once, in
// [Agent.registerProtocols], with who may open it and its deadline.
const (
	protoPairing byte = 0x01
)

// Openers says who may open a protocol's streams.
type Openers uint8

const (
	// OpenOwn admits the user's own devices.
	OpenOwn Openers = 1 << iota
	// OpenFriend admits friends' devices that are not blocked.
	OpenFriend
	// OpenStranger admits a key that no roster knows, which only an open
	// invite lets connect at all.
	OpenStranger
)

// Protocol is one stream protocol of the agent's port.
type Protocol struct {
	// ID is the stream's first byte.
	ID byte
	// Name is for logs.
	Name string
	// Openers may open it; a stream from anyone else is reset at once.
	Openers Openers
	// Deadline bounds each stream from its first byte to its end; zero
	// means none (long transfers, Raft), and then the handler or the
	// listener's user sets its own deadlines.
	Deadline time.Duration
	// MaxStreams bounds the streams of this protocol served at once, over
	// every connection; further ones are reset. Zero means
	// DefaultMaxStreams.
	MaxStreams int
	// Handle serves one stream; the stream is closed when it returns.
	// Exactly one of Handle and Listener is set.
	Handle func(ctx context.Context, s *transport.Stream)
	// Listener, for protocols that want a net.Listener of their streams
	// (Raft's StreamLayer), receives each admitted stream; its Accept
	// hands it out, and the acceptor then owns it.
	Listener *StreamListener
}

// Limits of the dispatcher.
const (
	// headerTimeout bounds the wait for a stream's first byte.
	headerTimeout = 10 * time.Second
	// DefaultMaxStreams is a protocol's default concurrent stream limit.
	DefaultMaxStreams = 64
)

// errResetStream is the QUIC stream error code of a refused stream.
const errResetStream = 0x01

// registry is the table of stream protocols, filled before the agent
// serves and read-only after.
type registry struct {
	protos [256]*Protocol
	slots  [256]chan struct{} // one token per stream being served
}

// register adds p to the table. It fails for a byte taken twice or a
// protocol without exactly one of Handle and Listener.
func (r *registry) register(p Protocol) error {
	switch {
	case r.protos[p.ID] != nil:
		return fmt.Errorf("stream protocol %#02x registered twice (%s and %s)", p.ID, r.protos[p.ID].Name, p.Name)
	case (p.Handle == nil) == (p.Listener == nil):
		return fmt.Errorf("stream protocol %s needs exactly one of a handler and a listener", p.Name)
	case p.Openers == 0:
		return fmt.Errorf("stream protocol %s admits nobody", p.Name)
	}
	if p.MaxStreams <= 0 {
		p.MaxStreams = DefaultMaxStreams
	}
	r.protos[p.ID] = &p
	r.slots[p.ID] = make(chan struct{}, p.MaxStreams)
	return nil
}

// openerOf classifies the peer of a connection: an own device, a friend's
// device, or a stranger (an unknown key, admitted by an open invite). A
// revoked device or a blocked user's device is nobody: 0.
func (a *Agent) openerOf(c *transport.Conn) Openers {
	d, ok := devOf(c.PeerKey())
	if !ok {
		return 0
	}
	// One look at the roster, which is immutable, for all three questions.
	r := a.book.rosterNow()
	if dv, ok := r.Reachable(d); ok {
		if dv.Kind == roster.KindOwn {
			return OpenOwn
		}
		return OpenFriend
	}
	if _, known := r.Device(d); known || r.Revoked(d) {
		return 0 // blocked or revoked
	}
	return OpenStranger
}

// serveStream reads a stream's first byte and hands the stream to its
// protocol, if the peer may open it. Anything else is reset at once: the
// peer learns nothing but that the stream was refused. It reports whether
// the stream was handed to a listener, which then owns it.
func (a *Agent) serveStream(ctx context.Context, c *transport.Conn, s *transport.Stream) (handedOff bool) {
	var id [1]byte
	s.SetReadDeadline(time.Now().Add(headerTimeout))
	if _, err := io.ReadFull(s, id[:]); err != nil {
		s.Reset(errResetStream)
		return false
	}
	s.SetReadDeadline(time.Time{})
	p := a.streams.protos[id[0]]
	who := a.openerOf(c)
	if p == nil || p.Openers&who == 0 {
		a.log.Debug("stream refused", "proto", id[0], "peer", c.RemoteAddr(), "opener", who)
		s.Reset(errResetStream)
		return false
	}
	slots := a.streams.slots[p.ID]
	select {
	case slots <- struct{}{}:
	default:
		a.log.Debug("stream refused: too many at once", "proto", p.Name, "peer", c.RemoteAddr())
		s.Reset(errResetStream)
		return false
	}
	if p.Deadline > 0 {
		s.SetDeadline(time.Now().Add(p.Deadline))
	}
	if p.Listener != nil {
		if !p.Listener.deliver(ctx, s, func() { <-slots }) {
			<-slots
			s.Reset(errResetStream)
		}
		return true
	}
	defer func() { <-slots }()
	p.Handle(ctx, s)
	return false
}

// ErrListenerClosed is what a closed StreamListener's Accept returns.
var ErrListenerClosed = errors.New("agent: stream listener closed")

// StreamListener is a net.Listener of one protocol's admitted streams.
type StreamListener struct {
	addr net.Addr
	ch   chan *listenedStream

	mu     sync.Mutex
	closed bool // guarded by mu; once set, nothing more enters ch
	done   chan struct{}
}

// listenedStream is a stream on its way to Accept, with the release of its
// protocol slot, run when the acceptor closes it.
type listenedStream struct {
	*transport.Stream
	release   func()
	closeOnce sync.Once
}

func (l *listenedStream) Close() error {
	err := l.Stream.Close()
	l.closeOnce.Do(l.release)
	return err
}

// NewStreamListener makes a listener that queues up to backlog streams
// waiting for Accept; addr is what Addr reports.
func NewStreamListener(addr net.Addr, backlog int) *StreamListener {
	if backlog <= 0 {
		backlog = 16
	}
	return &StreamListener{addr: addr, ch: make(chan *listenedStream, backlog), done: make(chan struct{})}
}

// deliver queues s for Accept; false when the queue is full or the
// listener closed.
func (l *StreamListener) deliver(ctx context.Context, s *transport.Stream, release func()) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || ctx.Err() != nil {
		return false
	}
	select {
	case l.ch <- &listenedStream{Stream: s, release: release}:
		return true
	default:
		return false
	}
}

// Accept returns the next admitted stream, as a net.Conn whose Close
// releases it.
func (l *StreamListener) Accept() (net.Conn, error) {
	select {
	case s := <-l.ch:
		return s, nil
	case <-l.done:
		return nil, ErrListenerClosed
	}
}

// Close stops Accept and resets the streams still queued.
func (l *StreamListener) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	close(l.done)
	for {
		select {
		case s := <-l.ch:
			s.Reset(errResetStream)
			s.closeOnce.Do(s.release)
		default:
			return nil
		}
	}
}

// Addr is the address given to NewStreamListener.
func (l *StreamListener) Addr() net.Addr { return l.addr }
