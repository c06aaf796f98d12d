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
//     (package cluster/presence);
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
// Strangers are bounded (strangers.go): the transport keeps at most a few of
// their connections, evicting the one idle longest, and limits the rate of
// new handshakes; the agent serves at most two streams at once on a
// stranger's connection, and closes every stranger's connection as soon as
// no invite is open, expired or used.
//
// # Streams
//
// The first byte of every stream names its protocol. Each protocol is
// registered once in a table (streams.go) with who may open it (own
// devices, friends, strangers admitted by an open invite), its deadline, a
// limit on its concurrent streams, and either a handler or a net.Listener
// of its streams. Admission is enforced where streams arrive: a stream of
// an unknown protocol, or from a peer the protocol does not admit, is reset
// before anything is read past its first byte.
//
//	0x01  pairing: a Hello frame, answered by a Reply frame (package
//	      pairing); own devices, friends and strangers; 30 s
//	0x02  introduce: rendezvous through a device both ends reach
//	      (introduce.go); own devices and friends
//	0x03  relay: setting up a relayed path through this device (relay.go);
//	      own devices and friends
//	0x04  raft, for the own cluster (package cluster); own devices only
//	0x05  roster: signed rosters exchanged with own devices and friends
//	      (rosters.go); own devices and friends; 20 s
//	0x06  cluster: a follower's write forwarded to the leader, the join
//	      handshake and recovery (cluster/wire.go); own devices only
//	0x07  conv: conversation envelopes delivered, forwarded for a device
//	      the server knows (store-and-forward), acks back, probes and own
//	      devices' syncs (conv_wire.go, conv_deliver.go); own devices and
//	      friends; 120 s
//	0x08  archive: blobs put, got and compared by Merkle root between
//	      holders; own devices peel and open layers for each other
//	      (archive_wire.go, archive_serve.go); own devices and friends;
//	      120 s
//
// # Datagrams
//
// Datagrams that are neither QUIC nor STUN carry their type in their first
// byte (0x04..0x3f):
//
//	0x10..0x12  presence: heartbeat, reply, address update
//	0x13        keepalive: refreshes a NAT mapping, ignored on arrival
//	0x14        revocation notice: tells a refused device it was revoked
//	            (rosters.go, revoked.go)
//	0x20        LAN beacon (discover.go)
//	0x30..0x31  relay: a relayed datagram, and a relay session's refresh
//
// # Paths
//
// Every peer is reached on a path (paths.go): direct, lan, punched (opened
// through NATs after an introduction) or relay.
package agent

import (
	"context"
	"crypto/ed25519"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/kith-project/kith/internal/ratelog"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kith-project/kith/cluster"
	"github.com/kith-project/kith/cluster/presence"
	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/internal/device"
	"github.com/kith-project/kith/internal/portmap"
	"github.com/kith-project/kith/internal/store"
	"github.com/kith-project/kith/internal/transport"
	"github.com/kith-project/kith/internal/web"
	"github.com/kith-project/kith/roster"
	"github.com/kith-project/kith/seed"
)

// Config configures an agent. The zero value of every field but Home means
// its default; Validate says what is wrong with the others.
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
	// PacketConn, if set, is the socket the agent uses instead of binding
	// Listen, such as an internal/memnet socket in tests with many agents
	// in one process. The agent does not close it.
	PacketConn net.PacketConn
	// Now is the agent's clock. Default time.Now.
	Now func() time.Time
	// Logger receives the agent's logs. Default: discard. Debug lines that
	// peers can cause (refused handshakes and streams, bad packets) are
	// rate-limited per message (internal/ratelog).
	Logger *slog.Logger
	// LAN lists the networks LAN beacons are broadcast on and accepted
	// from (discover.go). Default: this machine's interface networks.
	LAN []netip.Prefix
	// BeaconPorts are the ports LAN beacons go to besides the agent's own.
	// Default: DefaultPort.
	BeaconPorts []uint16
	// PortMap asks the home router for a mapping of the agent's UDP port
	// (NAT-PMP or UPnP IGD, internal/portmap): PortMapOn (the default, "") or
	// PortMapOff. It is off anyway on a given PacketConn or on loopback.
	PortMap string
	// Version is the build's version, which the agent tells the local
	// API ("kith version"). Default: none.
	Version string
	// Relay says whose datagrams this device relays for others (relay.go):
	// RelayOwn (the default), RelayFriends or RelayOff.
	Relay RelayPolicy
	// RelayRate is the bytes per second one relayed session may carry.
	// Default DefaultRelayRate.
	RelayRate int64
	// RelayQuota is the bytes all relayed sessions may carry per
	// RelayQuotaWindow (24 h). Default DefaultRelayQuota.
	RelayQuota int64
	// Introduce is whom this device introduces to each other for hole
	// punching (introduce.go): IntroduceOwn (the default), IntroduceFriends
	// or IntroduceOff (kith run --introduce).
	Introduce string
	// RaftProfile names the own cluster's timeouts (kith run
	// --raft-profile): "home" (the default, "") or "lan"; see
	// cluster.ProfileHome.
	RaftProfile string
	// ArchiveIdle is how long a conversation stays unchanged before it is
	// archived even if undecided (kith run --archive-idle). Default
	// DefaultArchiveIdle.
	ArchiveIdle time.Duration
	// ArchiveGone is how long an own device or a relay may stay unseen
	// before the blobs it holds are copied elsewhere (kith run
	// --archive-gone). Default DefaultArchiveGone.
	ArchiveGone time.Duration
	// ArchiveEvery is how often the archive service runs a pass. Default
	// DefaultArchiveEvery.
	ArchiveEvery time.Duration
	// ArchiveSettle is how long a decided conversation stays unchanged
	// before it is archived (kith run --archive-settle). Default
	// DefaultArchiveSettle.
	ArchiveSettle time.Duration

	// WebListener, if set, is the TCP listener the web console serves on
	// (package internal/web; kith run --web); the agent closes it. Default:
	// no console.
	WebListener net.Listener

	// raftProfile, set by tests in this package, overrides RaftProfile.
	raftProfile *cluster.Profile
	// noCluster, set by benchmarks in this package, runs no cluster.
	noCluster bool
}

// Defaults.
const (
	DefaultListen    = "0.0.0.0:7117"
	DefaultHeartbeat = 15 * time.Second
	DefaultInviteTTL = 10 * time.Minute
)

// Limits of Config.
const (
	MinHeartbeat = 10 * time.Millisecond
	MaxInviteTTL = control.MaxInviteTTL // the local API's bound, so the CLI checks the same
)

// Validate reports what is wrong with c, if anything: a missing or unusable
// home, a listen address that is not HOST:PORT, a heartbeat shorter than
// MinHeartbeat, an invite lifetime longer than MaxInviteTTL.
func (c Config) Validate() error {
	if c.Home == "" {
		return errors.New("agent: Config.Home is required")
	}
	if fi, err := os.Stat(c.Home); err != nil {
		return fmt.Errorf("agent: home: %w", err)
	} else if !fi.IsDir() {
		return fmt.Errorf("agent: home %s is not a folder", c.Home)
	}
	if c.Listen != "" && c.PacketConn != nil {
		return errors.New("agent: Config.Listen and Config.PacketConn are exclusive")
	}
	if c.Listen != "" {
		if _, err := netip.ParseAddrPort(c.Listen); err != nil {
			return fmt.Errorf("agent: listen address %q is not HOST:PORT with a numeric host", c.Listen)
		}
	}
	if c.Heartbeat != 0 && c.Heartbeat < MinHeartbeat {
		return fmt.Errorf("agent: heartbeat %v is shorter than %v", c.Heartbeat, MinHeartbeat)
	}
	if err := validPortMap(c.PortMap); err != nil {
		return err
	}
	switch c.Introduce {
	case "", IntroduceOwn, IntroduceFriends, IntroduceOff:
	default:
		return fmt.Errorf("agent: introduce policy %q is not own, friends or off", c.Introduce)
	}
	if _, err := cluster.ParseProfile(c.RaftProfile); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	if c.InviteTTL < 0 || c.InviteTTL > MaxInviteTTL {
		return fmt.Errorf("agent: invite lifetime %v is outside 0..%v", c.InviteTTL, MaxInviteTTL)
	}
	if _, err := ParseRelayPolicy(string(c.Relay)); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	if c.RelayRate < 0 || c.RelayQuota < 0 {
		return fmt.Errorf("agent: relay rate %d and quota %d must not be negative", c.RelayRate, c.RelayQuota)
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.Listen == "" && c.PacketConn == nil {
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
	if c.Introduce == "" {
		c.Introduce = IntroduceOwn
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Relay, _ = ParseRelayPolicy(string(c.Relay))
	if c.RelayRate == 0 {
		c.RelayRate = DefaultRelayRate
	}
	if c.RelayQuota == 0 {
		c.RelayQuota = DefaultRelayQuota
	}
	if c.ArchiveIdle <= 0 {
		c.ArchiveIdle = DefaultArchiveIdle
	}
	if c.ArchiveGone <= 0 {
		c.ArchiveGone = DefaultArchiveGone
	}
	if c.ArchiveEvery <= 0 {
		c.ArchiveEvery = DefaultArchiveEvery
	}
	if c.ArchiveSettle <= 0 {
		c.ArchiveSettle = DefaultArchiveSettle
	}
}

// Agent is a running device. Create it with New, run it with Run.
type Agent struct {
	// Constant after New.
	cfg        Config
	dev        *device.Device
	st         *store.Store
	log        *slog.Logger
	book       *book
	tr         *transport.Transport
	pair       *pairer
	ctl        net.Listener
	streams    registry
	paths      *paths
	disc       *discoverer
	udp        net.PacketConn  // the socket the agent bound (nil with Config.PacketConn); closed by release
	portmap    *portmap.Mapper // nil when off, for the reason in portmapOff
	portmapOff string
	relay      *relayService
	rosters    *rosterSync // roster exchanges with own devices and friends (rosters.go)
	convs      *convs      // conversations: the Book, delivery, forwarding (conv.go)
	archives   *archiver   // archives: sealing, placement, repair (archive.go)
	intro      introducer  // introductions asked of us, and candidate sets taken
	reach      *reacher    // when to punch (reach.go)
	punches    punchGate   // one punch per peer at a time, rate-limited
	keep       keepaliveCounters
	// keepEvery is the keepalive interval; zero means keepaliveEvery.
	// Tests shorten it before Run.
	keepEvery time.Duration

	presence *presence.Presence
	web      *web.Server // nil without Config.WebListener (web.go)
	trSet    atomic.Bool // a.tr is set: the packet path may answer (datagram)
	cluster  clusterHolder
	notices  revokedNotices

	started    time.Time
	inviteWake chan struct{} // wakes closeStrangers; buffered, one

	// Lifecycle: Run sets cancel and closes ran when it returns; Close
	// cancels it, waits, and releases what New opened.
	mu        sync.Mutex
	cancel    context.CancelFunc // guarded by mu; non-nil while Run runs
	ran       chan struct{}      // guarded by mu; closed when Run returns
	closed    bool               // guarded by mu
	closeOnce sync.Once
	closeErr  error
}

// New makes an agent for the loaded device dev whose store st is open,
// binds its UDP port and its control socket. The caller must hold the
// home's lock. On error nothing is left open.
func New(cfg Config, dev *device.Device, st *store.Store) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	cfg.Logger = slog.New(ratelog.New(cfg.Logger.Handler(), cfg.Now))
	a := &Agent{cfg: cfg, dev: dev, st: st, log: cfg.Logger, inviteWake: make(chan struct{}, 1), paths: newPaths()}
	var err error
	if a.book, err = loadBook(st, dev.Cert.User, dev.Cert.Device); err != nil {
		return nil, err
	}
	a.book.propose = a.proposeChange
	a.pair = newPairer(a)
	a.disc = newDiscoverer(a)
	a.relay = newRelayService(a, cfg)
	a.reach = newReacher(a)
	a.rosters = newRosterSync(a)
	if a.convs, err = newConvs(a); err != nil {
		return nil, err
	}
	if a.archives, err = newArchiver(a); err != nil {
		a.convs.close()
		return nil, err
	}
	a.book.onChange = func() {
		a.rosters.wake()
		a.convs.wake() // the directory changed
	}
	if err := a.registerProtocols(); err != nil {
		a.convs.close()
		return nil, err
	}
	a.presence, err = presence.New(presence.Config{
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
		a.convs.close()
		return nil, err
	}
	pc := cfg.PacketConn
	if pc == nil {
		// The agent binds the socket itself, to let it send broadcasts
		// (LAN beacons, discover_sock.go).
		if a.udp, err = listenUDP(cfg.Listen); err != nil {
			a.convs.close()
			return nil, fmt.Errorf("opening the UDP port %s: %w", cfg.Listen, err)
		}
		pc = a.udp
	}
	a.tr, err = transport.Listen(transport.Config{
		Key:                 dev.Device.Ed25519(),
		PacketConn:          pc,
		Authorize:           a.authorize,
		Credential:          dev.Identity.Cert,
		AuthorizeCredential: a.authorizeOwn,
		DropSource:          a.dropSource,
		Datagram:            a.datagram,
		Stranger:            a.isStranger,
		HandshakeRate:       handshakeRate,
		Logger:              a.log.With("service", "transport"),
	})
	if err != nil {
		if a.udp != nil {
			a.udp.Close()
		}
		a.convs.close()
		return nil, fmt.Errorf("starting the transport on %s: %w", pc.LocalAddr(), err)
	}
	// The transport reads packets as soon as it listens, before Listen has
	// returned and a.tr is set: datagram drops them until then.
	a.trSet.Store(true)
	if a.ctl, err = control.Listen(cfg.Home); err != nil {
		a.tr.Close()
		if a.udp != nil {
			a.udp.Close()
		}
		a.convs.close()
		return nil, err
	}
	a.portmap, a.portmapOff = a.newPortMapper()
	a.newWeb()
	a.started = cfg.Now()
	return a, nil
}

// handshakeRate is the transport's cap on new inbound handshakes per
// second; zero means transport.DefaultHandshakeRate. Benchmarks of the
// handshake itself lift it.
var handshakeRate float64

// registerProtocols fills the stream table.
func (a *Agent) registerProtocols() error {
	return errors.Join(
		a.registerCluster(),
		a.streams.register(Protocol{
			ID: protoPairing, Name: "pairing",
			Openers:    OpenOwn | OpenFriend | OpenStranger,
			Deadline:   30 * time.Second,
			MaxStreams: 16,
			Handle:     a.pair.serve,
		}),
		a.streams.register(Protocol{
			ID: protoRelay, Name: "relay",
			Openers:    OpenOwn | OpenFriend,
			Deadline:   3 * relayAskTimeout,
			MaxStreams: 16,
			Handle:     a.relay.serve,
		}),
		a.streams.register(Protocol{
			ID: protoRoster, Name: "roster",
			Openers:    OpenOwn | OpenFriend,
			Deadline:   2 * rosterTimeout,
			MaxStreams: 16,
			Handle:     a.rosters.serve,
		}),
		a.streams.register(Protocol{
			ID: protoConv, Name: "conv",
			Openers:    OpenOwn | OpenFriend,
			Deadline:   2 * convStreamTimeout,
			MaxStreams: 32,
			Handle:     a.convs.serveConv,
		}),
		a.streams.register(Protocol{
			ID: protoArchive, Name: "archive",
			Openers:    OpenOwn | OpenFriend,
			Deadline:   2 * archiveStreamTimeout,
			MaxStreams: 4,
			Handle:     a.archives.serve,
		}),
		a.streams.register(Protocol{
			ID: protoIntroduce, Name: "introduce",
			Openers:    OpenOwn | OpenFriend,
			Deadline:   2 * introTimeout,
			MaxStreams: 16,
			Handle:     a.serveIntroduce,
		}),
	)
}

// Addr is the agent's UDP address.
func (a *Agent) Addr() netip.AddrPort { return a.tr.LocalAddr() }

// Subscribe delivers presence's events (peers online, offline and moved,
// our own address changed) to a channel of the given buffer, until cancel;
// see presence.Presence.Subscribe for what a slow reader loses.
func (a *Agent) Subscribe(buffer int) (events <-chan presence.Event, cancel func()) {
	return a.presence.Subscribe(buffer)
}

// errRunTwice: Run was called again, or after Close.
var errRunTwice = errors.New("agent: Run called twice, or after Close")

// Close stops Run if it runs and waits for it to return, then releases
// the UDP port and the control socket, and closes the conversations. It is idempotent; it does not close
// the store, which the caller opened.
func (a *Agent) Close() error {
	a.closeOnce.Do(func() {
		a.mu.Lock()
		a.closed = true
		cancel, ran := a.cancel, a.ran
		a.mu.Unlock()
		if cancel != nil {
			cancel()
			<-ran
		}
		a.closeErr = a.release()
		if err := a.convs.close(); err != nil && a.closeErr == nil {
			a.closeErr = fmt.Errorf("agent: closing the conversations: %w", err)
		}
	})
	return a.closeErr
}

// release closes the transport, the socket the agent bound and the
// control socket; all are idempotent.
func (a *Agent) release() error {
	terr := a.tr.Close()
	if a.udp != nil {
		if err := a.udp.Close(); err != nil && !errors.Is(err, net.ErrClosed) && terr == nil {
			terr = fmt.Errorf("agent: closing the UDP socket: %w", err)
		}
	}
	if a.cfg.WebListener != nil {
		a.cfg.WebListener.Close()
	}
	if err := a.ctl.Close(); err != nil && !errors.Is(err, net.ErrClosed) && terr == nil {
		terr = fmt.Errorf("agent: closing the control socket: %w", err)
	}
	return terr
}

// Run serves until ctx ends, then stops every service and returns. It
// returns the first service error that was not caused by stopping.
func (a *Agent) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a.mu.Lock()
	if a.closed || a.ran != nil {
		a.mu.Unlock()
		return errRunTwice
	}
	a.cancel, a.ran = cancel, make(chan struct{})
	defer close(a.ran)
	a.mu.Unlock()
	a.notices.ready.Store(true)
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
			if err == nil && ctx.Err() == nil {
				// A service that stops on its own, without being asked,
				// is a failure too.
				err = errors.New("stopped unexpectedly")
			}
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
	service("strangers", a.closeStrangers)
	service("addresses", func(ctx context.Context) error { return a.book.run(ctx) })
	service("discover", a.disc.run)
	if a.portmap != nil {
		service("portmap", a.portmap.Run)
	}
	service("relay", a.relay.run)
	if a.web != nil {
		service("web", a.serveWeb)
	}
	service("reach", a.reach.run)
	service("keepalive", a.keepalive)
	service("rosters", a.rosters.run)
	service("conversations", a.convs.run)
	service("archives", a.archives.run)
	service("blob check", a.archives.verifyBlobs)
	if !a.cfg.noCluster {
		service("cluster", a.runCluster)
	}
	a.log.Info("agent running", "listen", a.Addr().String(), "user", a.dev.Identity.UserID, "device", a.dev.Identity.DeviceID)
	<-ctx.Done()
	// Closing the transport ends serveConns' Accept.
	terr := a.release()
	wg.Wait()
	// Every service stopped: nothing uses the Book any more.
	if err := a.convs.close(); err != nil && terr == nil {
		terr = fmt.Errorf("agent: closing the conversations: %w", err)
	}
	a.saveLastSeen()
	a.book.flush()
	if err := a.book.writeErr(); err != nil {
		a.log.Warn("saving addresses", "err", err)
	}
	if firstErr == nil && terr != nil {
		firstErr = terr
	}
	a.log.Info("agent stopped")
	return firstErr
}

// persistEvery is how often last-seen times are written to the store.
const persistEvery = 30 * time.Second

// persist hands presence's last-seen times to the book now and then, so
// that a restarted agent knows when it last heard from everyone; the
// book's writer stores them, and Run does once more at the end.
func (a *Agent) persist(ctx context.Context) error {
	t := time.NewTicker(persistEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			a.saveLastSeen()
			if err := a.book.writeErr(); err != nil {
				a.log.Warn("saving addresses and last-seen times", "err", err)
			}
		}
	}
}

func (a *Agent) saveLastSeen() {
	seen := map[seed.DevicePublic]time.Time{}
	for _, ps := range a.presence.Status() {
		if !ps.LastSeen.IsZero() {
			seen[ps.Device] = ps.LastSeen
		}
	}
	a.book.noteLastSeen(seen)
	a.book.wake()
}

// authorize decides, during the TLS handshake, whether peer may talk to us.
func (a *Agent) authorize(peer ed25519.PublicKey, remote netip.AddrPort, dir transport.Direction) error {
	if _, ok := a.book.peerForKey(peer); ok {
		return nil
	}
	if d, ok := devOf(peer); !ok || a.book.revoked(d) {
		if ok {
			a.tellRevoked(d, remote)
		}
		return errRevoked
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
	if a.book.revoked(cert.Device) {
		a.tellRevoked(cert.Device, remote)
		return errRevoked
	}
	p := Peer{
		Device: roster.Device{DeviceID: cert.Device, UserID: cert.User, Kind: roster.KindOwn, Name: cert.Name, Cert: credential},
		Addr:   remote.String(), LastSeen: a.cfg.Now().UTC(),
	}
	if err := a.book.addPairing(roster.Friend{}, p, nil); err != nil {
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
		if d, ok := a.book.revokedDevice(from); ok && quic {
			a.tellRevoked(d, from)
		}
		return true
	}
	if a.presence.Admit(from, quic) {
		return false
	}
	return !(quic && (a.pair.open() || a.pair.dialingAddr(from)))
}

// datagram hands non-QUIC packets to their service: LAN beacons to
// discovery, relay datagrams of sessions this device relays to the relay
// (those of our own relayed paths the transport unwrapped already),
// heartbeats and STUN to presence; keepalives are dropped.
func (a *Agent) datagram(pkt []byte, from netip.AddrPort) {
	if len(pkt) == 0 || !a.trSet.Load() {
		return
	}
	switch pkt[0] {
	case typeBeacon:
		a.disc.handle(pkt, from)
		return
	case transport.RelayData, transport.RelayRefresh:
		a.relay.datagram(pkt, from)
		return
	case typeKeepalive:
		return // it only refreshed a NAT mapping on its way
	case typeRevokedNotice:
		a.revokedNotice(pkt)
		return
	}
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
	// An authenticated connection the peer dialed is proof of where it is
	// now; one we dialed only says where we found it.
	if d, ok := devOf(c.PeerKey()); ok && c.Direction() == transport.Inbound {
		a.presence.Observed(d, c.RemoteAddr())
	}
	// A stranger's connection may have only a few streams served at once;
	// more are reset before anything is read. Who the peer is is asked
	// again for every stream: a stranger whose pairing completed is a
	// friend from then on, on the same connection.
	slots := make(chan struct{}, maxStrangerStreams)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		s, err := c.AcceptStream(ctx)
		if err != nil {
			return
		}
		limited := a.openerOf(c) == OpenStranger
		if limited {
			select {
			case slots <- struct{}{}:
			default:
				s.Reset(errResetStream)
				s.Close()
				continue
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if limited {
				defer func() { <-slots }()
			}
			if !a.serveStream(ctx, c, s) {
				s.Close()
			}
		}()
	}
}

// errRevoked is what authorize returns for a revoked device.
var errRevoked = errors.New("the device was revoked")

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
