// Package agent is the kith daemon: the long-running process behind
// "kith run" that owns a device's UDP port, its store and its keys.
//
// # Services
//
// An [Agent] is a set of services that start together and stop together,
// each a goroutine the agent owns:
//
//   - the transport: QUIC with mutual TLS and raw datagrams on one UDP port
//     (internal/transport);
//   - the stream server, which accepts connections from known devices and
//     from the peer of a pairing in progress and dispatches their streams;
//   - presence: signed heartbeats that track every known device's address
//     (package cluster);
//   - the control API on HOME/agent.sock, through which every other command
//     reaches the agent (internal/control).
//
// [Agent.Run] returns when its context ends, after every service stopped.
//
// # Who may talk to us
//
// A connection is accepted only from a key the address book knows, an own
// device or a friend's device that is not blocked, or from a device whose
// certificate, carried in its TLS certificate, is signed by our user key: a
// device restored from the seed phrase is recognised as our own on first
// contact. While this device shows
// an invite, an unknown key may connect too, but it can only open a pairing
// stream, and nothing it says is believed before it proves it scanned the
// invite. Blocked users' packets are dropped before QUIC sees them.
//
// # Streams
//
// The first byte of every stream names its protocol:
//
//	0x01  pairing: a Hello frame, answered by a Reply frame (package pairing)
package agent

import (
	"context"
	"crypto/ed25519"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/kith-project/kith/cluster"
	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/internal/device"
	"github.com/kith-project/kith/internal/store"
	"github.com/kith-project/kith/internal/transport"
	"github.com/kith-project/kith/seed"
)

// Stream protocols: the first byte of a stream.
const (
	protoPairing byte = 0x01
)

// Config configures an agent. The zero value of every field but Home means
// its default.
type Config struct {
	// Home is the device's home folder; the agent serves its control socket
	// there.
	Home string
	// Listen is the UDP address, "host:port". Default DefaultListen.
	Listen string
	// Heartbeat is T, the mean heartbeat interval. Default 15 s.
	Heartbeat time.Duration
	// InviteTTL is how long a new invite stays valid. Default 10 minutes.
	InviteTTL time.Duration
	// STUN servers to learn the public address from (kith run --stun).
	STUN []netip.AddrPort
	// Quiet hides the port from strangers outside the windows of DESIGN §5.
	Quiet bool
	// Now is the agent's clock. Default time.Now.
	Now func() time.Time
	// Logger receives the agent's logs. Default: discard.
	Logger *slog.Logger
}

// Defaults.
const (
	DefaultListen    = "0.0.0.0:7117"
	DefaultHeartbeat = 15 * time.Second
	DefaultInviteTTL = 10 * time.Minute
)

func (c *Config) setDefaults() {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.InviteTTL <= 0 {
		c.InviteTTL = DefaultInviteTTL
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Agent is a running device. Create it with New, run it with Run.
type Agent struct {
	// Constant after New.
	cfg  Config
	dev  *device.Device
	st   *store.Store
	log  *slog.Logger
	book *book
	tr   *transport.Transport
	pair *pairer
	ctl  net.Listener

	presence *cluster.Presence

	started time.Time
}

// New makes an agent for the loaded device dev whose store st is open,
// binds its UDP port and its control socket. The caller must hold the
// home's lock. On error nothing is left open.
func New(cfg Config, dev *device.Device, st *store.Store) (*Agent, error) {
	cfg.setDefaults()
	a := &Agent{cfg: cfg, dev: dev, st: st, log: cfg.Logger}
	var err error
	if a.book, err = loadBook(st); err != nil {
		return nil, err
	}
	a.pair = newPairer(a)
	a.presence, err = cluster.New(cluster.Config{
		Key:         dev.Device.Ed25519(),
		Interval:    cfg.Heartbeat,
		Book:        presenceBook{a},
		Send:        func(pkt []byte, to netip.AddrPort) error { return a.tr.WriteDatagram(pkt, to) },
		Now:         cfg.Now,
		LocalAddrs:  a.localAddrs,
		STUNServers: cfg.STUN,
		Window:      dev.Window[:],
		Quiet:       cfg.Quiet,
		Logger:      a.log.With("service", "presence"),
	})
	if err != nil {
		return nil, err
	}
	a.tr, err = transport.Listen(transport.Config{
		Key:                 dev.Device.Ed25519(),
		Listen:              cfg.Listen,
		Authorize:           a.authorize,
		Credential:          dev.Identity.Cert,
		AuthorizeCredential: a.authorizeOwn,
		DropSource:          a.dropSource,
		Datagram:            a.datagram,
		Logger:              a.log.With("service", "transport"),
	})
	if err != nil {
		return nil, fmt.Errorf("opening the UDP port %s: %w", cfg.Listen, err)
	}
	if a.ctl, err = control.Listen(cfg.Home); err != nil {
		a.tr.Close()
		return nil, err
	}
	a.started = cfg.Now()
	return a, nil
}

// Addr is the agent's UDP address.
func (a *Agent) Addr() netip.AddrPort { return a.tr.LocalAddr() }

// Run serves until ctx ends, then stops every service and returns. It
// returns the first service error that was not caused by stopping.
func (a *Agent) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	service := func(name string, fn func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := fn(ctx)
			if err != nil && ctx.Err() == nil {
				a.log.Error("service stopped", "service", name, "err", err)
				errOnce.Do(func() { firstErr = fmt.Errorf("%s: %w", name, err) })
				cancel()
			}
		}()
	}
	service("control", func(ctx context.Context) error { return control.Serve(ctx, a.ctl, a.controlHandler()) })
	service("streams", a.serveConns)
	service("presence", a.presence.Run)
	service("persist", a.persist)
	a.log.Info("agent running", "listen", a.Addr().String(), "user", a.dev.Identity.UserID, "device", a.dev.Identity.DeviceID)
	<-ctx.Done()
	// Closing the transport ends serveConns' Accept.
	terr := a.tr.Close()
	wg.Wait()
	a.saveLastSeen()
	if firstErr == nil && terr != nil {
		firstErr = terr
	}
	a.log.Info("agent stopped")
	return firstErr
}

// persistEvery is how often last-seen times are written to the store.
const persistEvery = 30 * time.Second

// persist writes last-seen times now and then, so that a restarted agent
// knows when it last heard from everyone; Run writes them once more at the
// end.
func (a *Agent) persist(ctx context.Context) error {
	t := time.NewTicker(persistEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			a.saveLastSeen()
		}
	}
}

func (a *Agent) saveLastSeen() {
	seen := map[string]time.Time{}
	for _, ps := range a.presence.Status() {
		if !ps.LastSeen.IsZero() {
			seen[hex.EncodeToString(ps.Device)] = ps.LastSeen
		}
	}
	if err := a.book.saveLastSeen(seen); err != nil {
		a.log.Warn("saving last-seen times", "err", err)
	}
}

// authorize decides, during the TLS handshake, whether peer may talk to us.
func (a *Agent) authorize(peer ed25519.PublicKey, remote netip.AddrPort, dir transport.Direction) error {
	if _, ok := a.book.peerFor(peer); ok {
		return nil
	}
	if a.pair.admits(peer, dir) {
		return nil
	}
	return errUnknownPeer
}

// authorizeOwn accepts an unknown device whose certificate, carried in its
// TLS certificate, is signed by our own user key: a device restored from the
// seed phrase is one of ours before the two have met. It is remembered as an
// own device.
func (a *Agent) authorizeOwn(peer ed25519.PublicKey, credential []byte, remote netip.AddrPort, _ transport.Direction) error {
	cert, err := seed.ParseDeviceCert(credential)
	if err != nil {
		return err
	}
	if !cert.User.Equal(a.dev.Cert.User) || subtle.ConstantTimeCompare(cert.Device[:], peer) != 1 {
		return errUnknownPeer
	}
	if cert.Device.Equal(a.dev.Cert.Device) {
		return errors.New("a device presented this device's own certificate")
	}
	p := Peer{DeviceID: cert.Device.String(), UserID: cert.User.String(), Kind: KindOwn, Name: cert.Name, Cert: credential, Addr: remote.String(), LastSeen: a.cfg.Now().UTC()}
	if err := a.book.addPairing(Friend{}, p); err != nil {
		return err
	}
	a.log.Info("own device recognised by its certificate", "device", p.DeviceID, "index", cert.Index, "name", cert.Name)
	return nil
}

// dropSource drops packets from the last addresses of blocked users and,
// in quiet mode, from strangers outside our windows. A pairing in progress
// is the exception: while this device shows an invite, the person who scans
// it is a stranger until the pairing completes, and the device it is dialing
// to pair answers from a stranger's address.
func (a *Agent) dropSource(from netip.AddrPort, quic bool) bool {
	if a.book.blockedAddr(from) {
		return true
	}
	if a.presence.Admit(from, quic) {
		return false
	}
	return !(quic && (a.pair.open() || a.pair.dialingAddr(from)))
}

// datagram hands non-QUIC packets, heartbeats and STUN, to presence.
func (a *Agent) datagram(pkt []byte, from netip.AddrPort) {
	a.presence.HandleDatagram(pkt, from)
}

// serveConns takes the transport's connections and serves each one's streams.
func (a *Agent) serveConns(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := a.tr.Accept(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, transport.ErrClosed) {
				return nil
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.serveConn(ctx, c)
		}()
	}
}

// serveConn serves the streams of one connection, accepted or dialed (the
// peer may open streams on a connection this device dialed), until it closes.
func (a *Agent) serveConn(ctx context.Context, c *transport.Conn) {
	// An authenticated connection from a known device is proof of where it
	// is now.
	if c.Direction() == transport.Inbound {
		a.presence.Observed(c.PeerKey(), c.RemoteAddr())
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		s, err := c.AcceptStream(ctx)
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.Close()
			a.serveStream(ctx, c, s)
		}()
	}
}

func (a *Agent) serveStream(ctx context.Context, c *transport.Conn, s *transport.Stream) {
	var proto [1]byte
	s.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadFull(s, proto[:]); err != nil {
		return
	}
	_, known := a.book.peerFor(c.PeerKey())
	switch proto[0] {
	case protoPairing:
		a.pair.serve(ctx, c, s)
	default:
		if known {
			a.log.Debug("unknown stream protocol", "proto", proto[0], "peer", c.RemoteAddr())
		}
	}
}

// writeJSON writes v as one frame.
func writeJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return transport.WriteFrame(w, b)
}

// readJSON reads one frame of at most max bytes into v.
func readJSON(r io.Reader, max int, v any) error {
	b, err := transport.ReadFrame(r, max)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
