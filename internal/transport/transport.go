package transport

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
)

// Errors that callers branch on. Errors returned by this package wrap them.
var (
	// ErrClosed: the Transport (or the Conn) has been closed.
	ErrClosed = errors.New("transport: closed")
	// ErrWrongPeer: the dialed address answered with a key other than the
	// expected one.
	ErrWrongPeer = errors.New("transport: peer presented a different key than expected")
	// ErrUnauthorized: Config.Authorize refused the peer's key.
	ErrUnauthorized = errors.New("transport: peer not authorized")
	// ErrRefused: the peer refused our key (or our protocol) during the handshake.
	ErrRefused = errors.New("transport: peer refused the connection")
	// ErrBadCertificate: the peer's certificate is not a self-signed ed25519 one.
	ErrBadCertificate = errors.New("transport: bad peer certificate")
	// ErrUnreachable: no handshake completed within the handshake timeout.
	ErrUnreachable = errors.New("transport: peer unreachable")
	// ErrBusy: the peer refused a new connection because it is taking too
	// many at once (a flood, or its connection limits); try again later.
	ErrBusy = errors.New("transport: peer is busy and refused a new connection")
	// ErrNotDatagram: WriteDatagram was given a packet that is neither STUN nor
	// a kith datagram.
	ErrNotDatagram = errors.New("transport: not a STUN or kith datagram")
)

// Defaults for the zero values of Config.
const (
	DefaultHandshakeTimeout = 5 * time.Second
	DefaultIdleTimeout      = 30 * time.Second
	DefaultIdleLinger       = 2 * time.Second
)

// QUIC application error codes used when closing connections; see the package
// comment.
const (
	codeClosed     quic.ApplicationErrorCode = 0x00
	codeShutdown   quic.ApplicationErrorCode = 0x01
	codeNoGreeting quic.ApplicationErrorCode = 0x03
	codeEvicted    quic.ApplicationErrorCode = 0x04
	codeStranger   quic.ApplicationErrorCode = 0x05
)

// greeting is the single byte the accepting side sends on its first
// unidirectional stream once it has authorized the dialer.
const greeting = 0x01

// Direction says which side started a connection.
type Direction int

const (
	// Inbound: the peer dialed us.
	Inbound Direction = iota + 1
	// Outbound: we dialed the peer.
	Outbound
)

func (d Direction) String() string {
	switch d {
	case Inbound:
		return "inbound"
	case Outbound:
		return "outbound"
	default:
		return fmt.Sprintf("Direction(%d)", int(d))
	}
}

// Config configures a Transport. Key and Authorize are required.
type Config struct {
	// Key is this device's key; its public key is the device ID.
	Key ed25519.PrivateKey
	// Listen is the UDP address to listen on, such as "127.0.0.2:0" or
	// "[::]:7070". Empty means ":0": every interface, a port chosen by the
	// system. It must be empty when PacketConn is set.
	Listen string
	// PacketConn, if set, is the socket to use instead of binding a UDP
	// socket: an in-memory network in tests (see package memnet), or a
	// socket made elsewhere. The transport demultiplexes it as it would its
	// own socket, and takes over reading from it until Close. Close does not
	// close it: whoever made it closes it, after the transport's Close. A
	// *net.UDPConn keeps batched reads; any other PacketConn is read one
	// packet at a time, and its addresses must be *net.UDPAddr.
	PacketConn net.PacketConn
	// Authorize is asked for every peer key during the TLS handshake, on both
	// sides (accepting and dialing). Return nil to accept. For an unknown or
	// blocked key return an error: the handshake fails and nothing else is
	// done. It runs inside the handshake and must be cheap. It is required.
	Authorize func(peer ed25519.PublicKey, remote netip.AddrPort, dir Direction) error
	// Credential, if set, travels in this device's certificate (see the
	// package comment): for kith, the device certificate signed by the user
	// key, which lets the user's other devices accept this one before they
	// have met it.
	Credential []byte
	// AuthorizeCredential, if set, is asked when Authorize refused a peer
	// whose certificate carries a credential; nil accepts the peer after
	// all. It runs only for keys Authorize does not know.
	AuthorizeCredential func(peer ed25519.PublicKey, credential []byte, remote netip.AddrPort, dir Direction) error
	// DropSource, if set, is asked for every incoming packet's source
	// address before anything else; quic tells whether the packet looks like
	// QUIC. True drops the packet silently. It is called from the transport's
	// read goroutine and must be cheap.
	DropSource func(from netip.AddrPort, quic bool) bool
	// Datagram receives the packets that are not QUIC: STUN messages and kith
	// datagrams (see Classify). It is called from the transport's read
	// goroutine, one packet at a time, and delays every read while it runs;
	// pkt is reused afterwards, so copy it to keep it.
	Datagram func(pkt []byte, from netip.AddrPort)
	// HandshakeTimeout bounds a Dial, handshake and greeting included.
	// Zero means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// IdleTimeout closes a connection that heard nothing from its peer for
	// this long; keep-alives are sent every third of it. Zero means
	// DefaultIdleTimeout.
	IdleTimeout time.Duration
	// IdleLinger is how long a connection this transport dialed stays open
	// once no stream uses it, so that a caller who opens its next stream
	// soon reuses it; then the transport closes it, so that idle devices
	// exchange no keep-alives. Zero means DefaultIdleLinger; a negative value
	// keeps unused connections open until IdleTimeout or ClosePeer.
	IdleLinger time.Duration
	// Stranger, if set, tells whether the key of a peer that dialed us is a
	// stranger's: a key no roster knows, let in only by an open invite. It
	// is asked once per inbound connection, after the handshake, and again
	// by CloseStrangers. Strangers' connections count against
	// MaxStrangerConns and are the first evicted. Nil: nobody is a
	// stranger.
	Stranger func(peer ed25519.PublicKey) bool
	// MaxConns bounds the open connections, both directions. A new one
	// beyond it evicts a stranger's, or is refused when there is none. Zero
	// means DefaultMaxConns.
	MaxConns int
	// MaxStrangerConns bounds the open inbound connections from strangers;
	// a new one beyond it evicts the stranger idle longest (else the
	// oldest). Zero means DefaultMaxStrangerConns.
	MaxStrangerConns int
	// HandshakeRate caps new inbound handshakes per second (a token
	// bucket of HandshakeBurst); attempts beyond it are refused before
	// quic-go keeps state for them. Zero means DefaultHandshakeRate; a
	// negative rate, no limit.
	HandshakeRate float64
	// HandshakeBurst is the token bucket's size. Zero means
	// DefaultHandshakeBurst.
	HandshakeBurst int
	// Logger receives debug logs; nil discards them.
	Logger *slog.Logger
}

// Stats counts what the demultiplexer did with incoming packets, and what
// the connection limits did.
type Stats struct {
	Datagrams uint64 // STUN and kith datagrams passed to Config.Datagram
	Garbage   uint64 // packets dropped as KindGarbage
	Dropped   uint64 // packets dropped because DropSource said so

	Conns         int    // open connections, both directions
	StrangerConns int    // of which inbound from strangers
	Retries       uint64 // handshakes asked to verify their source address (QUIC Retry)
	Refused       uint64 // handshakes refused by the rate limit
	Evicted       uint64 // connections closed to make room for a newer one
	Rejected      uint64 // new connections closed because no room could be made
}

type peerID [ed25519.PublicKeySize]byte

// Transport is the agent's UDP port: it accepts and dials authenticated QUIC
// connections and sends and receives raw datagrams on one socket.
type Transport struct {
	// Constant after Listen.
	pub       ed25519.PublicKey
	certs     *certSource
	authorize func(ed25519.PublicKey, netip.AddrPort, Direction) error
	// authorizeCredential is Config.AuthorizeCredential; may be nil.
	authorizeCredential func(ed25519.PublicKey, []byte, netip.AddrPort, Direction) error
	dropSource          func(netip.AddrPort, bool) bool
	stranger            func(ed25519.PublicKey) bool
	maxConns            int
	maxStrangers        int
	gate                *handshakeGate
	datagram            func([]byte, netip.AddrPort)
	handshake           time.Duration
	idleLinger          time.Duration // <= 0: never
	log                 *slog.Logger
	pc                  net.PacketConn // the socket
	ownPC               bool           // pc was opened by Listen, and Close closes it
	qt                  *quic.Transport
	ln                  *quic.Listener
	quicConf            *quic.Config // for accepted connections
	dialConf            *quic.Config // for dialed ones

	// Counters, updated by the read goroutine.
	datagrams, garbage, dropped atomic.Uint64
	// Counters of the limits.
	retries, refused, evicted, rejected atomic.Uint64
	// nStrangers counts the Conns in conns marked stranger; changed with mu
	// held, read without.
	nStrangers atomic.Int64
	// relays routes virtual addresses through relays (relay.go).
	relays relayTable

	closeOnce sync.Once
	closeErr  error
	// watchers counts the context.AfterFunc callbacks of registered conns
	// and their armed linger timers.
	watchers sync.WaitGroup

	mu       sync.Mutex
	closed   bool                             // guarded by mu
	conns    map[*Conn]struct{}               // guarded by mu: every open Conn
	byPeer   map[peerID][]*Conn               // guarded by mu: the open Conns per peer, oldest first
	pending  map[dialKey]*dialCall            // guarded by mu: dials in progress
	outbound []*Conn                          // guarded by mu: dialed Conns Accept has not returned yet
	wakers   map[*context.CancelFunc]struct{} // guarded by mu: ends the waits of Accepts in progress
}

// dialKey names a dial: the same peer at the same address.
type dialKey struct {
	peer peerID
	addr netip.AddrPort
}

// dialCall is a dial in progress that other callers wanting the same peer
// at the same address wait for.
type dialCall struct {
	done   chan struct{} // closed when the fields below are set
	conn   *Conn
	err    error
	ctxErr bool // err came from the dialing caller's context, not the peer
}

var quietQUICOnce sync.Once

// quietQUIC stops quic-go from printing its UDP buffer size warning with the
// standard log package (it would go to stderr, outside the agent's slog
// logs). A value the user set is respected.
func quietQUIC() {
	quietQUICOnce.Do(func() {
		const name = "QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING"
		if _, set := os.LookupEnv(name); !set {
			_ = os.Setenv(name, "true")
		}
	})
}

// Listen opens the UDP socket and starts accepting connections and datagrams
// on it. Close releases it.
func Listen(cfg Config) (*Transport, error) {
	if len(cfg.Key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("transport: device key has %d bytes, want an ed25519 private key of %d", len(cfg.Key), ed25519.PrivateKeySize)
	}
	if cfg.Authorize == nil {
		return nil, errors.New("transport: Config.Authorize is required: it decides which peers may connect")
	}
	if cfg.PacketConn != nil && cfg.Listen != "" {
		return nil, fmt.Errorf("transport: Config.Listen is %q and Config.PacketConn is set: set only one", cfg.Listen)
	}
	handshake := cfg.HandshakeTimeout
	if handshake <= 0 {
		handshake = DefaultHandshakeTimeout
	}
	idle := cfg.IdleTimeout
	if idle <= 0 {
		idle = DefaultIdleTimeout
	}
	linger := cfg.IdleLinger
	if linger == 0 {
		linger = DefaultIdleLinger
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	maxConns, maxStrangers := cfg.MaxConns, cfg.MaxStrangerConns
	if maxConns <= 0 {
		maxConns = DefaultMaxConns
	}
	if maxStrangers <= 0 {
		maxStrangers = DefaultMaxStrangerConns
	}
	rate, burst := cfg.HandshakeRate, cfg.HandshakeBurst
	if rate == 0 {
		rate = DefaultHandshakeRate
	}
	if burst <= 0 {
		burst = DefaultHandshakeBurst
	}
	t := &Transport{
		pub:                 cfg.Key.Public().(ed25519.PublicKey),
		certs:               &certSource{key: cfg.Key, credential: cfg.Credential, now: time.Now},
		authorize:           cfg.Authorize,
		authorizeCredential: cfg.AuthorizeCredential,
		dropSource:          cfg.DropSource,
		stranger:            cfg.Stranger,
		maxConns:            maxConns,
		maxStrangers:        maxStrangers,
		datagram:            cfg.Datagram,
		handshake:           handshake,
		idleLinger:          linger,
		log:                 log,
		quicConf: &quic.Config{
			Versions:              []quic.Version{quic.Version1},
			HandshakeIdleTimeout:  handshake,
			MaxIdleTimeout:        idle,
			KeepAlivePeriod:       idle / 3,
			MaxIncomingStreams:    maxIncomingStreams,
			MaxIncomingUniStreams: -1, // the dialer opens none
		},
		conns:   make(map[*Conn]struct{}),
		byPeer:  make(map[peerID][]*Conn),
		pending: make(map[dialKey]*dialCall),
		wakers:  make(map[*context.CancelFunc]struct{}),
	}
	t.dialConf = t.quicConf.Clone()
	t.dialConf.MaxIncomingUniStreams = 1 // the greeting
	t.gate = newHandshakeGate(rate, burst, t.strangerCount, maxStrangers)
	if _, err := t.certs.get(); err != nil {
		return nil, err
	}

	quietQUIC()
	t.pc = cfg.PacketConn
	if t.pc == nil {
		listen := cfg.Listen
		if listen == "" {
			listen = ":0"
		}
		laddr, err := net.ResolveUDPAddr("udp", listen)
		if err != nil {
			return nil, fmt.Errorf("transport: listen address %q: %w (want HOST:PORT)", cfg.Listen, err)
		}
		udp, err := net.ListenUDP("udp", laddr)
		if err != nil {
			return nil, fmt.Errorf("transport: listening on %s: %w", listen, err)
		}
		t.pc, t.ownPC = udp, true
	}
	var filtered net.PacketConn
	if udp, ok := t.pc.(*net.UDPConn); ok {
		filtered = newPacketConn(udp, t.admit, t.writeRelayed)
	} else {
		filtered = &filterConn{PacketConn: t.pc, admit: t.admit, relay: t.writeRelayed}
	}
	t.qt = &quic.Transport{
		Conn:                             filtered,
		DisableVersionNegotiationPackets: true,
		VerifySourceAddress:              t.verifySourceAddress,
		ConnContext:                      t.connContext,
	}
	var err error
	t.ln, err = t.qt.Listen(serverTLS(t.certs, t.verify), t.quicConf)
	if err != nil {
		t.qt.Close()
		if t.ownPC {
			t.pc.Close()
		}
		return nil, fmt.Errorf("transport: starting QUIC on %s: %w", t.LocalAddr(), err)
	}
	t.log.Debug("transport: listening", "addr", t.LocalAddr(), "device", hex.EncodeToString(t.pub))
	return t, nil
}

// LocalAddr is the address the transport listens on: its socket's, which for
// a Config.PacketConn may change (a rebinding in an in-memory network).
func (t *Transport) LocalAddr() netip.AddrPort { return addrPortOf(t.pc.LocalAddr()) }

// PublicKey is this device's public key.
func (t *Transport) PublicKey() ed25519.PublicKey { return t.pub }

// Stats returns the demultiplexer's counters.
func (t *Transport) Stats() Stats {
	t.mu.Lock()
	conns, strangers := len(t.conns), t.strangerCount()
	t.mu.Unlock()
	return Stats{
		Datagrams: t.datagrams.Load(), Garbage: t.garbage.Load(), Dropped: t.dropped.Load(),
		Conns: conns, StrangerConns: strangers,
		Retries: t.retries.Load(), Refused: t.refused.Load(), Evicted: t.evicted.Load(), Rejected: t.rejected.Load(),
	}
}

// admit decides on every packet read from the socket, before quic-go; it
// returns true for the packets quic-go should see, with the virtual address
// of a relayed one (relay.go), whose relay header quic-go must not see. It
// runs on quic-go's read goroutine.
func (t *Transport) admit(pkt []byte, from netip.AddrPort) (bool, netip.AddrPort) {
	looksQUIC := len(pkt) > 0 && pkt[0]&0x40 != 0
	if t.dropSource != nil && t.dropSource(from, looksQUIC) {
		t.dropped.Add(1)
		return false, netip.AddrPort{}
	}
	if virt, ok := t.unwrapRelay(pkt, from); ok {
		inner := pkt[RelayHeaderSize:]
		switch k := Classify(inner); {
		case k == KindQUIC:
			return true, virt
		case (k == KindSTUN || k == KindKith) && inner[0] != RelayData && inner[0] != RelayRefresh:
			t.datagrams.Add(1)
			if t.datagram != nil {
				t.datagram(inner, virt)
			}
		default: // garbage, or a relay datagram inside one: relays do not nest
			t.garbage.Add(1)
		}
		return false, netip.AddrPort{}
	}
	switch Classify(pkt) {
	case KindQUIC:
		return true, netip.AddrPort{}
	case KindSTUN, KindKith:
		t.datagrams.Add(1)
		if t.datagram != nil {
			t.datagram(pkt, from)
		}
		return false, netip.AddrPort{}
	default:
		t.garbage.Add(1)
		return false, netip.AddrPort{}
	}
}

// verify checks a peer's certificate chain during a handshake, in either
// direction, and asks Authorize.
func (t *Transport) verify(chain []*x509.Certificate, want ed25519.PublicKey, remote netip.AddrPort, dir Direction) error {
	peer, err := peerKey(chain)
	if err != nil {
		t.log.Debug("transport: refused handshake", "remote", remote, "dir", dir, "err", err)
		return err
	}
	if dir == Outbound && !sameKey(peer, want) {
		t.log.Debug("transport: refused handshake", "remote", remote, "dir", dir, "peer", hex.EncodeToString(peer), "err", ErrWrongPeer)
		return fmt.Errorf("%w: %s answered as %s, want %s", ErrWrongPeer, remote, hex.EncodeToString(peer), hex.EncodeToString(want))
	}
	if err := t.authorize(peer, remote, dir); err != nil {
		if cred := credentialOf(chain[0]); cred != nil && t.authorizeCredential != nil {
			if cerr := t.authorizeCredential(peer, cred, remote, dir); cerr == nil {
				return nil
			}
		}
		t.log.Debug("transport: refused handshake", "remote", remote, "dir", dir, "peer", hex.EncodeToString(peer), "err", err)
		return fmt.Errorf("%w: %s: %w", ErrUnauthorized, hex.EncodeToString(peer), err)
	}
	return nil
}

// WriteDatagram sends pkt, which must be a STUN message or a kith datagram
// (see Classify), to the address to from the transport's socket.
func (t *Transport) WriteDatagram(pkt []byte, to netip.AddrPort) error {
	if k := Classify(pkt); k != KindSTUN && k != KindKith {
		return fmt.Errorf("%w: packet classifies as %s (first byte of a kith datagram must be %#02x..%#02x)", ErrNotDatagram, k, DatagramPrefixMin, DatagramPrefixMax)
	}
	if !to.IsValid() {
		return fmt.Errorf("transport: writing datagram: invalid destination address")
	}
	t.mu.Lock()
	closed := t.closed
	t.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if _, err := t.qt.WriteTo(pkt, net.UDPAddrFromAddrPort(unmap(to))); err != nil {
		return fmt.Errorf("transport: writing datagram to %s: %w", to, err)
	}
	return nil
}

// Accept waits for the next connection whose streams this side should
// serve: an authorized inbound connection, or one this transport dialed (a
// connection carries streams both ways: the peer may reuse it for streams to
// us). Each connection is returned once; Conn.Direction tells which it is. It
// returns ErrClosed once the transport is closed.
func (t *Transport) Accept(ctx context.Context) (*Conn, error) {
	for {
		t.mu.Lock()
		if c := t.nextOutboundLocked(); c != nil {
			t.mu.Unlock()
			return c, nil
		}
		wctx, wake := context.WithCancel(ctx)
		t.wakers[&wake] = struct{}{}
		t.mu.Unlock()

		qc, err := t.ln.Accept(wctx)

		t.mu.Lock()
		delete(t.wakers, &wake)
		woken := wctx.Err() != nil && ctx.Err() == nil
		t.mu.Unlock()
		wake()
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("transport: accepting: %w", ctx.Err())
			}
			if woken {
				continue // a dialed connection is waiting
			}
			return nil, fmt.Errorf("%w: accepting: %w", ErrClosed, err)
		}
		c, err := t.accepted(qc)
		if err != nil {
			if errors.Is(err, ErrClosed) {
				return nil, err
			}
			t.log.Debug("transport: dropping inbound connection", "remote", qc.RemoteAddr(), "err", err)
			continue
		}
		return c, nil
	}
}

// nextOutboundLocked pops the oldest open dialed connection Accept has not
// returned yet. Called with mu held.
func (t *Transport) nextOutboundLocked() *Conn {
	for len(t.outbound) > 0 {
		c := t.outbound[0]
		t.outbound[0] = nil
		t.outbound = t.outbound[1:]
		if c.alive() {
			return c
		}
	}
	return nil
}

// accepted greets and registers a connection whose handshake completed.
func (t *Transport) accepted(qc *quic.Conn) (*Conn, error) {
	peer, err := peerKey(qc.ConnectionState().TLS.PeerCertificates)
	if err != nil { // cannot happen: verify checked the same chain
		_ = qc.CloseWithError(codeClosed, "")
		return nil, err
	}
	// Registered first, so that a connection beyond the limits is closed
	// before it is greeted and its dialer is told the peer is busy.
	c, err := t.register(qc, peer, Inbound)
	if err != nil {
		return nil, err
	}
	s, err := qc.OpenUniStream()
	if err == nil {
		_, err = s.Write([]byte{greeting})
		if cerr := s.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		c.close()
		return nil, fmt.Errorf("transport: greeting %s: %w", qc.RemoteAddr(), err)
	}
	return c, nil
}

// OpenStream opens a bidirectional stream to the device whose key is peer
// and writes proto, the stream's protocol byte, on it as its first byte.
//
// The stream goes over a live connection to peer at addr if there is one,
// whichever side dialed it; otherwise OpenStream dials addr (the peer must
// present exactly that key, and Authorize must accept it), and concurrent
// calls for the same peer and address share that dial. A live connection to
// the peer at another address is not used: a caller that names a new address
// has learned that the peer is there now, and the old path may be dead
// without either side knowing yet. The old connection is not closed either:
// its streams go on, and it lingers out like any other. See the package
// comment for how long connections live.
//
// The caller closes the stream, and only the stream.
func (t *Transport) OpenStream(ctx context.Context, addr netip.AddrPort, peer ed25519.PublicKey, proto byte) (*Stream, error) {
	c, err := t.connect(ctx, addr, peer)
	if err != nil {
		return nil, err
	}
	defer c.release()
	s, err := c.openStream(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := s.Write([]byte{proto}); err != nil {
		s.Close()
		return nil, c.streamError("writing the protocol byte of a", err)
	}
	return s, nil
}

// connect returns a live connection to peer at addr, reused or dialed, with a
// reference taken on it for the caller to release.
func (t *Transport) connect(ctx context.Context, addr netip.AddrPort, peer ed25519.PublicKey) (*Conn, error) {
	if len(peer) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("transport: dialing %s: peer key has %d bytes, want %d", addr, len(peer), ed25519.PublicKeySize)
	}
	addr = unmap(addr)
	if !addr.IsValid() || addr.Port() == 0 {
		return nil, fmt.Errorf("transport: dialing: invalid address %q, want IP:PORT", addr)
	}
	key := dialKey{peerID(peer), addr}
	for {
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			return nil, ErrClosed
		}
		if c := t.reusableLocked(key); c != nil {
			t.mu.Unlock()
			return c, nil
		}
		if call := t.pending[key]; call != nil {
			t.mu.Unlock()
			select {
			case <-call.done:
			case <-ctx.Done():
				return nil, fmt.Errorf("transport: dialing %s: %w", addr, ctx.Err())
			}
			switch {
			case call.err == nil && call.conn.hold():
				return call.conn, nil
			case call.err != nil && !call.ctxErr:
				return nil, call.err
			}
			continue // the dialer gave up, or its connection is gone already
		}
		call := &dialCall{done: make(chan struct{})}
		t.pending[key] = call
		t.mu.Unlock()

		c, err := t.dial(ctx, addr, peer)

		t.mu.Lock()
		delete(t.pending, key)
		t.mu.Unlock()
		call.conn, call.err, call.ctxErr = c, err, err != nil && ctx.Err() != nil
		close(call.done)
		return c, err
	}
}

// reusableLocked finds a live connection to key's peer at key's address and
// takes a reference on it; dialed connections first, then accepted ones.
// Called with mu held.
func (t *Transport) reusableLocked(key dialKey) *Conn {
	now := time.Now()
	for _, dir := range []Direction{Outbound, Inbound} {
		for _, c := range t.byPeer[key.peer] {
			if c.dir == dir && c.RemoteAddr() == key.addr && c.reuse(now) {
				return c
			}
		}
	}
	return nil
}

// dial makes a new connection: QUIC handshake, then the greeting.
func (t *Transport) dial(ctx context.Context, addr netip.AddrPort, peer ed25519.PublicKey) (*Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, t.handshake)
	defer cancel()
	qc, err := t.qt.Dial(ctx, net.UDPAddrFromAddrPort(addr), clientTLS(t.certs, t.verify, peer, addr), t.dialConf)
	if err != nil {
		return nil, t.dialError(ctx, addr, err)
	}
	if err := awaitGreeting(ctx, qc); err != nil {
		_ = qc.CloseWithError(codeNoGreeting, "")
		return nil, t.dialError(ctx, addr, err)
	}
	return t.register(qc, peer, Outbound)
}

// awaitGreeting reads the accepting side's greeting stream.
func awaitGreeting(ctx context.Context, qc *quic.Conn) error {
	s, err := qc.AcceptUniStream(ctx)
	if err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok {
		_ = s.SetReadDeadline(d)
	}
	// Read one byte more than the greeting to see that the stream ends there.
	var buf [2]byte
	n, err := io.ReadFull(s, buf[:])
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return err
	}
	if n != 1 || buf[0] != greeting || err == nil {
		return fmt.Errorf("transport: unexpected greeting %x (is the peer running a different kith version?)", buf[:n])
	}
	return nil
}

// dialError turns what quic-go says about a failed dial into this package's
// errors.
func (t *Transport) dialError(ctx context.Context, addr netip.AddrPort, err error) error {
	var terr *quic.TransportError
	var herr *quic.HandshakeTimeoutError
	var ierr *quic.IdleTimeoutError
	var aerr *quic.ApplicationError
	switch {
	case errors.Is(err, ErrWrongPeer), errors.Is(err, ErrUnauthorized), errors.Is(err, ErrBadCertificate):
		return fmt.Errorf("transport: dialing %s: %w", addr, err)
	case errors.Is(err, quic.ErrTransportClosed):
		return fmt.Errorf("%w: dialing %s: %w", ErrClosed, addr, err)
	case errors.As(err, &terr) && terr.Remote && terr.ErrorCode == quic.ConnectionRefused,
		errors.As(err, &aerr) && aerr.Remote && aerr.ErrorCode == codeEvicted:
		return fmt.Errorf("%w: %s: %w", ErrBusy, addr, err)
	case errors.As(err, &terr) && terr.Remote && terr.ErrorCode.IsCryptoError():
		return fmt.Errorf("%w: %s refused our key (%w); it must know this device and not have blocked it", ErrRefused, addr, err)
	case errors.As(err, &herr), errors.As(err, &ierr), errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
		return fmt.Errorf("%w: no answer from %s within %s: %w", ErrUnreachable, addr, t.handshake, err)
	default:
		return fmt.Errorf("transport: dialing %s: %w", addr, err)
	}
}

// register wraps qc, records it so that Close can close it, and arranges for
// it to be forgotten when it closes. An outbound connection is returned with
// a reference taken for the dialer, and queued for Accept.
func (t *Transport) register(qc *quic.Conn, peer ed25519.PublicKey, dir Direction) (*Conn, error) {
	now := time.Now()
	c := &Conn{t: t, qc: qc, peer: peer, dir: dir, created: now, idleSince: now}
	c.stranger = dir == Inbound && t.isStranger(peer)
	if chain := qc.ConnectionState().TLS.PeerCertificates; len(chain) > 0 {
		if cred := credentialOf(chain[0]); cred != nil {
			c.credential = append([]byte(nil), cred...)
		}
	}
	if dir == Outbound {
		c.refs = 1
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		_ = qc.CloseWithError(codeShutdown, "")
		return nil, ErrClosed
	}
	victim, ok := t.makeRoomLocked(c.stranger)
	if !ok {
		t.mu.Unlock()
		t.rejected.Add(1)
		t.log.Debug("transport: refusing a connection: too many", "peer", hex.EncodeToString(peer), "remote", c.RemoteAddr(), "dir", dir)
		_ = qc.CloseWithError(codeEvicted, "too many connections")
		return nil, fmt.Errorf("%w: %d connections open, none from a stranger", ErrBusy, t.maxConns)
	}
	if victim != nil {
		// Forgotten now, so that the count is right at once; its watcher
		// forgets it again, harmlessly, once it has closed.
		t.forgetLocked(victim)
		t.evicted.Add(1)
		defer func() {
			t.log.Debug("transport: evicting a stranger's connection", "peer", hex.EncodeToString(victim.peer), "remote", victim.RemoteAddr())
			victim.closeWith(codeEvicted, "too many connections")
		}()
	}
	t.conns[c] = struct{}{}
	if c.stranger {
		t.nStrangers.Add(1)
	}
	id := peerID(peer)
	t.byPeer[id] = append(t.byPeer[id], c)
	if dir == Outbound {
		t.outbound = append(t.outbound, c)
		for wake := range t.wakers {
			(*wake)()
		}
	}
	t.watchers.Add(1)
	context.AfterFunc(qc.Context(), func() {
		defer t.watchers.Done()
		c.closed()
		t.forget(c)
	})
	t.mu.Unlock()
	t.log.Debug("transport: connected", "peer", hex.EncodeToString(peer), "remote", c.RemoteAddr(), "dir", dir)
	return c, nil
}

// forget removes a closed connection.
func (t *Transport) forget(c *Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.forgetLocked(c)
}

func (t *Transport) forgetLocked(c *Conn) {
	if _, ok := t.conns[c]; ok && c.stranger {
		t.nStrangers.Add(-1)
	}
	delete(t.conns, c)
	id := peerID(c.peer)
	if cs := slices.DeleteFunc(t.byPeer[id], func(o *Conn) bool { return o == c }); len(cs) > 0 {
		t.byPeer[id] = cs
	} else {
		delete(t.byPeer, id)
	}
	t.outbound = slices.DeleteFunc(t.outbound, func(o *Conn) bool { return o == c })
}

// Close closes every connection (telling the peers), stops listening and
// releases the socket it opened (not a Config.PacketConn). It waits for the
// transport's goroutines to stop. It is safe to call more than once.
func (t *Transport) Close() error {
	t.closeOnce.Do(func() {
		t.mu.Lock()
		t.closed = true
		conns := make([]*Conn, 0, len(t.conns))
		for c := range t.conns {
			conns = append(conns, c)
		}
		t.mu.Unlock()

		var wg sync.WaitGroup
		for _, c := range conns {
			wg.Go(func() { c.closeWith(codeShutdown, "shutting down") })
		}
		wg.Wait()
		errs := []error{t.ln.Close(), t.qt.Close()}
		t.watchers.Wait()
		if t.ownPC {
			errs = append(errs, t.pc.Close())
		}
		if err := errors.Join(errs...); err != nil {
			t.closeErr = fmt.Errorf("transport: closing: %w", err)
		}
	})
	return t.closeErr
}

// ClosePeer closes every connection, dialed or accepted, with the device
// whose key is peer, as when its user is blocked; their streams fail. It
// returns how many it closed.
func (t *Transport) ClosePeer(peer ed25519.PublicKey) int {
	t.mu.Lock()
	cs := slices.Clone(t.byPeer[peerID(peer)])
	t.mu.Unlock()
	for _, c := range cs {
		c.close()
	}
	return len(cs)
}
